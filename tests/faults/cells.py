"""What every fault cell does around its fault: a server with data, the
operation slowed so the fault lands where it is meant to, and after the
recovery the data read back through the guest's QEMU, before and after
a hard reboot (which rebuilds the domain from the disks, so a write left
anywhere else is seen missing)."""

import os
import time

import openstack

from tests.cloud import checks
from tests.faults import leftovers

MiB = 1024 * 1024
# ~100 MiB in the overlay at 8 MiB/s: a push of ~12 s to put a fault in.
BWLIMIT_KIB = 8192
BULK = ('0x44', 300 * MiB, 96 * MiB)
# [novaext]orphan_sweep_interval on the fault tier's hosts (default 600).
SWEEP_INTERVAL = 10
# Written while the operation runs (before the fault).
DURING = (('0x6c', 200 * MiB, 2 * MiB), ('0x6d', 160 * MiB, 512 * 1024))


def write(host, server, marks):
    for pattern, offset, length in marks:
        host.guest_io(server, f'write -P {pattern} {offset} {length}',
                      timeout=60)
    host.guest_io(server, 'flush')


def read(host, server, marks):
    for pattern, offset, length in marks:
        host.guest_io(server, f'read -P {pattern} {offset} {length}',
                      timeout=60)


def server_with_overlay(cloud, servers, flavors, image, host='compute1'):
    """A server on ``host`` whose overlay holds checks.MARKS and BULK."""
    source = cloud.hosts[host]
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR],
                          source.name)
    checks.write_marks(source, server)
    write(source, server, (BULK,))
    return source, server


def all_marks(host, server, during=True):
    """Every mark written, read through the running QEMU on ``host``."""
    checks.assert_marks(host, server)
    read(host, server, (BULK, *(DURING if during else ())))


def wait_until(what, check, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f'{what}: not within {timeout} s')


def pushing(host, server, name='disk'):
    """True while an rsync works on the server's files, with ``name``
    (a file of the instance directory, as the host sees it) present."""
    path = host.outside(host.disk_of(server, name))
    return os.path.exists(path) and bool(leftovers.processes_about(server.id))


# The source's faults a restart recovers from: nova-compute SIGKILLed
# (the guest's QEMU lives on), or the host crashing (the QEMU dies too).
SOURCE_FAULTS = ('nova_compute_killed', 'host_crash')


def restart_after(faults, fault, server):
    """Put ``fault`` (one of SOURCE_FAULTS) on the host of ``faults`` and
    start its nova-compute again, as an operator (or the host's boot)
    does; Nova's restart then recovers what it finds."""
    if fault == 'host_crash':
        faults.crash(server)
    else:
        faults.kill_nova_compute()
    print(f'restart after {fault}: {faults.start_nova_compute():.1f} s '
          'to node report')


def settled(servers, server, host_name, timeout=120):
    """The server once no task runs on it, on ``host_name``; ERROR
    included (Servers.wait_for fails on it at once, while Nova may still
    be clearing the task)."""
    api = servers.cloud.api.compute
    deadline = time.monotonic() + timeout
    while True:
        current = api.get_server(server.id)
        if current.task_state is None and current.compute_host == host_name:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f'{server.id} not settled on {host_name}: status '
                f'{current.status}, task {current.task_state}, host '
                f'{current.compute_host}, fault {current.fault}')
        time.sleep(1)


def hard_reboot(cloud, servers, host, server):
    """Nova's hard reboot, waited for until the guest runs on ``host``."""
    cloud.api.compute.reboot_server(server, 'HARD')
    return servers.wait_for(
        server, lambda s: s.status == 'ACTIVE' and s.task_state is None and
        host.domain(s) is not None and host.domain(s).isActive(),
        'hard rebooted', timeout=120)


def reset_then_hard_reboot(cloud, servers, host, server):
    """The documented action for a server in ERROR: reset-state --active,
    then a hard reboot."""
    cloud.api.compute.reset_server_state(server, 'active')
    return hard_reboot(cloud, servers, host, server)


def assert_recovered(cloud, servers, host, server, disk_gb, during=True):
    """The data reads back now and after a hard reboot; nothing is left
    anywhere; the server holds resources on ``host`` alone."""
    all_marks(host, server, during)
    server = hard_reboot(cloud, servers, host, server)
    all_marks(host, server, during)
    leftovers.assert_nothing_left(cloud, server, host.name)
    leftovers.assert_allocated_only_on(cloud, server, host.name, disk_gb)
    return server


def snapshot_entries(host):
    """What the snapshots directory of ``host`` holds now."""
    directory = host.outside(host.path('snapshots'))
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


def snapshot_scratch(host, before):
    """The snapshots' temporary directories (novaext's are named
    novaext-snapshot-*, stock Nova's tmp*): what the snapshots directory
    holds that it did not hold ``before``."""
    return sorted(snapshot_entries(host) - before)


def snapshot_settled(cloud, server, snapshot, host, before, timeout=120):
    """Wait until the interrupted ``snapshot`` (an image) of ``server`` is
    over: the image no longer saving, no task on the server, no scratch
    directory on ``host`` but those there ``before``. The request, never
    acknowledged by the dead nova-compute, is delivered again to the new
    one, which may take the snapshot once more: that ends too."""
    def state():
        try:
            image_status = cloud.api.image.get_image(snapshot.id).status
        except openstack.exceptions.NotFoundException:
            image_status = 'deleted'  # Nova deletes a failed snapshot's
        return (image_status,
                cloud.api.compute.get_server(server.id).task_state,
                snapshot_scratch(host, before))

    deadline = time.monotonic() + timeout
    while True:
        image_status, task_state, scratch = state()
        if image_status != 'saving' and task_state is None and not scratch:
            break
        assert time.monotonic() < deadline, (
            f'not settled within {timeout} s: image {image_status}, task '
            f'{task_state}, scratch left {scratch}')
        time.sleep(0.2)
    print('the interrupted snapshot\'s image ended', image_status)


def free_mib(path):
    """MiB an unprivileged writer can still allocate on ``path``'s file
    system."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // MiB


def below_half_of(host, reserve_mib):
    """Bytes a ballast on ``host``'s instances file system must take to
    leave 256 MiB less free than half of ``reserve_mib``."""
    return (free_mib(host.instances_dir) - reserve_mib // 2 + 256) * MiB


def wait_for_block_copy(host, server, timeout=60):
    """Wait, watching closely, until the server's domain on ``host``
    mirrors a disk (a live snapshot's block copy runs)."""
    def copying():
        dom = host.domain(server)
        return dom is not None and '<mirror' in dom.XMLDesc(0)

    deadline = time.monotonic() + timeout
    while not copying():
        assert time.monotonic() < deadline, (
            f'no block copy within {timeout} s')
        time.sleep(0.02)


def confirmed_on(cloud, servers, dest, server):
    """The move finished by itself: VERIFY_RESIZE on ``dest`` with every
    write; confirmed, the data reads back and nothing is left."""
    server = settled(servers, server, dest.name, timeout=180)
    assert server.status == 'VERIFY_RESIZE', server.fault
    all_marks(dest, server)
    cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    return assert_recovered(cloud, servers, dest, server, 2)
