"""Legacy size-suffixed bases: ``_base/<sha1>_<GB>``.

Older Nova releases gave each root size its own copy of the base, grown
to that size, and pointed disks at it. Such disks still exist. When one
of them needs its backing restored (hard reboot, block-migration
destination), Nova 34 fetches the image under the suffixed name unsized
and then looks for ``<sha1>_<GB>_<GB>``, and fails. Here the suffixed
base is rebuilt from the unsuffixed one: a sparse copy grown to the size
its name says, made under a temporary name and renamed into place.
"""

import os

from nova.virt import images
from oslo_concurrency import processutils

from novaext import qemu_img
from novaext.imagebackend import base_names
from novaext.imagebackend import base_once


def restore(base_dir, name, ensure_base, lock_path):
    """Make ``base_dir/name`` exist, from the unsuffixed base.

    :param name: a legacy name, as ``base_names.parse_legacy`` accepts
    :param ensure_base: callable(path) that makes the unsuffixed base
        exist at ``path`` (fetching it under its own lock if needed)
    :returns: the legacy base's path
    """
    sha1, size = base_names.parse_legacy(name)
    legacy = os.path.join(base_dir, name)

    def restore_grown(path):
        base = os.path.join(base_dir, sha1)
        ensure_base(base)
        with base_once.written_whole(path) as part:
            processutils.execute('cp', '--sparse=always', base, part)
            info = images.qemu_img_info(part)
            if info.virtual_size < size:
                qemu_img.grow(part, info.file_format, size)

    base_once.make_once(legacy, name, lock_path, restore_grown)
    return legacy
