"""novaext's qcow2 image backend: Nova's Qcow2 plus delta-snapshot boot.

``ExtQcow2.cache`` classifies the disk's image (image_kind), looks the case
up in cache_plan.PLAN and runs its steps. Normal images and full snapshots
go to Nova's own ``Qcow2.cache`` unchanged. A delta snapshot is downloaded
as it is (no format conversion), checked (image_safety), pointed at its
base in ``_base`` with a metadata-only rebase, and grown to the flavor's
size; its base is fetched once per host, under the same external lock
Nova takes for that base name.
"""

import functools
import os

from nova import exception
from nova import utils
from nova.image import glance
from nova.virt import images
from nova.virt.libvirt import imagebackend
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

from novaext import qemu_img
from novaext.imagebackend import base_entry
from novaext.imagebackend import base_names
from novaext.imagebackend import base_once
from novaext.imagebackend import cache_plan
from novaext.imagebackend import delta_base
from novaext.imagebackend import image_kind
from novaext.imagebackend import image_safety
from novaext.imagebackend import legacy_base
from novaext.imagebackend import verified_base
from novaext.imagebackend.cache_plan import Purpose
from novaext.imagebackend.cache_plan import Step

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

# Nova's own class, held here: Nova's parity tests (tests/conformance.py)
# point the name nova.virt.libvirt.imagebackend.Qcow2 at ExtQcow2.
NovaQcow2 = imagebackend.Qcow2
# The fetch Nova's driver hands to cache() for image bases; replaced by
# the verified one (anything else, a test's stand-in included, is kept).
NOVA_FETCH_IMAGE = libvirt_utils.fetch_image


def register(backend, use_cow_images):
    """Put ExtQcow2 behind 'qcow2' (and 'default' with use_cow_images)."""
    backend.BACKEND['qcow2'] = ExtQcow2
    if use_cow_images:
        backend.BACKEND['default'] = ExtQcow2


def fetch_base_by_sha1(context, base_path, base_sha1, lock_path,
                       delta_image_id, trusted_certs=None):
    """Make ``base_path`` hold the image whose id hashes to ``base_sha1``.

    Fetched at most once per host, under the lock Nova takes for that
    base name; the image is found by its image_id_sha1 property.
    """
    def check(path):
        _check_base_of_delta(context, path, base_sha1, delta_image_id,
                             trusted_certs)

    def fetch(path):
        base_id = delta_base.find_base_image_id(
            context, glance.API(), base_sha1, delta_image_id)
        LOG.info('Fetching base %(base)s of delta snapshot %(delta)s '
                 'from image %(id)s',
                 {'base': base_sha1, 'delta': delta_image_id, 'id': base_id})
        try:
            verified_base.make_base(context, path, base_id, trusted_certs)
        except exception.ImageUnacceptable as e:
            raise exception.ImageUnacceptable(
                image_id=delta_image_id,
                reason=f'its base image is unacceptable: {e}') from e

    base_once.make_once(base_path, base_sha1, lock_path, fetch,
                        when_present=check)


def fetch_image_base(context, base_path, image_id, lock_path,
                     trusted_certs=None):
    """Make ``base_path`` hold ``image_id`` (Nova's fetch, under lock)."""
    base_once.make_once(
        base_path, os.path.basename(base_path), lock_path,
        lambda path: verified_base.make_base(context, path, image_id,
                                             trusted_certs),
        when_present=lambda path: verified_base.check(
            context, path, image_id, trusted_certs=trusted_certs))


def _check_base_of_delta(context, base_path, base_sha1, delta_image_id,
                         trusted_certs):
    """verified_base.check for a delta's base, whose image is found by its
    sha1 only when the base has no fitting record (call under its lock)."""
    if (not CONF.novaext.verify_bases or
            verified_base.fitting_marker(base_path) is not None):
        return
    try:
        base_id = delta_base.find_base_image_id(
            context, glance.API(), base_sha1, delta_image_id)
    except (exception.ImageNotFound, exception.GlanceConnectionFailed) as e:
        LOG.warning('Base %(base)s of delta snapshot %(delta)s has no '
                    'record of being verified and the image service cannot '
                    'verify it (%(err)s): using it as Nova does',
                    {'base': base_path, 'delta': delta_image_id, 'err': e})
        return
    verified_base.check(context, base_path, base_id,
                        trusted_certs=trusted_certs)


def verify_present_base(context, name, image_id, lock_path,
                        image=None, trusted_certs=None):
    """Before an image base ``_base/name`` that is here backs a disk or
    is a rebase target: verified_base.check under the base's lock (for a
    delta's base, its image is found by sha1). Legacy ``<sha1>_<GB>``
    bases are copies of a checked base; other names are not image bases.
    """
    path = os.path.join(base_names.base_dir(), name)
    if not base_names.is_sha1(name) or not os.path.lexists(path):
        return

    @utils.synchronized(name, external=True, lock_path=lock_path)
    def check_once():
        if name == base_names.of_image(image_id):
            verified_base.check(context, path, image_id, image,
                                trusted_certs)
        else:
            _check_base_of_delta(context, path, name, image_id,
                                 trusted_certs)
    check_once()


def _verified_fetch(target, context, image_id, trusted_certs=None, *,
                    image, **kwargs):
    """Nova's fetch_func contract, downloading a verified base."""
    verified_base.make_base(context, target, image_id, trusted_certs, image)


def _base_must_exist(target, *args, **kwargs):
    raise exception.ImageNotFound(image_id=os.path.basename(target))


class _DeltaBoot:
    """The state one delta-snapshot ``cache`` call works on."""

    def __init__(self, disk, context, image, base_sha1, size,
                 trusted_certs):
        self.disk = disk
        self.context = context
        self.image = image
        self.image_id = image['id']
        self.base_sha1 = base_sha1
        self.size = size
        self.trusted_certs = trusted_certs
        self.base = self._base_path()
        self.part = base_names.part_of(disk.path)

    def _base_path(self):
        expected = os.path.join(base_names.base_dir(), self.base_sha1)
        if not self.disk.exists():
            return expected
        backing = libvirt_utils.get_disk_backing_file(
            self.disk.path, basename=False, format='qcow2')
        if backing is None:
            return expected
        name = os.path.basename(backing)
        if (os.path.dirname(backing) != base_names.base_dir() or
                name.split('_')[0] != self.base_sha1):
            raise exception.ImageUnacceptable(
                image_id=self.image_id,
                reason=f'existing disk {self.disk.path} is backed by '
                       f'{backing!r}, not by base {self.base_sha1}')
        return backing

    def _fetch_base(self):
        ensure = functools.partial(
            fetch_base_by_sha1, self.context, base_sha1=self.base_sha1,
            lock_path=self.disk.lock_path, delta_image_id=self.image_id,
            trusted_certs=self.trusted_certs)
        name = os.path.basename(self.base)
        if base_names.parse_legacy(name):
            legacy_base.restore(base_names.base_dir(), name, ensure,
                                self.disk.lock_path)
        else:
            ensure(self.base)

    def _touch_base(self):
        if not base_entry.present(self.base):
            return
        verify_present_base(self.context, os.path.basename(self.base),
                            self.image_id, self.disk.lock_path,
                            trusted_certs=self.trusted_certs)
        try:
            os.utime(self.base, None)
        except PermissionError:
            pass

    def run(self, steps):
        try:
            for step in steps:
                getattr(self, '_' + step.name.lower())()
        finally:
            fileutils.delete_if_exists(self.part)

    def _fetch_delta(self):
        images.fetch(self.context, self.image_id, self.part,
                     self.trusted_certs)
        image_safety.check_delta_snapshot(
            self.part, self.image_id, self.image.get('disk_format'),
            self.base_sha1)

    def _place_delta(self):
        base_format = images.qemu_img_info(self.base).file_format
        qemu_img.rebase_unsafe(self.part, self.base, base_format)
        os.rename(self.part, self.disk.path)

    def _empty_overlay(self):
        # Nova's own Qcow2.cache: the base exists, so it only creates the
        # overlay on it (under Nova's lock) at the requested size.
        NovaQcow2.cache(
            self.disk, fetch_func=_base_must_exist,
            filename=os.path.basename(self.base), size=self.size)

    def _grow(self):
        if self.size and self.size > self.disk.get_disk_size(self.disk.path):
            self.disk.resize_image(self.size)


class ExtQcow2(NovaQcow2):
    """Nova's Qcow2 image that also boots from delta snapshots."""

    def cache(self, fetch_func, filename, size=None, safe=False, *args,
              **kwargs):
        context = kwargs.get('context')
        image_id = kwargs.get('image_id')
        # Whatever the path, nothing is done through a base entry that is
        # not a base (Nova's own cache would time-stamp through a link).
        base_entry.refuse_untrusted(
            os.path.join(base_names.base_dir(), filename))
        if context is None or image_id is None:
            # ephemeral, swap, or a copy from another host: Nova's path
            return super().cache(fetch_func, filename, size, safe, *args,
                                 **kwargs)
        if self.exists() and base_entry.present(
                os.path.join(base_names.base_dir(), filename)):
            # Nova's own "nothing to fetch" case, decided as Nova does
            # (a resize destination: the disk was just rebased onto it).
            verify_present_base(context, filename, image_id, self.lock_path,
                                trusted_certs=kwargs.get('trusted_certs'))
            return super().cache(fetch_func, filename, size, safe, *args,
                                 **kwargs)
        present = self.present_backing()
        if present is not None:
            # The disk and the base it points to are both here: nothing to
            # fetch and nothing to ask the image service (which may be
            # down), as in Nova. Nova's path with the disk's own base name
            # only grows the disk; for a delta-snapshot instance that base
            # is the delta's base, not sha1(image id).
            verify_present_base(context, present, image_id, self.lock_path,
                                trusted_certs=kwargs.get('trusted_certs'))
            return super().cache(fetch_func, present, size, safe, *args,
                                 **kwargs)
        try:
            image = glance.API().get(context, image_id)
        except exception.ImageNotFound:
            if self._fetch_own_base_by_sha1(context, image_id, kwargs):
                return super().cache(fetch_func, self.present_backing(),
                                     size, safe, *args, **kwargs)
            return super().cache(fetch_func, filename, size, safe,
                                 *args, **kwargs)
        except exception.GlanceConnectionFailed:
            # No answer from the image service: its kind cannot be told,
            # so Nova's path, exactly as Nova would go: nothing to fetch if
            # the base is here, else Nova's fetch fails the same way and
            # the driver pulls the base from a peer.
            return super().cache(fetch_func, filename, size, safe,
                                 *args, **kwargs)
        kind, base_sha1 = image_kind.classify(image)
        if base_names.parse_legacy(filename):
            return self._restore_legacy_backing(
                context, image, base_sha1, filename, size,
                kwargs.get('trusted_certs'))
        legacy = self._existing_legacy_backing()
        if legacy is not None:
            # Nova asks for the plain base (resize, cold migration) of a
            # disk backed by <sha1>_<GB>, then grows that as if it were
            # qcow2; restoring it here first leaves Nova nothing to grow.
            self._restore_legacy_backing(
                context, image, base_sha1, legacy, size,
                kwargs.get('trusted_certs'))
        base_present = base_sha1 is not None and base_entry.present(
            os.path.join(base_names.base_dir(), base_sha1))
        # Nova names the base it wants: sha1(image_ref) to boot, the disk's
        # backing file name to restore a backing.
        purpose = (Purpose.BACKING
                   if base_sha1 and filename.split('_')[0] == base_sha1
                   else Purpose.BOOT)
        steps = cache_plan.steps_for(kind, purpose, self.exists(),
                                     base_present)
        if steps == (Step.NOVA_CACHE,):
            verify_present_base(context, filename, image_id, self.lock_path,
                                image, kwargs.get('trusted_certs'))
            if fetch_func is NOVA_FETCH_IMAGE:
                fetch_func = functools.partial(_verified_fetch, image=image)
            return super().cache(fetch_func, filename, size, safe, *args,
                                 **kwargs)
        LOG.debug('Disk %(path)s from %(kind)s %(id)s, %(purpose)s: '
                  '%(steps)s',
                  {'path': self.path, 'kind': kind.value, 'id': image_id,
                   'purpose': purpose.value,
                   'steps': [s.value for s in steps]})
        _DeltaBoot(self, context, image, base_sha1, size,
                   kwargs.get('trusted_certs')).run(steps)

    def _fetch_own_base_by_sha1(self, context, image_id, kwargs):
        """The image is gone from the image service, but the existing disk
        is backed by a bare ``<sha1>`` base that is not here (a disk from a
        delta snapshot that was deleted since, arriving by resize): fetch
        that base from the image service by its ``image_id_sha1``.

        :returns: True when the base is now here; False when there is no
            such disk, or the image service has no such base either (then
            Nova's path fails as Nova's does and the driver may pull the
            base from a peer)
        """
        name = self.backing_base_name()
        if (name is None or not base_names.is_sha1(name) or
                name == base_names.of_image(image_id)):
            return False  # no disk, or backed by the (gone) image itself
        try:
            fetch_base_by_sha1(
                context, os.path.join(base_names.base_dir(), name), name,
                self.lock_path, image_id, kwargs.get('trusted_certs'))
        except (exception.ImageNotFound,
                exception.GlanceConnectionFailed) as e:
            LOG.info('Base %(base)s of disk %(path)s is not in the image '
                     'service either: %(err)s',
                     {'base': name, 'path': self.path, 'err': e})
            return False
        return True

    def backing_base_name(self):
        """The name in ``_base`` the existing disk is backed by, or None
        (no disk, no backing, a backing outside ``_base``, or a file that
        is not a readable qcow2: then Nova's own path decides)."""
        if not self.exists():
            return None
        try:
            backing = libvirt_utils.get_disk_backing_file(
                self.path, basename=False, format='qcow2')
        except (exception.InvalidDiskInfo, exception.DiskNotFound) as e:
            LOG.debug('No backing file read from %(path)s: %(err)s',
                      {'path': self.path, 'err': e})
            return None
        if not backing or os.path.dirname(backing) != base_names.base_dir():
            return None
        return os.path.basename(backing)

    def present_backing(self):
        """``backing_base_name()`` when that base exists here, else None."""
        name = self.backing_base_name()
        if name is None or not base_entry.present(
                os.path.join(base_names.base_dir(), name)):
            return None
        return name

    def _existing_legacy_backing(self):
        """The legacy ``<sha1>_<GB>`` backing name of this disk, or None."""
        if not self.exists():
            return None
        backing = libvirt_utils.get_disk_backing_file(self.path)
        name = os.path.basename(backing) if backing else None
        return name if name and base_names.parse_legacy(name) else None

    def _restore_legacy_backing(self, context, image, base_sha1, filename,
                                size, trusted_certs):
        """Restore a legacy ``<sha1>_<GB>`` backing (see legacy_base)."""
        sha1, _ = base_names.parse_legacy(filename)
        if base_sha1 is not None:
            expected = base_sha1
            ensure = functools.partial(
                fetch_base_by_sha1, context, base_sha1=base_sha1,
                lock_path=self.lock_path, delta_image_id=image['id'],
                trusted_certs=trusted_certs)
        else:
            expected = base_names.of_image(image['id'])
            ensure = functools.partial(
                fetch_image_base, context, image_id=image['id'],
                lock_path=self.lock_path, trusted_certs=trusted_certs)
        if sha1 != expected:
            raise exception.ImageUnacceptable(
                image_id=image['id'],
                reason=f'disk {self.path} is backed by {filename}, which is '
                       f'not a base of this image')
        legacy = legacy_base.restore(base_names.base_dir(), filename, ensure,
                                     self.lock_path)
        if not self.exists():
            libvirt_utils.create_image(self.path, 'qcow2', size,
                                       backing_file=legacy)
