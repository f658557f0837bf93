"""resize.redirect.RedirectedWrites with a stand-in guest and qemu-img:
which disks the snapshot redirects, what each ending does, and what is
kept when a step fails. The data path (real libvirtd, QEMU, qemu-img) is
proven in tests/real/resize/test_precopy.py."""

import types
from unittest import mock
from xml.etree import ElementTree

import pytest

from novaext.resize import redirect


def _disk(dev, path, source_type='file'):
    return types.SimpleNamespace(target_dev=dev, source_path=path,
                                 source_type=source_type)


@pytest.fixture
def world(tmp_path):
    root = str(tmp_path / 'disk')
    guest = mock.Mock()
    guest.get_all_disks.return_value = [
        _disk('vda', root), _disk('vdb', str(tmp_path / 'disk.local')),
        _disk('sdb', '/dev/sdx', 'block')]
    definitions = iter(['<domain>nova</domain>'] +
                       ['<domain>snapshot</domain>'] * 10)
    guest.get_xml_desc.side_effect = lambda **kw: next(definitions)
    nova = mock.Mock()
    nova.host.get_guest.return_value = guest
    qemu_img = mock.Mock()
    qemu_img.create_overlay.side_effect = \
        lambda path, *a: open(path, 'w').close()
    with mock.patch.object(redirect, 'qemu_img', qemu_img), \
            mock.patch.object(redirect, 'qemu_img_info',
                              return_value=types.SimpleNamespace(
                                  cluster_size=65536)), \
            mock.patch.object(redirect.nova_internals,
                              'start_active_commit') as commit:
        yield types.SimpleNamespace(
            guest=guest, nova=nova, qemu_img=qemu_img, root=root,
            writes=root + '.novaext-writes', active_commit=commit,
            instance=types.SimpleNamespace(uuid='u-1'))


def _commit_job_that_finishes(guest):
    """The guest's block device, whose commit job is done at once."""
    block = guest.get_block_device.return_value
    block.get_job_info.side_effect = [
        types.SimpleNamespace(cur=5, end=5), None]
    block.is_job_complete.return_value = True
    return block


def _start(world):
    return redirect.RedirectedWrites.start(world.nova, world.instance,
                                           world.guest, [world.root])


def test_only_the_precopied_disk_is_redirected_in_one_snapshot(world):
    _start(world)

    world.qemu_img.create_overlay.assert_called_once_with(
        world.writes, 'disk', 65536)
    (conf,), flags = world.guest.snapshot.call_args
    assert flags == dict(no_metadata=True, disk_only=True, reuse_ext=True)
    disks = {d.get('name'): d for d in
             ElementTree.fromstring(conf.to_xml()).iter('disk')}
    assert {n: d.get('snapshot') for n, d in disks.items()} == {
        'vda': 'external', 'vdb': 'no', 'sdb': 'no'}
    assert disks['vda'].find('source').get('file') == world.writes


def test_a_path_that_is_no_file_disk_of_the_guest_is_refused(world):
    with pytest.raises(ValueError, match='not file disks'):
        redirect.RedirectedWrites.start(world.nova, world.instance,
                                        world.guest, ['/elsewhere/disk'])
    world.guest.snapshot.assert_not_called()


def test_refused_snapshot_leaves_nothing_behind(world, tmp_path):
    world.guest.snapshot.side_effect = RuntimeError('unsupported')

    with pytest.raises(RuntimeError):
        _start(world)

    assert not (tmp_path / 'disk.novaext-writes').exists()


def test_merge_live_commits_into_the_disk_pivots_and_cleans_up(world,
                                                               tmp_path):
    redirected = _start(world)
    block = _commit_job_that_finishes(world.guest)

    redirected.merge_live()

    world.active_commit.assert_called_once_with(
        world.guest, 'vda', world.root, world.writes)
    block.abort_job.assert_called_once_with(pivot=True)
    world.nova.host.write_instance_config.assert_called_once_with(
        '<domain>nova</domain>')
    assert not (tmp_path / 'disk.novaext-writes').exists()


def test_failed_merge_live_keeps_the_writes(world, tmp_path):
    redirected = _start(world)
    world.active_commit.side_effect = RuntimeError('block job refused')

    with pytest.raises(redirect.RedirectFailed, match='must not be'):
        redirected.merge_live()

    assert (tmp_path / 'disk.novaext-writes').exists()
    world.nova.host.write_instance_config.assert_not_called()


def test_merge_after_power_off_commits_restores_then_repoints(world):
    redirected = _start(world)

    redirected.merge_after_power_off()

    world.qemu_img.commit.assert_called_once_with(world.writes, base=None)
    world.nova.host.write_instance_config.assert_called_once_with(
        '<domain>nova</domain>')
    world.qemu_img.rebase_unsafe.assert_called_once_with(
        world.writes, 'disk.novaext-precopy', 'qcow2')


def test_failed_commit_after_power_off_leaves_the_definition_on_the_writes(
        world):
    redirected = _start(world)
    world.qemu_img.commit.side_effect = RuntimeError('No space left')

    with pytest.raises(redirect.RedirectFailed, match='No space left'):
        redirected.merge_after_power_off()

    world.nova.host.write_instance_config.assert_not_called()
    world.qemu_img.rebase_unsafe.assert_not_called()


def test_catch_up_redirects_again_over_the_writes_file(world):
    redirected = _start(world)

    assert redirected.catch_up() == {'disk': 'disk.novaext-writes'}

    last = world.root + '.novaext-last-writes'
    world.qemu_img.create_overlay.assert_called_with(
        last, 'disk.novaext-writes', 65536)
    (conf,), _ = world.guest.snapshot.call_args
    disks = {d.get('name'): d for d in
             ElementTree.fromstring(conf.to_xml()).iter('disk')}
    assert disks['vda'].find('source').get('file') == last
    assert disks['vdb'].get('snapshot') == 'no'
    assert redirected.last_writes_name('disk') == 'disk.novaext-last-writes'


def test_refused_catch_up_changes_nothing(world, tmp_path):
    redirected = _start(world)
    world.guest.snapshot.side_effect = RuntimeError('domain is not running')

    with pytest.raises(RuntimeError):
        redirected.catch_up()

    assert not (tmp_path / 'disk.novaext-last-writes').exists()
    assert redirected.last_writes_name('disk') == 'disk.novaext-writes'
    redirected.merge_after_power_off()
    world.qemu_img.commit.assert_called_once_with(world.writes, base=None)


def test_caught_up_merge_after_power_off_commits_both_layers(world):
    redirected = _start(world)
    redirected.catch_up()

    redirected.merge_after_power_off()

    last = world.root + '.novaext-last-writes'
    world.qemu_img.commit.assert_called_once_with(last, base=world.root)
    world.qemu_img.rebase_unsafe.assert_called_once_with(
        last, 'disk.novaext-catchup', 'qcow2')


def test_caught_up_merge_live_commits_both_layers_and_removes_them(
        world, tmp_path):
    redirected = _start(world)
    redirected.catch_up()
    block = _commit_job_that_finishes(world.guest)

    redirected.merge_live()

    world.active_commit.assert_called_once_with(
        world.guest, 'vda', world.root, world.root + '.novaext-last-writes')
    block.abort_job.assert_called_once_with(pivot=True)
    assert not [p for p in tmp_path.iterdir() if 'writes' in p.name]
