"""Faults in the middle of a resize with pre-copy ([novaext]
resize_precopy), while pass 1 pushes the running guest's overlay and the
guest writes to ``<disk>.novaext-writes`` (resize.redirect).

Each test: a server on compute1 with a large overlay, resized to
compute2 over a slowed link (so the fault lands in pass 1), written to
during pass 1, then the fault, then Nova's own recovery (nova-compute
started again: Nova's _init_instance hands the RESIZE_MIGRATING instance
to the driver's finish_revert_migration), then every write read back
through the guest's QEMU, and after a hard reboot (which rebuilds the
domain from ``disk``) again; then nothing left anywhere.
"""

import pytest

from tests.cloud import checks
from tests.faults import cells


@pytest.fixture(scope='module')
def precopy_cloud(cloud, with_options):
    with_options(['compute1', 'compute2'], resize_precopy='true',
                 resize_precopy_min_mib=0,
                 rsync_bwlimit_kib=cells.BWLIMIT_KIB)
    return cloud


def _resize_into_pass_one(cloud, flavors, source, server):
    """Resize, wait until pass 1 pushes (the guest now writes to the
    writes layer), and write during it."""
    cloud.api.compute.resize_server(server, flavors[checks.LARGE_FLAVOR].id)
    cells.wait_until('pass 1 of the pre-copy', lambda: cells.pushing(
        source, server, 'disk.novaext-writes'))
    cells.write(source, server, cells.DURING)


@pytest.mark.parametrize('fault', cells.SOURCE_FAULTS)
def test_source_fault_in_pass_one(
        precopy_cloud, flavors, image, servers, host_faults, fault):
    """nova-compute killed: the guest's QEMU outlives it, and after the
    restart the guest still runs (same QEMU), now on its own disk. Host
    crash: the QEMU dies too; at the start the writes layer is committed
    into the disk and Nova's revert starts the guest on it. Either way
    every write reads back, and after a hard reboot (domain rebuilt from
    ``disk``) too."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    _resize_into_pass_one(cloud, flavors, source, server)

    cells.restart_after(faults, fault, server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    if fault == 'nova_compute_killed':
        assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    assert 'novaext-writes' not in source.domain(server).XMLDesc(0)
    cells.assert_recovered(cloud, servers, source, server, 1)


# Written during pass 1 and pushed by the catch-up pass while the guest
# shuts down (~5 s at the slowed rate); then, during the shutdown, what
# the final push carries after power-off.
CAUGHT_UP = ('0x77', 500 * cells.MiB, 40 * cells.MiB)
LAST = ('0x78', 600 * cells.MiB, 40 * cells.MiB)


def _resize_into_the_catch_up(cloud, flavors, source, server):
    _resize_into_pass_one(cloud, flavors, source, server)
    cells.write(source, server, (CAUGHT_UP,))
    cells.wait_until('the catch-up push', lambda: cells.pushing(
        source, server, 'disk.novaext-last-writes'), timeout=120)


def test_source_nova_compute_killed_in_the_catch_up(
        precopy_cloud, flavors, image, servers, host_faults):
    """While the guest is asked to shut down (it ignores ACPI) and the
    writes of pass 1 are pushed, it writes to a second layer: the
    restart merges both into its disk live; it keeps running."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    _resize_into_the_catch_up(cloud, flavors, source, server)
    cells.write(source, server, (LAST,))

    cells.restart_after(faults, 'nova_compute_killed', server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    cells.read(source, server, (CAUGHT_UP, LAST))
    server = cells.assert_recovered(cloud, servers, source, server, 1)
    cells.read(source, server, (CAUGHT_UP, LAST))


def test_source_nova_compute_killed_in_the_final_push(
        precopy_cloud, flavors, image, servers, host_faults):
    """After power-off the source has committed both layers into its disk
    and renamed its directory; the last writes are on their way. The
    restart removes the layers without committing them again, Nova's
    revert brings the directory back and starts the guest."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    _resize_into_the_catch_up(cloud, flavors, source, server)
    cells.write(source, server, (LAST,))
    cells.wait_until('the final push', lambda: cells.pushing(
        source, server, f'../{server.id}_resize/disk.novaext-last-writes'),
        timeout=120)

    cells.restart_after(faults, 'nova_compute_killed', server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    cells.read(source, server, (CAUGHT_UP, LAST))
    server = cells.assert_recovered(cloud, servers, source, server, 1)
    cells.read(source, server, (CAUGHT_UP, LAST))


def test_source_libvirtd_restarted_in_pass_one(
        precopy_cloud, flavors, image, servers, host_faults):
    """libvirtd restarted while pass 1 pushes (the guest's QEMU runs on,
    on its writes layer): the move goes on and finishes, every write
    moved; the confirm leaves nothing."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest = cloud.hosts['compute2']
    _resize_into_pass_one(cloud, flavors, source, server)

    took = host_faults['compute1'].restart_libvirtd()
    print(f'libvirtd back after {took:.1f} s')

    server = cells.settled(servers, server, dest.name, timeout=180)
    assert server.status == 'VERIFY_RESIZE', server.fault
    cells.all_marks(dest, server)
    cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    cells.assert_recovered(cloud, servers, dest, server, 2)
