"""A rolling upgrade half-way (issue 32): compute1 runs the previous
novaext release, compute2 this checkout (the cloud's mixed profile:
scripts/cloud install-release REF, then NOVAEXT_CLOUD_PROFILE=mixed
scripts/cloud up; REF is 0.1.0 unless $NOVAEXT_CLOUD_PREVIOUS_RELEASE
names another). A server moves between them every way Nova moves one, in
both directions, with its data. Every overlay is meant to be pre-copied
on this cloud (resize_precopy_min_mib = 0): a source that knows the
capability trait pre-copies only to a destination that advertises it in
placement, and moves the disks after power-off to any other; a source
from before the trait pre-copies as it always did."""

import os
import time

import pytest

from novaext.resize import capabilities
from realhost.cloud import services
from tests.cloud import checks

PLACEMENT = {'OpenStack-API-Version': 'placement 1.6'}


@pytest.fixture(scope='module')
def versions(cloud):
    found = {name: host.novaext_version()
             for name, host in cloud.hosts.items()}
    if found['compute1'] == found['compute2']:
        why = (f'the cloud runs one novaext release ({found}); this needs '
               f'{services.PROFILE_ENV}=mixed')
        if os.environ.get(services.PROFILE_ENV) == 'mixed':
            pytest.fail(why)
        pytest.skip(why)
    print(f'novaext releases: {found}')
    for host in cloud.hosts.values():
        _downgraded(cloud, host)
    return found


def _provider(cloud, host):
    rp = cloud.api.placement.get(f'/resource_providers?name={host.name}',
                                 headers=PLACEMENT).json()
    return rp['resource_providers'][0]['uuid']


def _downgraded(cloud, host):
    """The operator's step after going back to a release older than
    0.1.1 (which leaves the novaext traits of a later one in placement):
    the host's provider keeps only the novaext traits its release adds."""
    uuid = _provider(cloud, host)
    found = cloud.api.placement.get(f'/resource_providers/{uuid}/traits',
                                    headers=PLACEMENT).json()
    stale = {t for t in found['traits']
             if t.startswith(capabilities.TRAIT_PREFIX)} - \
        host.novaext_traits()
    if stale:
        print(f'{host.name}: removing {sorted(stale)} (its release does '
              f'not add them)')
        cloud.api.placement.put(
            f'/resource_providers/{uuid}/traits', headers=PLACEMENT,
            json={'traits': sorted(set(found['traits']) - stale),
                  'resource_provider_generation':
                  found['resource_provider_generation']})


def _traits(cloud, host):
    """The traits of ``host``'s compute node resource provider."""
    return set(cloud.api.placement.get(
        f'/resource_providers/{_provider(cloud, host)}/traits',
        headers=PLACEMENT).json()['traits'])


def _expected_pass(cloud, source, dest):
    """What the root disk's push should be from ``source`` to ``dest``:
    precopy, or single (after power-off)."""
    trait = capabilities.RESIZE_PRECOPY
    source_knows = trait in _traits(cloud, source)
    return ('precopy' if trait in _traits(cloud, dest) or not source_knows
            else 'single')


def _passes(notifications, server, since):
    """The passes (precopy, catchup, final; single without pre-copy) of
    the root disk's pushes since ``since``, once one has ended."""
    checks.push_ends(notifications, server.id, since)
    return {e['payload']['pass'] for e in notifications.of(
                server.id, 'novaext.resize.push.end')
            if e['received'] >= since and e['payload'].get('file') == 'disk'}


def _assert_pushed(passes, expected):
    if expected == 'precopy':
        assert 'precopy' in passes, passes
    else:
        assert passes == {'single'}, passes


@pytest.mark.parametrize('source_name,dest_name', [
    ('compute1', 'compute2'), ('compute2', 'compute1')],
    ids=['previous-to-this', 'this-to-previous'])
def test_a_server_moves_between_releases_with_its_data(
        cloud, flavors, image, servers, notifications, versions,
        source_name, dest_name):
    """Resize source -> dest, cold migration back, block
    live migration source -> dest, a delta snapshot there booted on the
    source: the marks read back through QEMU after each."""
    source, dest = cloud.hosts[source_name], cloud.hosts[dest_name]
    there, back = (_expected_pass(cloud, source, dest),
                   _expected_pass(cloud, dest, source))
    print(f'{source.name} ({versions[source.name]}) -> {dest.name} '
          f'({versions[dest.name]}): {there}; back: {back}')
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], source.name)
    checks.write_marks(source, server)

    def moved_and_confirmed(move, to, expected_pass):
        since = time.time()
        move()
        moved = servers.wait(server, 'VERIFY_RESIZE')
        assert moved.compute_host == to.name
        _assert_pushed(_passes(notifications, moved, since), expected_pass)
        checks.assert_backed_by_verified_base(to, moved, image.id, 2)
        checks.assert_marks(to, moved)
        cloud.api.compute.confirm_server_resize(moved)
        return servers.wait(moved, 'ACTIVE')

    server = moved_and_confirmed(lambda: cloud.api.compute.resize_server(
        server, flavors[checks.LARGE_FLAVOR].id), dest, there)
    server = moved_and_confirmed(
        lambda: cloud.api.compute.migrate_server(server), source, back)

    cloud.api.compute.live_migrate_server(server, host=dest.name,
                                          block_migration=True)
    server = servers.wait_for(
        server, lambda s: s.status == 'ACTIVE' and s.task_state is None
        and s.compute_host == dest.name, 'ACTIVE on ' + dest.name)
    checks.assert_backed_by_verified_base(dest, server, image.id, 2)
    checks.assert_marks(dest, server)

    snapshot = servers.snapshot(server, 'novaext-mixed-release-snapshot',
                                novaext_snapshot_mode='delta')
    assert snapshot.properties['base_image_id_sha1'] == \
        checks.base_name(image.id)
    copy = servers.boot(snapshot.id, flavors[checks.LARGE_FLAVOR],
                        source.name, name='novaext-mixed-release-copy')
    assert copy.compute_host == source.name
    checks.assert_backed_by_verified_base(source, copy, image.id, 2)
    checks.assert_marks(source, copy)
    checks.assert_nothing_left(cloud, server.id, except_on=dest.name)
