"""Space running out in the middle of a resize with pre-copy, on either
host, while the guest runs and writes (issue 30, item 3).

- The destination's file system fills during pass 1 (a real ENOSPC: a
  small ext4 at the instance's directory in the destination's mount
  namespace).
- The source's free space falls below half of
  [novaext]resize_precopy_min_free_mib during pass 1 (a ballast file on
  its file system; the reserve is set from the free space measured when
  the module starts, so the cell fits any machine).

Either way the resize fails while the guest still runs: its writes are
merged back into its disk live, the same QEMU runs on, the server is
ACTIVE on the source with every write, and nothing is left.
"""

import os

import pytest

from tests.cloud import checks
from tests.faults import cells

MiB = cells.MiB
# The reserve is the source's free space at the module's start less this:
# the pre-copy can start while the cells' own writes come and go.
MARGIN_MIB = 2048


def _free_mib(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // MiB


@pytest.fixture(scope='module')
def reserve_cloud(cloud, with_options):
    reserve_mib = _free_mib(cloud.hosts['compute1'].instances_dir) - \
        MARGIN_MIB
    with_options(['compute1', 'compute2'], resize_precopy='true',
                 resize_precopy_min_mib=0,
                 rsync_bwlimit_kib=cells.BWLIMIT_KIB,
                 resize_precopy_min_free_mib=reserve_mib)
    return cloud, reserve_mib


def _log_since(host, offset):
    with open(host.log('nova-compute'), errors='replace') as f:
        f.seek(offset)
        return f.read()


def _resize_into_pass_one(cloud, flavors, source, server):
    cloud.api.compute.resize_server(server, flavors[checks.LARGE_FLAVOR].id)
    cells.wait_until('pass 1 of the pre-copy', lambda: cells.pushing(
        source, server, 'disk.novaext-writes'))
    cells.write(source, server, cells.DURING)


def _assert_running_on_its_own_disk(faults, source, server, qemu):
    assert server.status == 'ACTIVE', server.fault
    assert faults.qemu_pid(server) == qemu, 'the guest was restarted'
    assert 'novaext-writes' not in source.domain(server).XMLDesc(0)


def test_destination_full_in_pass_one(
        reserve_cloud, flavors, image, servers, host_faults):
    cloud, _reserve = reserve_cloud
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
        reserve_cloud, flavors, image, servers, host_faults):
    cloud, reserve_mib = reserve_cloud
    source, server = cells.server_with_overlay(cloud, servers, flavors,
                                               image)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(server)
    offset = os.path.getsize(source.log('nova-compute'))
    _resize_into_pass_one(cloud, flavors, source, server)

    # Down to 256 MiB below half the reserve.
    take = (_free_mib(source.instances_dir) - reserve_mib // 2 + 256) * MiB
    with faults.ballast(source.dir, take):
        server = cells.settled(servers, server, source.name)

    _assert_running_on_its_own_disk(faults, source, server, qemu)
    assert f'The pre-copy needs {reserve_mib // 2} MiB free' in \
        _log_since(source, offset)
    cells.assert_recovered(cloud, servers, source, server, 1)
