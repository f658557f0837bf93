"""ExtImageCacheManager's cleanup of partial files left in ``_base``."""

import os
import subprocess
import sys
import time
from unittest import mock

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from novaext.imagebackend import image_cache

CONF = cfg.CONF
DAY = 24 * 3600


@pytest.fixture
def base_dir(tmp_path):
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    CONF.set_override('instances_path', str(tmp_path))
    base = tmp_path / '_base'
    base.mkdir()
    yield base
    fixture.cleanUp()


def _manager():
    with mock.patch('nova.virt.libvirt.imagecache.ImageCacheManager'
                    '.__init__', return_value=None):
        return image_cache.ExtImageCacheManager()


def test_partial_files_unchanged_for_the_minimum_age_are_removed(base_dir):
    sha1 = 'a' * 40
    for name in (sha1, sha1 + '.part', sha1 + '_5.part',
                 sha1 + '.converted', 'ephemeral_1_0706d66', 'swap_64'):
        (base_dir / name).write_bytes(b'x')
    os.symlink('/etc/passwd', base_dir / ('b' * 40 + '.part'))
    (base_dir / ('c' * 40 + '.part')).mkdir()

    removed = _manager().remove_stale_partial_files(
        str(base_dir), now=time.time() + DAY + 60)

    assert removed == [sha1 + '.converted', sha1 + '.part',
                       sha1 + '_5.part']
    assert sorted(os.listdir(base_dir)) == sorted([
        sha1, 'ephemeral_1_0706d66', 'swap_64', 'b' * 40 + '.part',
        'c' * 40 + '.part'])
    assert os.path.exists('/etc/passwd')


def test_young_partial_files_are_kept(base_dir):
    """A pull in progress (or just renamed into place) is young by its
    change time, whatever modification time rsync gave it."""
    part = base_dir / ('a' * 40 + '.part')
    part.write_bytes(b'x')
    os.utime(part, (0, 0))

    removed = _manager().remove_stale_partial_files(
        str(base_dir), now=time.time() + DAY - 60)

    assert removed == [] and part.exists()


def test_update_cleans_only_when_base_images_are_removed(base_dir):
    manager = _manager()
    with mock.patch('nova.virt.libvirt.imagecache.ImageCacheManager'
                    '.update'), \
            mock.patch.object(manager, '_get_base',
                              return_value=str(base_dir), create=True), \
            mock.patch.object(manager, 'remove_stale_partial_files') as rm:
        CONF.set_override('remove_unused_base_images', False,
                          group='image_cache')
        manager.update(None, [])
        rm.assert_not_called()
        CONF.set_override('remove_unused_base_images', True,
                          group='image_cache')
        manager.update(None, [])
        rm.assert_called_once_with(str(base_dir))


@pytest.fixture
def privsep():
    from nova.tests import fixtures as nova_fixtures
    fixture = nova_fixtures.PrivsepFixture()
    fixture.setUp()
    yield
    fixture.cleanUp()


def test_entries_that_are_not_bases_are_neither_stamped_nor_removed(
        base_dir, tmp_path, privsep):
    """An image in use whose base name is a symlink: Nova's manager would
    time-stamp the link's target; an old FIFO under a base name: Nova's
    would remove it. novaext's leaves both alone and says so."""
    import hashlib
    CONF.set_override('remove_unused_base_images', True,
                      group='image_cache')
    victim = tmp_path / 'victim'
    victim.write_bytes(b'secret')
    os.utime(victim, (1000, 1000))
    in_use = 'in-use-image-id'
    linked = base_dir / hashlib.sha1(in_use.encode()).hexdigest()
    os.symlink(victim, linked)
    fifo = base_dir / ('f' * 40)
    os.mkfifo(fifo)
    os.utime(fifo, (1000, 1000))
    manager = image_cache.ExtImageCacheManager()
    manager.used_images = {in_use: (1, 0, ['instance-1'])}
    manager.instance_names = set()

    with mock.patch.object(image_cache.LOG, 'warning') as warning:
        manager._scan_base_images(str(base_dir))
        manager._age_and_verify_cached_images(None, [], str(base_dir))

    assert os.stat(victim).st_mtime == 1000
    assert os.path.islink(linked) and os.path.exists(fifo)
    said = ' '.join(str(c.args[1]) for c in warning.call_args_list)
    assert 'a symbolic link' in said and 'a FIFO' in said


# -- at nova-compute's start --------------------------------------------------

def _holding_lock(lock_path, name):
    """Another process holding the external lock of base ``name`` (as
    another host sharing instances_path would) until it is killed."""
    code = ('import sys, time\n'
            'from oslo_concurrency import lockutils\n'
            'lock = lockutils.external_lock(sys.argv[1], '
            'lock_file_prefix="nova-", lock_path=sys.argv[2])\n'
            'lock.acquire()\n'
            'print("held", flush=True)\n'
            'time.sleep(60)\n')
    holder = subprocess.Popen([sys.executable, '-c', code, name,
                               str(lock_path)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == 'held'
    return holder


def test_partials_of_a_dead_nova_compute_go_at_start(tmp_path):
    base_dir = tmp_path / '_base'
    base_dir.mkdir()
    for name in ('a' * 40 + '.part', 'b' * 40 + '.converted', 'c' * 40,
                 'c' * 40 + '.verified'):
        (base_dir / name).write_bytes(b'x')

    removed = image_cache.remove_interrupted_partials(
        str(base_dir), str(tmp_path / 'locks'))

    assert removed == ['a' * 40 + '.part', 'b' * 40 + '.converted']
    assert sorted(os.listdir(base_dir)) == ['c' * 40, 'c' * 40 + '.verified']


@pytest.mark.host
def test_a_partial_whose_base_is_being_made_elsewhere_stays(tmp_path):
    base_dir = tmp_path / '_base'
    base_dir.mkdir()
    (base_dir / ('a' * 40 + '.part')).write_bytes(b'x')
    (base_dir / ('b' * 40 + '.part')).symlink_to('/etc/passwd')
    holder = _holding_lock(tmp_path / 'locks', 'a' * 40)
    try:
        removed = image_cache.remove_interrupted_partials(
            str(base_dir), str(tmp_path / 'locks'))
    finally:
        holder.kill()
        holder.wait()

    assert removed == []
    assert sorted(os.listdir(base_dir)) == ['a' * 40 + '.part',
                                            'b' * 40 + '.part']


def test_no_base_directory_yet_is_nothing_to_do(tmp_path):
    assert image_cache.remove_interrupted_partials(
        str(tmp_path / 'missing'), str(tmp_path / 'locks')) == []
