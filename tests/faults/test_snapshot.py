"""Faults in the middle of a live snapshot: nova-compute killed while
the guest's block copy mirrors into the snapshot's scratch directory,
and while the snapshot uploads.

Nova's restart only clears the task state; novaext's start ends the
copy job (the guest stays on its disk, same QEMU), defines the domain
again if it was left transient, and removes the scratch directory. The
guest's data reads back, a new snapshot of it succeeds, and nothing of
the interrupted one is left on the host. (The snapshot request, which
the dead nova-compute never acknowledged, reaches the new one again; it
may take the snapshot once more.)
"""

from realhost.cloud.faults import limit_image_service
from tests.faults import cells
from tests.faults import leftovers

# More overlay than a resize cell needs: the copy must last long enough
# to be caught while it mirrors.
COPIED = ('0x4e', 500 * cells.MiB, 400 * cells.MiB)
# The image service's intake in the upload cell: ~10 s for the snapshot.
UPLOAD_KIB_PER_S = 16384


def test_nova_compute_killed_in_the_block_copy(
        cloud, flavors, image, servers, host_faults):
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    cells.write(source, server, (COPIED,))
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)

    before = cells.snapshot_entries(source)
    snapshot = cloud.api.compute.create_server_image(
        server, 'novaext-faults-snapshot')
    servers.image_ids.append(snapshot.id)
    cells.wait_for_block_copy(source, server)
    faults.kill_nova_compute()
    assert cells.snapshot_scratch(source, before), (
        'the scratch directory should be there')
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    cells.snapshot_settled(cloud, server, snapshot, source, before)
    _recovered_in_place(cloud, servers, source, server, faults, qemu,
                        before, (COPIED,))


def test_nova_compute_killed_in_the_upload(
        cloud, flavors, image, servers, host_faults):
    """The image service's data slowed so that the kill lands while the
    snapshot's file streams to it; nothing of the guest is in the upload
    (its disk was only read), so Nova's restart plus novaext's cleanup of
    the scratch directory is all it takes."""
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    before = cells.snapshot_entries(source)
    limit_image_service(cloud, UPLOAD_KIB_PER_S)
    try:
        snapshot = cloud.api.compute.create_server_image(
            server, 'novaext-faults-snapshot')
        servers.image_ids.append(snapshot.id)
        cells.wait_until('the upload streaming', lambda: (
            cloud.api.compute.get_server(server.id).task_state ==
            'image_uploading' and
            cloud.api.image.get_image(snapshot.id).status == 'saving'),
            timeout=120)
        faults.kill_nova_compute()
        assert cells.snapshot_scratch(source, before), (
            'the scratch directory should be there')
    finally:
        limit_image_service(cloud, 0)
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    cells.snapshot_settled(cloud, server, snapshot, source, before)
    _recovered_in_place(cloud, servers, source, server, faults, qemu,
                        before, ())


def _recovered_in_place(cloud, servers, source, server, faults, qemu,
                        before, marks):
    """The guest runs on, in the QEMU it had, on its own disk, with its
    data; a new snapshot of it succeeds and leaves nothing."""
    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    dom = source.domain(server)
    assert '<mirror' not in dom.XMLDesc(0)
    assert dom.isPersistent()
    cells.read(source, server, marks)
    cells.all_marks(source, server, during=False)
    assert leftovers.processes_about(server.id) == []

    again = servers.snapshot(server, 'novaext-faults-snapshot-again')
    assert again.status == 'active'
    # (The image turns active as its upload ends, just before the scratch
    # directory goes.)
    cells.wait_until('the scratch directory removed',
                     lambda: not cells.snapshot_scratch(source, before),
                     timeout=30)
    cells.all_marks(source, server, during=False)
