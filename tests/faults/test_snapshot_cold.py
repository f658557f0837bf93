"""Faults in the middle of a cold snapshot (live snapshots off on the
host, ``[workarounds]disable_libvirt_livesnapshot``, as operators set it
where a live copy is not wanted): nova-compute killed while the guest is
saved (libvirt's managedSave) and its disk is read.

Nova's restart clears the snapshot's task state and leaves the guest off
with its saved state (the server still ACTIVE); its power-state sync
stops the server later, and the next start boots it afresh, its saved
memory discarded. novaext's start finds its record of the save in the
snapshot's scratch directory (snapshot.cold, snapshot.recovery) and
starts the guest again from its saved state through Nova's own restore,
as the snapshot would have: the server runs on without an action.
"""

import pytest

from tests.faults import cells
from tests.faults import leftovers
from tests.faults.test_snapshot import COPIED


@pytest.fixture(scope='module')
def cold_snapshots(cloud, with_options):
    with_options(['compute1'], section='workarounds',
                 disable_libvirt_livesnapshot=True)
    return cloud


def _saved(host, server):
    dom = host.domain(server)
    return (dom is not None and not dom.isActive() and
            bool(dom.hasManagedSaveImage(0)))


@pytest.mark.parametrize('fault', cells.SOURCE_FAULTS)
def test_nova_compute_killed_while_the_guest_is_saved(
        cold_snapshots, flavors, image, servers, host_faults, fault):
    """``host_crash`` kills what nova-compute had started with it (the
    disk's read), as a service manager's stop does; the guest's QEMU was
    not running (saved)."""
    cloud = cold_snapshots
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    # (More overlay to read: the save lasts long enough to be caught.)
    cells.write(source, server, (COPIED,))
    faults = host_faults['compute1']
    before = cells.snapshot_entries(source)

    snapshot = cloud.api.compute.create_server_image(
        server, 'novaext-faults-cold-snapshot')
    servers.image_ids.append(snapshot.id)
    cells.wait_until('the guest saved for the snapshot',
                     lambda: _saved(source, server), timeout=120)
    faults.kill_nova_compute(with_children=fault == 'host_crash')
    print(f'restart after {fault}: {faults.start_nova_compute():.1f} s '
          'to node report')

    cells.snapshot_settled(cloud, server, snapshot, source, before)
    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    dom = source.domain(server)
    assert dom.isActive(), (
        'the guest was left off with its saved state')
    assert not dom.hasManagedSaveImage(0)
    cells.read(source, server, (COPIED,))
    cells.wait_until('no process left on its disk',
                     lambda: not leftovers.processes_about(server.id),
                     timeout=60)

    again = servers.snapshot(server, 'novaext-faults-cold-snapshot-again')
    assert again.status == 'active'
    cells.wait_until('the scratch directory removed',
                     lambda: not cells.snapshot_scratch(source, before),
                     timeout=30)
    cells.read(source, server, (COPIED,))
    cells.assert_recovered(cloud, servers, source, server, 1, during=False)
