"""Faults in the middle of a live snapshot: nova-compute killed while
the guest's block copy mirrors into the snapshot's scratch directory.

Nova's restart only clears the task state; novaext's start ends the
copy job (the guest stays on its disk, same QEMU), defines the domain
again if it was left transient, and removes the scratch directory. The
guest's data reads back, a new snapshot of it succeeds, and nothing of
the interrupted one is left on the host. (The snapshot request, which
the dead nova-compute never acknowledged, reaches the new one again; it
may take the snapshot once more.)
"""

import os
import time

from tests.faults import cells
from tests.faults import leftovers

# More overlay than a resize cell needs: the copy must last long enough
# to be caught while it mirrors.
COPIED = ('0x4e', 500 * cells.MiB, 400 * cells.MiB)


def _copying(host, server):
    dom = host.domain(server)
    return dom is not None and '<mirror' in dom.XMLDesc(0)


def _entries(host):
    directory = host.outside(host.path('snapshots'))
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


def _scratch(host, before):
    """The snapshot's temporary directories (novaext's are named
    novaext-snapshot-*, stock Nova's tmp*): what the snapshots directory
    holds that it did not hold ``before``."""
    return sorted(_entries(host) - before)


def test_nova_compute_killed_in_the_block_copy(
        cloud, flavors, image, servers, host_faults):
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    cells.write(source, server, (COPIED,))
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)

    before = _entries(source)
    snapshot = cloud.api.compute.create_server_image(
        server, 'novaext-faults-snapshot')
    servers.image_ids.append(snapshot.id)
    deadline = time.monotonic() + 60
    while not _copying(source, server):
        assert time.monotonic() < deadline, 'no block copy within 60 s'
        time.sleep(0.02)
    faults.kill_nova_compute()
    assert _scratch(source, before), 'the scratch directory should be there'
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    # The snapshot request, never acknowledged by the dead nova-compute,
    # is delivered again to the new one, which may take the snapshot
    # once more: wait for that to end too.
    def state():
        return (cloud.api.image.get_image(snapshot.id).status,
                cloud.api.compute.get_server(server.id).task_state,
                _scratch(source, before))

    deadline = time.monotonic() + 120
    while True:
        image_status, task_state, scratch = state()
        if image_status != 'saving' and task_state is None and not scratch:
            break
        assert time.monotonic() < deadline, (
            f'not settled within 120 s: image {image_status}, task '
            f'{task_state}, scratch left {scratch}')
        time.sleep(0.2)
    print('the interrupted snapshot\'s image ended',
          cloud.api.image.get_image(snapshot.id).status)
    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    dom = source.domain(server)
    assert '<mirror' not in dom.XMLDesc(0)
    assert dom.isPersistent()
    cells.read(source, server, (COPIED,))
    cells.all_marks(source, server, during=False)
    assert leftovers.processes_about(server.id) == []

    again = servers.snapshot(server, 'novaext-faults-snapshot-again')
    assert again.status == 'active'
    # (The image turns active as its upload ends, just before the scratch
    # directory goes.)
    cells.wait_until('the scratch directory removed',
                     lambda: not _scratch(source, before), timeout=30)
    cells.all_marks(source, server, during=False)
