"""resize.recovery: what an interrupted resize left on the source, put
right at nova-compute's restart. The layers and the commits are real
qcow2 files and real qemu-img; the guest and Nova are stand-ins. (On the
real cloud, with nova-compute killed and the host crashing mid pass 1:
tests/faults/test_resize_precopy.py.)"""

import os
import subprocess
import types
from unittest import mock

import pytest

from novaext.resize import recovery

# real qcow2 files: qemu-img and qemu-io
pytestmark = pytest.mark.host

MiB = 1024 * 1024


def _qcow2(path, backing=None):
    cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
    if backing:
        cmd += ['-F', 'qcow2', '-b', backing]
    subprocess.run(cmd + [str(path), str(16 * MiB)], check=True)


def _io(path, command):
    out = subprocess.run(['qemu-io', '-f', 'qcow2', '-c', command,
                          str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and 'fail' not in out.stdout.lower(), \
        out.stdout + out.stderr
    return out.stdout


def _reads(path, pattern, offset, length=MiB):
    return 'Pattern verification failed' not in subprocess.run(
        ['qemu-io', '-f', 'qcow2', '-c',
         f'read -P {pattern} {offset} {length}', str(path)],
        capture_output=True, text=True).stdout


@pytest.fixture
def inst_dir(tmp_path):
    directory = tmp_path / 'uuid-1'
    directory.mkdir()
    _qcow2(directory / 'disk')
    _io(directory / 'disk', f'write -P 0x01 0 {4 * MiB}')
    with mock.patch.object(recovery.libvirt_utils, 'get_instance_path',
                           return_value=str(directory)):
        yield directory


def _nova(guest=None):
    nova = mock.Mock()
    if guest is None:
        nova.host.get_guest.side_effect = Exception('no domain')
    else:
        nova.host.get_guest.return_value = guest
    return nova


def _instance():
    return types.SimpleNamespace(uuid='uuid-1', flavor='m1.small',
                                 old_flavor=None)


def test_a_stopped_guests_writes_layer_is_committed_into_its_disk(
        inst_dir):
    writes = inst_dir / 'disk.novaext-writes'
    _qcow2(writes, 'disk')
    _io(writes, f'write -P 0x22 {MiB} {MiB}')

    leftovers = recovery.RedirectLeftovers(_nova(), _instance())
    assert leftovers.resolve() is False

    assert _reads(inst_dir / 'disk', '0x22', MiB)
    assert _reads(inst_dir / 'disk', '0x01', 0)
    assert sorted(os.listdir(inst_dir)) == ['disk']


def test_two_layers_commit_from_the_top_so_newer_writes_win(inst_dir):
    """The catch-up's last writes over the writes of pass 1: committing
    the lower layer alone after the upper would put older data back."""
    writes = inst_dir / 'disk.novaext-writes'
    last = inst_dir / 'disk.novaext-last-writes'
    _qcow2(writes, 'disk')
    _io(writes, f'write -P 0x22 0 {2 * MiB}')
    _qcow2(last, 'disk.novaext-writes')
    _io(last, f'write -P 0x33 {MiB} {MiB}')

    recovery.RedirectLeftovers(_nova(), _instance()).resolve()

    assert _reads(inst_dir / 'disk', '0x22', 0)
    assert _reads(inst_dir / 'disk', '0x33', MiB)
    assert sorted(os.listdir(inst_dir)) == ['disk']


def test_layers_already_merged_after_power_off_are_only_removed(inst_dir):
    """merge_after_power_off committed both layers, then rebased the last
    writes onto the destination's name: the disk holds everything, and
    the older writes layer must not be committed over it."""
    writes = inst_dir / 'disk.novaext-writes'
    last = inst_dir / 'disk.novaext-last-writes'
    _qcow2(writes, 'disk')
    _io(writes, f'write -P 0x22 0 {MiB}')
    _qcow2(last, 'disk.novaext-writes')
    subprocess.run(['qemu-img', 'rebase', '-u', '-F', 'qcow2', '-b',
                    'disk.novaext-catchup', str(last)], check=True)
    _io(inst_dir / 'disk', f'write -P 0x44 0 {MiB}')  # what the commit wrote

    recovery.RedirectLeftovers(_nova(), _instance()).resolve()

    assert _reads(inst_dir / 'disk', '0x44', 0)
    assert sorted(os.listdir(inst_dir)) == ['disk']


def test_layers_in_the_resize_directory_are_found(inst_dir):
    resize_dir = inst_dir.parent / 'uuid-1_resize'
    resize_dir.mkdir()
    _qcow2(resize_dir / 'disk')
    _qcow2(resize_dir / 'disk.novaext-writes', 'disk')
    _io(resize_dir / 'disk.novaext-writes', f'write -P 0x55 0 {MiB}')

    found = recovery.RedirectLeftovers(_nova(), _instance())
    assert [d.disk for d in found.disks] == [str(resize_dir / 'disk')]
    found.resolve()
    assert _reads(resize_dir / 'disk', '0x55', 0)
    assert os.listdir(resize_dir) == ['disk']


def _running_guest(sources):
    guest = mock.Mock()
    guest.is_active.return_value = True
    guest.get_all_disks.return_value = [
        types.SimpleNamespace(source_path=path, target_dev=dev,
                              source_type='file')
        for dev, path in sources.items()]
    block = guest.get_block_device.return_value
    block.get_job_info.side_effect = [
        None, types.SimpleNamespace(cur=5, end=5)]
    block.is_job_complete.return_value = True
    guest.has_persistent_configuration.return_value = False
    return guest


def test_a_running_guest_is_merged_live_and_keeps_running(inst_dir):
    writes = inst_dir / 'disk.novaext-writes'
    _qcow2(writes, 'disk')
    guest = _running_guest({'vda': str(writes)})

    with mock.patch.object(recovery.nova_internals,
                           'start_active_commit') as commit, \
            mock.patch.object(recovery.qemu_img, 'commit') as offline:
        running = recovery.RedirectLeftovers(_nova(guest),
                                             _instance()).resolve()

    assert running is True
    commit.assert_called_once_with(guest, 'vda', str(inst_dir / 'disk'),
                                   str(writes))
    guest.get_block_device.return_value.abort_job.assert_called_once_with(
        pivot=True)
    offline.assert_not_called()
    assert not writes.exists()


DOMAIN = """<domain><devices>
<disk type='file'><source file='/i/u/disk.novaext-writes'/>
<backingStore type='file'><source file='/i/u/disk'/></backingStore>
<target dev='vda'/></disk>
<disk type='file'><source file='/i/u/disk.local'/><target dev='vdb'/></disk>
</devices></domain>"""


def test_the_definition_names_the_disk_again():
    fixed = recovery.repoint_sources(DOMAIN)
    assert '<source file="/i/u/disk"/>' in fixed
    assert 'novaext-writes' not in fixed
    assert 'backingStore' not in fixed
    assert 'disk.local' in fixed
    assert recovery.repoint_sources(fixed) == fixed


def _migration(status='migrating'):
    migration = mock.Mock(status=status, dest_host='10.0.0.2',
                          dest_compute='dest', source_compute='src')
    return migration


def test_a_guest_still_running_on_its_disk_is_not_reverted_by_nova(
        inst_dir):
    nova = _nova(_running_guest({'vda': str(inst_dir / 'disk')}))
    nova.is_path_shared_with.return_value = False
    nova_revert = mock.Mock()
    migration = _migration()

    recovery.revert_interrupted_move(nova, 'ctx', _instance(), migration,
                                     nova_revert)

    nova_revert.assert_not_called()
    nova.remotefs.remove_dir.assert_called_once_with('10.0.0.2',
                                                     str(inst_dir))
    nova.revert_allocation.assert_called_once()
    assert migration.status == 'error'
    migration.save.assert_called_once_with()


def test_a_stopped_guest_is_reverted_by_nova_with_its_old_flavor(inst_dir):
    """Nova 34's revert reads instance.old_flavor, unset until the disks
    have moved: the flavor the instance still has stands in for it."""
    nova = _nova()
    nova.is_path_shared_with.return_value = False
    instance = _instance()
    seen = []
    nova_revert = mock.Mock(
        side_effect=lambda: seen.append(instance.old_flavor))

    recovery.revert_interrupted_move(nova, 'ctx', instance, _migration(),
                                     nova_revert)

    assert seen == ['m1.small']
    assert instance.old_flavor is None


def test_a_second_recovery_does_not_swap_allocations_again(inst_dir):
    nova = _nova()
    nova.is_path_shared_with.return_value = False
    migration = _migration(status='error')

    recovery.revert_interrupted_move(nova, 'ctx', _instance(), migration,
                                     mock.Mock())

    nova.revert_allocation.assert_not_called()
    migration.save.assert_not_called()


def test_the_partial_copy_stays_where_storage_is_shared(inst_dir):
    nova = _nova()
    nova.is_path_shared_with.return_value = True

    recovery.revert_interrupted_move(nova, 'ctx', _instance(), _migration(),
                                     mock.Mock())

    nova.remotefs.remove_dir.assert_not_called()
