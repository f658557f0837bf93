"""The periodic image-cache cleanup, keeping bases of waiting resize disks.

Nova's manager counts a ``<instance>_resize`` directory (the source copy a
resize or cold migration keeps for revert) as in use only while the
instance is in a resize task state or RESIZED. A resize that failed and
left the instance in ERROR (or reset) still has its only revertible disk
there, and its base must survive too. novaext's manager counts the
``_resize`` directory of every instance it is given, whatever its state.

Entries of ``_base`` that are not bases (base_entry: symbolic links,
devices, FIFOs, other users' files, hard links) are logged and left
alone: Nova's scan would time-stamp or remove through them.

It also removes what a crashed download, pull from a peer or legacy
restore leaves in ``_base`` (``<name>.part``, Nova's ``<name>.converted``):
at nova-compute's start, each one whose base's lock no one holds
(``remove_interrupted_partials``; the one nova-compute that died wrote
it), and in the periodic run those unchanged for long; and the
verified-base records (``<name>.verified``) whose base is gone,
which Nova's scan never looks at; quarantined bases
(``<name>.quarantined-<time>``) are the operator's and stay. Everything
else is Nova's.
"""

import os
import stat
import time

from nova.virt.libvirt import imagecache
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_log import log as logging

from novaext.imagebackend import base_entry
from novaext.imagebackend import base_names
from novaext.imagebackend import verified_base

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

RESIZE_SUFFIX = '_resize'
PARTIAL_SUFFIXES = (base_names.PART_SUFFIX, '.converted')
# Nova's utils.synchronized: the prefix of its external lock files.
NOVA_LOCK_PREFIX = 'nova-'


def remove_interrupted_partials(base_dir, lock_path):
    """Remove the partial files in ``base_dir`` that no one is writing:
    those whose base's external lock (in ``lock_path``, the lock every
    base is made under, by Nova and novaext) can be taken at once. Call
    when nova-compute starts: the download, pull or conversion that
    wrote such a file died with the previous nova-compute. A host that
    shares instances_path and is writing one holds its lock; that file
    is left. Never raises.

    :returns: the names removed
    """
    removed = []
    try:
        names = sorted(os.listdir(base_dir))
    except OSError:
        return removed
    for name in names:
        if not name.endswith(PARTIAL_SUFFIXES):
            continue
        path = os.path.join(base_dir, name)
        base = name.rsplit('.', 1)[0]
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            lock = lockutils.external_lock(
                base, lock_file_prefix=NOVA_LOCK_PREFIX, lock_path=lock_path)
            if not lock.acquire(blocking=False):
                LOG.info('Leaving %s: its base is being made', path)
                continue
            try:
                os.unlink(path)
            finally:
                lock.release()
        except OSError as e:
            LOG.warning('Could not remove %(path)s: %(error)s',
                        {'path': path, 'error': e})
            continue
        LOG.warning('Removed %s, left by a download or conversion that '
                    'nova-compute did not finish', path)
        removed.append(name)
    return removed


class ExtImageCacheManager(imagecache.ImageCacheManager):

    def _list_running_instances(self, context, all_instances):
        running = super()._list_running_instances(context, all_instances)
        for instance in all_instances:
            running['instance_names'].update(
                (instance.name + RESIZE_SUFFIX,
                 instance.uuid + RESIZE_SUFFIX))
        return running

    def _scan_base_images(self, base_dir):
        super()._scan_base_images(base_dir)
        refusals = {name: base_entry.refusal(os.path.join(base_dir, name))
                    for name in os.listdir(base_dir)}
        untrusted = {name for name, why in refusals.items() if why}
        for name in sorted(untrusted):
            LOG.warning('Leaving %(path)s alone: not a base (%(what)s)',
                        {'path': os.path.join(base_dir, name),
                         'what': refusals[name]})
        paths = {os.path.join(base_dir, name) for name in untrusted}
        self.unexplained_images = [p for p in self.unexplained_images
                                   if p not in paths]
        self.originals = [p for p in self.originals if p not in paths]
        self.back_swap_images -= untrusted
        self.back_ephemeral_images -= untrusted

    def _find_base_file(self, base_dir, fingerprint):
        """Nova's, but only entries that are bases: an image in use is
        time-stamped, and never through a link."""
        for path in super()._find_base_file(base_dir, fingerprint):
            if base_entry.refusal(path) is None:
                yield path

    def update(self, context, all_instances):
        super().update(context, all_instances)
        base_dir = self._get_base()
        if base_dir and CONF.image_cache.remove_unused_base_images:
            self.remove_stale_partial_files(base_dir)
            self.remove_orphan_markers(base_dir)

    def remove_orphan_markers(self, base_dir):
        """Remove the ``<name>.verified`` records whose base is gone (a
        record is written after its base is in place, and removed before
        its base is moved aside).

        :returns: the names removed
        """
        removed = []
        suffix = verified_base.MARKER_SUFFIX
        for name in sorted(os.listdir(base_dir)):
            if not name.endswith(suffix):
                continue
            base = os.path.join(base_dir, name[:-len(suffix)])
            if os.path.lexists(base):
                continue
            try:
                os.unlink(os.path.join(base_dir, name))
            except FileNotFoundError:
                continue
            removed.append(name)
        if removed:
            LOG.info('Removed records of removed bases: %s',
                     ', '.join(removed))
        return removed

    def remove_stale_partial_files(self, base_dir, now=None):
        """Remove the partial files in ``base_dir`` whose status has not
        changed for remove_unused_original_minimum_age_seconds.

        The age is the inode's change time, which a writer cannot set back
        (rsync --times and utime set the modification time only), so a
        file still being written or just renamed into place is young.
        Symlinks and anything but regular files are left alone.

        :returns: the names removed
        """
        now = time.time() if now is None else now
        maxage = CONF.image_cache.remove_unused_original_minimum_age_seconds
        removed = []
        for name in sorted(os.listdir(base_dir)):
            if not name.endswith(PARTIAL_SUFFIXES):
                continue
            path = os.path.join(base_dir, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or now - st.st_ctime < maxage:
                continue
            LOG.info('Removing stale partial file %(path)s, unchanged for '
                     '%(age)d s', {'path': path, 'age': now - st.st_ctime})
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(name)
        return removed
