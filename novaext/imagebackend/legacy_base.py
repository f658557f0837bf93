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
import re

from nova import utils
from nova.virt import images
from oslo_concurrency import processutils
from oslo_utils import fileutils
from oslo_utils import units

from novaext.imagebackend import base_entry

_LEGACY_NAME = re.compile(r'([0-9a-f]{40})_([0-9]+)')


def parse(name):
    """Return ``(sha1, size in bytes)`` for a legacy base name, else None."""
    match = _LEGACY_NAME.fullmatch(name)
    if not match:
        return None
    return match.group(1), int(match.group(2)) * units.Gi


def restore(base_dir, name, ensure_base, lock_path):
    """Make ``base_dir/name`` exist, from the unsuffixed base.

    :param name: a legacy name, as ``parse`` accepts
    :param ensure_base: callable(path) that makes the unsuffixed base
        exist at ``path`` (fetching it under its own lock if needed)
    :returns: the legacy base's path
    """
    sha1, size = parse(name)
    legacy = os.path.join(base_dir, name)

    @utils.synchronized(name, external=True, lock_path=lock_path)
    def restore_once():
        if base_entry.present(legacy):
            return
        base = os.path.join(base_dir, sha1)
        ensure_base(base)
        part = legacy + '.part'
        with fileutils.remove_path_on_error(part):
            processutils.execute('cp', '--sparse=always', base, part)
            fmt = images.qemu_img_info(part).file_format
            if images.qemu_img_info(part).virtual_size < size:
                processutils.execute('qemu-img', 'resize', '-q', '-f', fmt,
                                     part, str(size))
            os.rename(part, legacy)
    restore_once()
    return legacy
