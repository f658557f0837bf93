"""resize.dest.merge_precopied on real qcow2 files (qemu-img, qemu-io):
what the guest wrote during a pre-copy is committed into the pre-copied
disk, which takes the disk's name; files that do not fit are refused
with nothing changed."""

import json
import os
import subprocess
import types

import pytest
from nova import exception

from novaext.resize import dest as resize_dest

# real qcow2 files: qemu-img and qemu-io
pytestmark = pytest.mark.host

UUID = '5b1c0a8e-3a43-4c55-a5ea-5d1f1f0c3a11'
INSTANCE = types.SimpleNamespace(uuid=UUID)
# The source's base: not on this host, and never opened by the merge.
SOURCE_BASE = '/var/lib/nova/instances/_base/' + 'b' * 40


def _run(*args):
    return subprocess.run(args, check=True, capture_output=True,
                          text=True).stdout


def _qemu_io(path, command, fmt='qcow2'):
    out = _run('qemu-io', '-f', fmt, '-c', command, str(path))
    assert 'Pattern verification failed' not in out, out


def _info(path):
    return json.loads(_run('qemu-img', 'info', '--output=json', str(path)))


def _arrived(tmp_path, writes_cluster='64k', precopied_opts=(),
             precopied_size='1G'):
    """``disk.novaext-precopy`` (over the source's base) and ``disk``,
    the writes over it, as the source pushes them."""
    precopied = tmp_path / 'disk.novaext-precopy'
    _run('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-u',
         '-b', SOURCE_BASE, *precopied_opts, str(precopied),
         precopied_size)
    # Opened without its missing base, as the destination does.
    spec = {'driver': 'qcow2', 'backing': None,
            'file': {'driver': 'file', 'filename': str(precopied)}}
    _qemu_io('json:' + json.dumps(spec), 'write -P 0xa1 0 2M', fmt='qcow2')
    disk = tmp_path / 'disk'
    _run('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-u',
         '-b', 'disk.novaext-precopy', '-o', f'cluster_size={writes_cluster}',
         str(disk), '1G')
    spec = {'driver': 'qcow2', 'file': {'driver': 'file',
                                        'filename': str(disk)},
            'backing': None}
    _qemu_io('json:' + json.dumps(spec), 'write -P 0xb2 1M 3M')
    return disk, precopied


def test_writes_are_merged_into_the_precopied_disk(tmp_path):
    disk, precopied = _arrived(tmp_path)

    merged = resize_dest.merge_precopied(str(disk), INSTANCE)

    assert merged.backing_file == SOURCE_BASE
    assert not precopied.exists()
    info = _info(disk)
    assert info['backing-filename'] == SOURCE_BASE
    assert info['backing-filename-format'] == 'raw'
    spec = {'driver': 'qcow2', 'backing': None,
            'file': {'driver': 'file', 'filename': str(disk)}}
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xa1 0 1M')
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xb2 1M 3M')


def test_an_overlay_of_anything_else_is_left_alone(tmp_path):
    disk = tmp_path / 'disk'
    _run('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-u',
         '-b', SOURCE_BASE, str(disk), '1G')
    before = disk.read_bytes()

    assert resize_dest.merge_precopied(str(disk), INSTANCE) is None
    assert disk.read_bytes() == before


@pytest.mark.parametrize('case, reason', [
    ('smaller clusters', 'clusters of 32768.* cannot be merged'),
    ('other size', '1073741824 bytes.* cannot be merged'),
    ('external data file', 'no safe qcow2.*data_file')])
def test_writes_that_do_not_fit_are_refused_unchanged(tmp_path, case,
                                                      reason):
    if case == 'smaller clusters':
        disk, precopied = _arrived(tmp_path, writes_cluster='32k')
    elif case == 'external data file':
        disk, precopied = _arrived(tmp_path, precopied_opts=(
            '-o', f'data_file={tmp_path / "elsewhere"}'))
    else:
        disk, precopied = _arrived(tmp_path, precopied_size='2G')
    before = {p: p.read_bytes() for p in (disk, precopied)}

    with pytest.raises(exception.InvalidDiskInfo, match=reason):
        resize_dest.merge_precopied(str(disk), INSTANCE)

    assert {p: p.read_bytes() for p in (disk, precopied)} == before


def _arrived_with_catch_up(tmp_path):
    """As _arrived, with the catch-up pass: ``disk.novaext-catchup`` (the
    writes of pass 1; its header still names the source's ``disk``) and
    ``disk``, the last writes over it, both overwriting what is below."""
    disk, precopied = _arrived(tmp_path)
    caught_up = tmp_path / 'disk.novaext-catchup'
    os.rename(disk, caught_up)
    _run('qemu-img', 'rebase', '-q', '-u', '-f', 'qcow2', '-F', 'qcow2',
         '-b', 'disk', str(caught_up))
    _run('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-u',
         '-b', 'disk.novaext-catchup', str(disk), '1G')
    spec = {'driver': 'qcow2', 'file': {'driver': 'file',
                                        'filename': str(disk)},
            'backing': None}
    _qemu_io('json:' + json.dumps(spec), 'write -P 0xd4 2M 3M')
    return disk, caught_up, precopied


def test_caught_up_writes_and_then_the_last_ones_are_merged_in_order(
        tmp_path):
    disk, caught_up, precopied = _arrived_with_catch_up(tmp_path)

    merged = resize_dest.merge_precopied(str(disk), INSTANCE)

    assert merged.backing_file == SOURCE_BASE
    assert not precopied.exists() and not caught_up.exists()
    assert _info(disk)['backing-filename'] == SOURCE_BASE
    spec = {'driver': 'qcow2', 'backing': None,
            'file': {'driver': 'file', 'filename': str(disk)}}
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xa1 0 1M')
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xb2 1M 1M')
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xd4 2M 3M')


def test_last_writes_without_their_caught_up_layer_are_refused_unchanged(
        tmp_path):
    disk, caught_up, precopied = _arrived_with_catch_up(tmp_path)
    caught_up.unlink()
    before = {p: p.read_bytes() for p in (disk, precopied)}

    with pytest.raises(exception.InvalidDiskInfo,
                       match='disk.novaext-catchup did not arrive'):
        resize_dest.merge_precopied(str(disk), INSTANCE)

    assert {p: p.read_bytes() for p in (disk, precopied)} == before


def _disk_info(inst_dir, *names):
    return [{'path': str(inst_dir / n), 'type': 'qcow2',
             'backing_file': 'x' if n != 'disk.config' else ''}
            for n in names]


@pytest.fixture
def dest_dir(tmp_path):
    from unittest import mock
    inst_dir = tmp_path / UUID
    inst_dir.mkdir()
    with mock.patch.object(resize_dest.libvirt_utils, 'get_instance_path',
                           return_value=str(inst_dir)):
        yield inst_dir


def test_a_disk_that_never_arrived_is_refused_not_made_afresh(dest_dir):
    """Nova's finish_migration would create a fresh root disk from the
    image in its place (issue 32: nova-compute and the daemon disagreeing
    on instances_path); the resize fails instead, nothing touched."""
    (dest_dir / 'disk.local').write_bytes(b'')
    info = _disk_info(dest_dir, 'disk', 'disk.local', 'disk.swap')

    with pytest.raises(exception.ResizeError,
                       match=r"\['disk'\] .* not received"):
        resize_dest.refuse_missing_disks(INSTANCE, info)
    assert sorted(os.listdir(dest_dir)) == ['disk.local']


def test_every_moved_disk_here_and_swap_left_to_nova(dest_dir):
    for name in ('disk', 'disk.local', 'disk.config'):
        (dest_dir / name).write_bytes(b'')
    info = _disk_info(dest_dir, 'disk', 'disk.local', 'disk.config',
                      'disk.swap')
    resize_dest.refuse_missing_disks(INSTANCE, info)


def test_nova_moves_its_own_images_types(dest_dir, monkeypatch):
    from oslo_config import cfg
    monkeypatch.setattr(cfg.CONF.libvirt, 'images_type', 'rbd',
                        raising=False)
    resize_dest.refuse_missing_disks(
        INSTANCE, _disk_info(dest_dir, 'disk'))


def _reads_all_three(disk):
    spec = {'driver': 'qcow2', 'backing': None,
            'file': {'driver': 'file', 'filename': str(disk)}}
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xa1 0 1M')
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xb2 1M 1M')
    _qemu_io('json:' + json.dumps(spec), 'read -P 0xd4 2M 3M')


@pytest.mark.parametrize('crash_after', [
    'nothing', 'the caught-up commit', 'both commits'])
def test_a_merge_interrupted_anywhere_is_finished_by_the_next_start(
        tmp_path, crash_after):
    """nova-compute died in finish_migration's merge: what a hard reboot
    runs first (finish_pending_merges) finishes it with every write."""
    from unittest import mock
    disk, caught_up, precopied = _arrived_with_catch_up(tmp_path)
    done = {'nothing': [], 'the caught-up commit': [caught_up],
            'both commits': [caught_up, disk]}[crash_after]
    from novaext import qemu_img
    for path in done:
        qemu_img.commit_into(str(path), str(precopied))

    with mock.patch.object(resize_dest.libvirt_utils, 'get_instance_path',
                           return_value=str(tmp_path)):
        merged = resize_dest.finish_pending_merges(INSTANCE)

    assert merged == [str(disk)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['disk']
    assert _info(disk)['backing-filename'] == SOURCE_BASE
    _reads_all_three(disk)


def test_a_layer_left_after_a_finished_merge_is_removed(tmp_path):
    from unittest import mock
    disk, caught_up, precopied = _arrived_with_catch_up(tmp_path)
    # Died after the rename, before the caught-up layer went.
    from novaext import qemu_img
    qemu_img.commit_into(str(caught_up), str(precopied))
    qemu_img.commit_into(str(disk), str(precopied))
    os.replace(precopied, disk)

    with mock.patch.object(resize_dest.libvirt_utils, 'get_instance_path',
                           return_value=str(tmp_path)):
        assert resize_dest.finish_pending_merges(INSTANCE) == []

    assert sorted(p.name for p in tmp_path.iterdir()) == ['disk']
    _reads_all_three(disk)
