"""A ``_base`` entry under a base's name that is not a base of ours is
refused through spawn, and nothing is read, written or time-stamped
through it.

Each entry holds (or leads to) the image's very bytes, so only the entry
check can stop it: a symlink to a copy elsewhere, a hard link to one, a
copy another user owns; and a FIFO, which would block any reader.
"""

import os
import shutil

import pytest

from novaext.imagebackend import base_entry
from realhost import harness

VICTIM_MTIME = 1_000_000


def _plant(kind, entry, image_copy):
    if kind == 'symlink':
        os.symlink(image_copy, entry)
    elif kind == 'hard link':
        os.link(image_copy, entry)
    elif kind == 'fifo':
        os.mkfifo(entry)
    elif kind == 'foreign owner':
        shutil.copyfile(image_copy, entry)
        os.chown(entry, 65534, 65534)


@pytest.mark.parametrize('kind', ['symlink', 'hard link', 'fifo',
                                  'foreign owner'])
def test_spawn_refuses_a_base_entry_that_is_not_ours(real_host, tiny_image,
                                                     tmp_path, kind):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    base_dir = os.path.join(real_host.instances_path, '_base')
    os.makedirs(base_dir, exist_ok=True)
    image_copy = tmp_path / 'elsewhere.raw'
    shutil.copyfile(tiny_image, image_copy)
    os.utime(image_copy, (VICTIM_MTIME, VICTIM_MTIME))
    entry = os.path.join(base_dir, harness.base_name(image_id))
    _plant(kind, entry, image_copy)
    before = os.lstat(entry)
    instance = real_host.new_instance(image_id)

    with pytest.raises(base_entry.UntrustedBaseEntry) as err:
        real_host.spawn(instance)

    assert entry in str(err.value)
    assert real_host.domain(instance) is None
    inst_dir = real_host.instance_dir(instance)
    assert not os.path.exists(os.path.join(inst_dir, 'disk'))
    after = os.lstat(entry)
    assert (after.st_mode, after.st_ino, after.st_mtime) == (
        before.st_mode, before.st_ino, before.st_mtime)
    assert os.stat(image_copy).st_mtime == VICTIM_MTIME
    assert real_host.downloads == {}


def test_spawn_refuses_a_swap_base_that_is_a_symlink(real_host, tiny_image,
                                                     tmp_path):
    """Nova's own path (swap, ephemeral) is guarded too: its cache would
    mkswap into, and time-stamp, whatever the link points at."""
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    base_dir = os.path.join(real_host.instances_path, '_base')
    os.makedirs(base_dir, exist_ok=True)
    victim = tmp_path / 'victim'
    victim.write_bytes(b'\0' * 4096)
    os.utime(victim, (VICTIM_MTIME, VICTIM_MTIME))
    os.symlink(victim, os.path.join(base_dir, 'swap_64'))
    instance = real_host.new_instance(image_id, swap_mb=64)

    with pytest.raises(base_entry.UntrustedBaseEntry):
        real_host.spawn(instance)

    assert real_host.domain(instance) is None
    assert victim.read_bytes() == b'\0' * 4096
    assert os.stat(victim).st_mtime == VICTIM_MTIME
