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

Space (issue 30, item 3): the destination's file system fills during
pass 1 (a real ENOSPC: a small ext4 at the instance's directory in the
destination's mount namespace), or the source's free space falls below
half of [novaext]resize_precopy_min_free_mib (a ballast file; the
reserve is set from the free space measured when the module starts, so
the cells fit any machine). Either way the resize fails while the guest
still runs, its writes merged back live.
"""

import os
import shutil
import time

import pytest

from tests.cloud import checks
from tests.faults import cells
from tests.faults import leftovers

MiB = cells.MiB
# The reserve is the source's free space at the module's start less this:
# the pre-copy can start while the cells' own writes come and go.
MARGIN_MIB = 2048


@pytest.fixture(scope='module')
def reserve_mib(cloud):
    return cells.free_mib(cloud.hosts['compute1'].instances_dir) - MARGIN_MIB


@pytest.fixture(scope='module')
def precopy_cloud(cloud, with_options, reserve_mib):
    if cloud.hosts['compute1'].stock_nova:
        pytest.skip('stock Nova: no pre-copy (novaext\'s own windows)')
    with_options(['compute1', 'compute2'], resize_precopy='true',
                 resize_precopy_min_mib=0,
                 rsync_bwlimit_kib=cells.BWLIMIT_KIB,
                 orphan_sweep_interval=cells.SWEEP_INTERVAL,
                 resize_precopy_min_free_mib=reserve_mib)
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


@pytest.mark.parametrize('fault', cells.SOURCE_FAULTS)
def test_source_fault_in_the_catch_up(
        precopy_cloud, flavors, image, servers, host_faults, fault):
    """While the guest is asked to shut down (it ignores ACPI) and the
    writes of pass 1 are pushed, it writes to a second layer. nova-compute
    killed: the restart merges both into its disk live; it keeps running.
    Host crash: both are committed into the disk at the start, and Nova's
    revert starts the guest on it."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    _resize_into_the_catch_up(cloud, flavors, source, server)
    cells.write(source, server, (LAST,))

    cells.restart_after(faults, fault, server)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    if fault == 'nova_compute_killed':
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

    cells.confirmed_on(cloud, servers, dest, server)


def _wait_for_commit(faults, server, mark, timeout=180):
    """Wait until a qemu-img run by the host's nova-compute commits a
    layer of the server's whose command line names ``mark``. Each commit
    lasts a fraction of a second: watched closely."""
    def committing():
        for pid in faults.nova_compute_children():
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    argv = f.read().decode(errors='replace')
            except OSError:
                continue
            if 'qemu-img' in argv and 'commit' in argv and \
                    server.id in argv and mark in argv:
                return True
        return False

    deadline = time.monotonic() + timeout
    while not committing():
        assert time.monotonic() < deadline, f'no commit within {timeout} s'
        time.sleep(0.005)


def test_destination_crash_in_the_merge(
        precopy_cloud, flavors, image, servers, host_faults):
    """The destination dies (nova-compute and its qemu-img) while it
    commits what the guest wrote during the pre-copy into the pre-copied
    file: finish_migration never returned. Nova 34 has no recovery for
    an instance left in RESIZE_FINISH (stock Nova's own finish_migration
    leaves it so too); the operator's reset-state and hard reboot on the
    destination finish the merge from the layers, which are only ever
    read, and the guest runs there with every write. What Nova keeps of
    the interrupted migration stays: the source's ``<dir>_resize`` (a
    whole copy, every write committed into it after power-off) and the
    migration's allocation there."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    dest = cloud.hosts['compute2']
    dest_faults = host_faults['compute2']
    _resize_into_the_catch_up(cloud, flavors, source, server)
    cells.write(source, server, (LAST,))
    # resize.dest.merge_precopied, into the pre-copied file.
    _wait_for_commit(dest_faults, server, 'novaext-precopy')

    dest_faults.kill_nova_compute(with_children=True)
    print(f'restart: {dest_faults.start_nova_compute():.1f} s')
    log_offset = os.path.getsize(dest.log('nova-compute'))

    server = cloud.api.compute.get_server(server.id)
    assert (server.status, server.task_state, server.compute_host) == (
        'RESIZE', 'resize_finish', dest.name)
    server = cells.reset_then_hard_reboot(cloud, servers, dest, server)
    with open(dest.log('nova-compute'), errors='replace') as f:
        f.seek(log_offset)
        assert 'Merged what the guest wrote during the pre-copy' in f.read()
    cells.all_marks(dest, server)
    cells.read(dest, server, (CAUGHT_UP, LAST))
    server = cells.hard_reboot(cloud, servers, dest, server)
    cells.all_marks(dest, server)
    cells.read(dest, server, (CAUGHT_UP, LAST))

    assert leftovers.leftover_files(dest, server.id) == []
    assert source.instance_files(server.id) == [server.id + '_resize']
    assert leftovers.leftover_files(source, server.id) == [
        server.id + '_resize']
    assert leftovers.processes_about(server.id) == []
    # The operator's cleanup of what Nova kept, once the guest is fine.
    shutil.rmtree(os.path.join(source.instances_dir, server.id + '_resize'))
    for migration in cloud.api.compute.get(
            f'/os-migrations?instance_uuid={server.id}',
            microversion='2.59').json()['migrations']:
        cloud.api.placement.delete(f'/allocations/{migration["uuid"]}')


def test_destination_rsync_daemon_killed_in_pass_one(
        precopy_cloud, flavors, image, servers, host_faults):
    """Pass 1's push fails while the guest runs: its writes are merged
    back live, the resize fails with the guest running on (same QEMU),
    ACTIVE on the source. The partial pre-copy the source could not
    remove goes with the destination's orphan sweep once its daemon is
    back."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    dest_faults = host_faults['compute2']
    dest = cloud.hosts['compute2']
    qemu = faults.qemu_pid(server)
    _resize_into_pass_one(cloud, flavors, source, server)

    dest_faults.kill_rsyncd(with_transfers=True)
    try:
        server = cells.settled(servers, server, source.name)
    finally:
        dest_faults.start_rsyncd()

    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    assert 'novaext-writes' not in source.domain(server).XMLDesc(0)
    cells.wait_until('the destination sweeps the partial copy',
                     lambda: dest.instance_files(server.id) == [],
                     timeout=4 * cells.SWEEP_INTERVAL)
    cells.assert_recovered(cloud, servers, source, server, 1)


def test_server_deleted_in_pass_one(
        precopy_cloud, flavors, image, servers, host_faults):
    """Deleted while pass 1 pushes and the guest writes to its writes
    layer: Nova's delete stops the push (job tracker) and the guest;
    nothing of it is left on either host, in libvirt or in placement."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    _resize_into_pass_one(cloud, flavors, source, server)

    cloud.api.compute.delete_server(server)
    cloud.api.compute.wait_for_delete(server, interval=1, wait=120)

    cells.wait_until('nothing left of it', lambda: not any(
        h.instance_files(server.id) for h in cloud.hosts.values()),
        timeout=4 * cells.SWEEP_INTERVAL)
    for host in cloud.hosts.values():
        assert leftovers.leftover_files(host, server.id) == [], host.name
        names = [d.UUIDString() for d in host.libvirt().listAllDomains()]
        assert server.id not in names, host.name
    assert leftovers.processes_about(server.id) == []
    assert leftovers.allocations(cloud, server.id) == {}


def test_source_crash_in_the_commit_after_power_off(
        precopy_cloud, flavors, image, servers, host_faults):
    """The guest is off; the source commits what it wrote during the
    pre-copy into its disk when the host dies (nova-compute and the
    qemu-img). At the start the commit is done again from the layers
    (only ever read) and Nova's revert starts the guest on its disk with
    every write."""
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    _resize_into_the_catch_up(cloud, flavors, source, server)
    cells.write(source, server, (LAST,))
    # The guest's writes layers into its disk, after power-off.
    _wait_for_commit(faults, server, 'novaext-')

    faults.kill_nova_compute(with_children=True)
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    cells.read(source, server, (CAUGHT_UP, LAST))
    server = cells.assert_recovered(cloud, servers, source, server, 1)
    cells.read(source, server, (CAUGHT_UP, LAST))


def _log_since(host, offset):
    with open(host.log('nova-compute'), errors='replace') as f:
        f.seek(offset)
        return f.read()


def _assert_running_on_its_own_disk(faults, source, server, qemu):
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    assert 'novaext-writes' not in source.domain(server).XMLDesc(0)


def test_destination_full_in_pass_one(
        precopy_cloud, flavors, image, servers, host_faults):
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    dest = cloud.hosts['compute2']
    offset = os.path.getsize(source.log('nova-compute'))
    with host_faults['compute2'].small_file_system(
            os.path.join(dest.instances_path, server.id), 48) as seen:
        _resize_into_pass_one(cloud, flavors, source, server)
        server = cells.settled(servers, server, source.name)
        # (The directory itself is the file system's mount point here.)
        assert sorted(os.listdir(seen)) in ([], ['lost+found'])

    _assert_running_on_its_own_disk(faults, source, server, qemu)
    assert 'No space left on device' in _log_since(source, offset)
    cells.assert_recovered(cloud, servers, source, server, 1)


def test_source_free_space_falling_in_pass_one(
        precopy_cloud, reserve_mib, flavors, image, servers, host_faults):
    cloud = precopy_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    offset = os.path.getsize(source.log('nova-compute'))
    _resize_into_pass_one(cloud, flavors, source, server)

    with faults.ballast(source.dir,
                        cells.below_half_of(source, reserve_mib)):
        server = cells.settled(servers, server, source.name)

    _assert_running_on_its_own_disk(faults, source, server, qemu)
    assert f'The pre-copy needs {reserve_mib // 2} MiB free' in \
        _log_since(source, offset)
    cells.assert_recovered(cloud, servers, source, server, 1)
