"""Free space and a live snapshot (issue 30, item 3): the snapshots
directory's file system (by default the instances' own, where a full disk
would pause the guest) filling while the block copy runs.

The reserve ([novaext]snapshot_min_free_mib) is set from the free space
measured when the module starts, less what the snapshot writes and a
margin, so that the snapshot starts on any machine; a ballast file then
takes the free space below half the reserve in the middle of the copy.
The copy is aborted at its next poll, the guest runs on in the same QEMU
on its own disk with its data, the snapshot fails (its image deleted),
and nothing of it is left.
"""

import os

import pytest

from tests.faults import cells
from tests.faults import leftovers
from tests.faults.test_snapshot import COPIED

MiB = cells.MiB
# Room for what the snapshot writes (a copy of the ~500 MiB top layer and
# the full image) and the cells' own writes.
MARGIN_MIB = 3072


@pytest.fixture(scope='module')
def reserve_mib(cloud):
    return cells.free_mib(cloud.hosts['compute1'].instances_dir) - MARGIN_MIB


@pytest.fixture(scope='module')
def watched_cloud(cloud, with_options, reserve_mib):
    if cloud.hosts['compute1'].stock_nova:
        pytest.skip('stock Nova: no free-space watch on its snapshots')
    with_options(['compute1'], snapshot_min_free_mib=reserve_mib)
    return cloud


def test_free_space_falling_in_the_block_copy(
        watched_cloud, reserve_mib, flavors, image, servers, host_faults):
    cloud = watched_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    cells.write(source, server, (COPIED,))
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    before = cells.snapshot_entries(source)
    offset = os.path.getsize(source.log('nova-compute'))

    snapshot = cloud.api.compute.create_server_image(
        server, 'novaext-faults-snapshot-space')
    servers.image_ids.append(snapshot.id)
    cells.wait_for_block_copy(source, server)
    with faults.ballast(source.dir,
                        cells.below_half_of(source, reserve_mib)):
        cells.snapshot_settled(cloud, server, snapshot, source, before)

    server = cells.settled(servers, server, source.name)
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    dom = source.domain(server)
    assert dom.isActive() and '<mirror' not in dom.XMLDesc(0)
    assert dom.isPersistent()
    with open(source.log('nova-compute'), errors='replace') as f:
        f.seek(offset)
        log = f.read()
    assert f'The snapshot needs {reserve_mib // 2} MiB free' in log
    cells.read(source, server, (COPIED,))
    assert leftovers.processes_about(server.id) == []
    cells.assert_recovered(cloud, servers, source, server, 1, during=False)
