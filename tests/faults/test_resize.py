"""Faults in the middle of a resize as it runs by default (no pre-copy):
the guest is powered off, ``<dir>`` renamed ``<dir>_resize``, and the
overlay pushed to the destination's rsync daemon over a slowed link, so
that the fault lands in the push.

Each test then lets Nova recover the way an operator would, reads every
write back through the guest's QEMU, again after a hard reboot, and
finds nothing of the move left on either host or in placement.
"""

import os

import pytest

from tests.cloud import checks
from tests.faults import cells


@pytest.fixture(scope='module')
def slow_cloud(cloud, with_options, host_faults):
    """The link slowed: novaext's pushes by its option, stock Nova's scp
    (the cloud's stock profile) at the receiving sshd."""
    with_options(['compute1', 'compute2'],
                 rsync_bwlimit_kib=cells.BWLIMIT_KIB,
                 orphan_sweep_interval=cells.SWEEP_INTERVAL)
    for faults in host_faults.values():
        faults.limit_ssh_link(cells.BWLIMIT_KIB)
    yield cloud
    for faults in host_faults.values():
        faults.limit_ssh_link(0)


def _novaext_only(cloud, why):
    if cloud.hosts['compute1'].stock_nova:
        pytest.skip(f'stock Nova: {why}')


def _resize_into_the_push(cloud, flavors, source, server,
                          cold_migration=False):
    """Write during the operation (before power-off), resize (or cold
    migrate to compute2), and wait until the overlay is on its way from
    ``<dir>_resize``."""
    cells.write(source, server, cells.DURING)
    if cold_migration:
        cloud.api.compute.migrate_server(server, host='compute2')
    else:
        cloud.api.compute.resize_server(server,
                                        flavors[checks.LARGE_FLAVOR].id)
    cells.wait_until('the push of the overlay', lambda: cells.pushing(
        source, server, '../' + server.id + '_resize/disk'))


@pytest.mark.parametrize('fault', cells.SOURCE_FAULTS)
def test_source_fault_in_the_push(
        slow_cloud, flavors, image, servers, host_faults, fault):
    """Nova's restart reverts the move: ``<dir>_resize`` back, the guest
    started on its disk (it was off for the push, so a host crash there
    is nova-compute's death). Nova 34's own revert raises here before it
    starts the guest: novaext gives it the flavor it needs."""
    cloud = slow_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    _resize_into_the_push(cloud, flavors, source, server)

    cells.restart_after(host_faults['compute1'], fault, server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    cells.assert_recovered(cloud, servers, source, server, 1)


def test_source_nova_compute_killed_in_a_cold_migration(
        slow_cloud, flavors, image, servers, host_faults):
    """A cold migration moves the disks as a resize does, with the
    flavor unchanged: the same recovery by Nova's restart."""
    cloud = slow_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    _resize_into_the_push(cloud, flavors, source, server,
                          cold_migration=True)

    cells.restart_after(host_faults['compute1'], 'nova_compute_killed',
                        server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    cells.assert_recovered(cloud, servers, source, server, 1)


def test_destination_rsync_daemon_killed_in_the_push(
        slow_cloud, flavors, image, servers, host_faults):
    """The push fails, the move is rolled back on the source, the
    server goes to ERROR with the daemon's error as its fault; the
    operator starts the daemon again, and reset-state plus a hard reboot
    bring the server back with its data. The partial copy the source
    could not remove goes with the destination's orphan sweep."""
    cloud = slow_cloud
    _novaext_only(cloud, 'no rsync daemon in its copy (ssh)')
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest_faults = host_faults['compute2']
    _resize_into_the_push(cloud, flavors, source, server)

    dest_faults.kill_rsyncd()
    try:
        server = cells.settled(servers, server, source.name)
    finally:
        dest_faults.start_rsyncd()

    assert server.status == 'ERROR'
    assert 'failed to connect' in server.fault['message']
    server = cells.reset_then_hard_reboot(cloud, servers, source, server)
    dest = cloud.hosts['compute2']
    cells.wait_until('the destination sweeps the partial copy',
                     lambda: dest.instance_files(server.id) == [],
                     timeout=4 * cells.SWEEP_INTERVAL)
    cells.assert_recovered(cloud, servers, source, server, 1)


def test_destination_nova_compute_killed_in_the_push(
        slow_cloud, flavors, image, servers, host_faults):
    """The push goes on (the daemon is not nova-compute); the source's
    finish_resize cast waits in the queue until the destination's
    nova-compute is back, which then finishes the move: VERIFY_RESIZE on
    the destination with every write, and the confirm leaves nothing."""
    cloud = slow_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest = cloud.hosts['compute2']
    dest_faults = host_faults['compute2']
    _resize_into_the_push(cloud, flavors, source, server)

    dest_faults.kill_nova_compute()
    print(f'restart: {dest_faults.start_nova_compute():.1f} s')

    server = servers.wait_for(
        server, lambda s: s.status in ('VERIFY_RESIZE', 'ERROR') and
        s.task_state is None, 'resized', timeout=180)
    assert server.status == 'VERIFY_RESIZE', server.fault
    cells.all_marks(dest, server)
    cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    cells.assert_recovered(cloud, servers, dest, server, 2)


def test_destination_libvirtd_restarted_in_the_push(
        slow_cloud, flavors, image, servers, host_faults):
    """libvirtd restarted on the destination while the overlay arrives
    (the operator's ``systemctl restart libvirtd``): its nova-compute
    loses and regains its connection, the push goes on, and the
    destination defines and starts the guest on the new connection:
    VERIFY_RESIZE with every write; the confirm leaves nothing."""
    cloud = slow_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest = cloud.hosts['compute2']
    _resize_into_the_push(cloud, flavors, source, server)

    took = host_faults['compute2'].restart_libvirtd()
    print(f'libvirtd back after {took:.1f} s')

    cells.confirmed_on(cloud, servers, dest, server)


def test_destination_full_in_the_push(
        slow_cloud, flavors, image, servers, host_faults):
    """The destination's file system fills while the overlay arrives (a
    real ENOSPC: a 48 MiB ext4 at the instance's directory there). As
    with stock Nova's copy, the push fails after power-off: the move is
    rolled back on the source, the server goes to ERROR with rsync's
    error; reset-state and a hard reboot bring it back with its data, and
    what had arrived is removed."""
    cloud = slow_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest = cloud.hosts['compute2']
    with host_faults['compute2'].small_file_system(
            os.path.join(dest.instances_path, server.id), 48) as seen:
        _resize_into_the_push(cloud, flavors, source, server)
        server = cells.settled(servers, server, source.name)
        assert server.status == 'ERROR'
        fault = server.fault['message']
        # (The directory itself is the file system's mount point here.)
        assert sorted(os.listdir(seen)) in ([], ['lost+found'])
    server = cells.reset_then_hard_reboot(cloud, servers, source, server)
    cells.assert_recovered(cloud, servers, source, server, 1)
    # The operator is told why (stock Nova: "ProcessExecutionError").
    assert 'No space left on device' in fault
