"""Verified bases: a base in ``_base`` is used only if it is what its name
claims.

A base is named by ``sha1(image id)``; the name alone proves nothing. So:

- ``fetch`` downloads a base through Nova's image API into
  ``<base>.part``. The stream is hashed as it arrives by the library made
  for it: Nova's image API always reads image data through glanceclient's
  ``images.data`` with ``do_checksum`` on, which checks the image
  service's ``os_hash_algo``/``os_hash_value`` (else the md5
  ``checksum``) and raises ``IOError(EPIPE, 'Corrupt image download...')``
  at the end of a stream that is not the image; a second hash here would
  only double the CPU (tests/unit/imagebackend/test_verified_base.py pins
  that contract). novaext turns that error into ImageUnacceptable naming
  the image and the base, checks the size itself, and only then runs
  Nova's own checks and conversion and renames the file into place.
- A record of that, ``<base>.verified`` (a ``Marker``), is written beside
  it: the image, the hash verified, the base's own digest (the image hash
  itself when the base holds the image's bytes; sha256 of the result when
  it was converted to raw), and the file it was made for, by
  (st_dev, st_ino, st_size) and the inode's generation where the file
  system keeps one (ext4, XFS, btrfs: a file that reuses a deleted one's
  inode number gets a new generation; without it, such a file of the
  same size passed for the old one). Not by mtime or ctime: Nova's image
  cache manager time-stamps every base in use.
- ``check`` runs before a present base backs a new overlay or is the
  target of a rebase: a marker that fits the file is enough; a missing or
  stale one is recomputed (the base's bytes hashed against the claim)
  where the base holds the image's bytes, and the base is fetched again
  where it does not (a converted base cannot be checked without its
  download). A base that fails is quarantined: renamed to
  ``<base>.quarantined-<UTC time>``, logged with the image id, never
  deleted; then fetched again. When it cannot be, the operation fails
  with ImageUnacceptable naming the image and the base, before any disk
  is made on it.
- ``check_pulled`` verifies a base pulled from a peer host: against the
  image service's claim when it answers, else against the peer's marker.

When the image service cannot be asked (down, or the image deleted) and
no marker fits, a present base is used as Nova uses it, with a warning:
Nova keeps hard reboot and resize working without the image service, and
so does novaext. It is verified at its next use where the service answers.
"""

import dataclasses
import datetime
import errno
import fcntl
import hashlib
import json
import os
import struct

from nova import exception
from nova.compute import utils as compute_utils
from nova.image import glance
from nova.virt import images
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

MARKER_SUFFIX = '.verified'
QUARANTINE_INFIX = '.quarantined-'
# The digest of a converted base: its bytes are not the image's, so no
# claim names an algorithm; sha256 is the fastest strong hash here.
CONVERTED_ALGO = 'sha256'


def marker_path(base):
    return base + MARKER_SUFFIX


def refused(image_id, base, why):
    return exception.ImageUnacceptable(
        image_id=image_id, reason=f'base {base} {why}')


@dataclasses.dataclass(frozen=True)
class Claim:
    """What the image service says an image's bytes are."""

    image_id: str
    size: int | None
    algo: str | None
    value: str | None

    @classmethod
    def of(cls, image):
        """The claim of an image dict from Nova's image API."""
        algo, value = image.get('os_hash_algo'), image.get('os_hash_value')
        if not (algo and value) and image.get('checksum'):
            algo, value = 'md5', image['checksum']
        if algo and algo not in hashlib.algorithms_available:
            raise exception.ImageUnacceptable(
                image_id=image['id'],
                reason=f'its hash algorithm {algo!r} is not available here')
        return cls(image['id'], image.get('size') or None,
                   algo if value else None, value or None)

    def mismatch(self, size, digest=None):
        """Why ``size`` bytes with ``digest`` (of ``self.algo``; None: not
        hashed here) are not this image, or None."""
        if self.size is not None and size != self.size:
            return (f'has {size} bytes, the image service says '
                    f'{self.size}')
        if (self.value is not None and digest is not None and
                digest != self.value):
            return (f'has {self.algo} {digest}, the image service says '
                    f'{self.value}')
        return None


@dataclasses.dataclass(frozen=True)
class Marker:
    """The record beside a verified base (``<base>.verified``, JSON)."""

    image_id: str
    image_algo: str | None
    image_hash: str | None
    base_algo: str
    base_digest: str
    size: int
    dev: int = 0
    ino: int = 0
    gen: int | None = None

    def __post_init__(self):
        if (not isinstance(self.size, int) or
                not isinstance(self.base_digest, str) or
                self.base_algo not in hashlib.algorithms_guaranteed):
            raise ValueError(f'not a base record: {self!r}')

    def fits(self, st, gen=None):
        """Whether this marker was written for the file ``st`` (and its
        inode generation ``gen``) describes; a generation is compared
        where both are known (a record from before they were kept has
        none)."""
        if (self.dev, self.ino, self.size) != (st.st_dev, st.st_ino,
                                               st.st_size):
            return False
        return self.gen is None or gen is None or self.gen == gen

    @classmethod
    def load(cls, path):
        """The marker at ``path``, or None when there is none or it is not
        one (a marker is never trusted beyond what it can be checked by)."""
        try:
            with open(path, 'rb') as f:
                fields = json.loads(f.read(65536))
            if not isinstance(fields, dict):
                raise ValueError('not a JSON object')
            # Fields of a later release are not ours to judge by.
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in fields.items() if k in known})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as e:
            LOG.warning('Ignoring unreadable base marker %(path)s: %(err)s',
                        {'path': path, 'err': e})
            return None

    def save(self, base):
        """Write this marker beside ``base``, for the file there now."""
        st = os.lstat(base)
        marker = dataclasses.replace(self, size=st.st_size, dev=st.st_dev,
                                     ino=st.st_ino,
                                     gen=inode_generation(base))
        part = marker_path(base) + '.part'
        with fileutils.remove_path_on_error(part):
            with open(part, 'w') as f:
                json.dump(dataclasses.asdict(marker), f)
            os.rename(part, marker_path(base))
        return marker


# _IOR('v', 1, long): the inode's generation (the kernel writes an int).
_FS_IOC_GETVERSION = 0x80087601


def inode_generation(path):
    """The generation of ``path``'s inode, or None where its file system
    keeps none (tmpfs) or it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        out = fcntl.ioctl(fd, _FS_IOC_GETVERSION, bytes(8))
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack('I', out[:4])[0]


def file_digest(path, algo):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, algo).hexdigest()


def holds_image_bytes(image):
    """Whether a base of ``image`` holds the image's own bytes (else Nova
    converted it to raw: force_raw_images)."""
    return image.get('disk_format') == 'raw' or not CONF.force_raw_images


def _download(context, image_id, part, trusted_certs):
    """The image's bytes into ``part``, fsync'd as Nova does; glanceclient
    checks them against the image service's hash on the way.

    :returns: the number of bytes written
    :raises ImageUnacceptable: the stream was not the image
    """
    with fileutils.remove_path_on_error(part):
        with open(part, 'wb') as f:
            with compute_utils.disk_ops_semaphore:
                try:
                    glance.API().download(context, image_id, data=f,
                                          trusted_certs=trusted_certs)
                except OSError as e:
                    if e.errno != errno.EPIPE:
                        raise
                    raise refused(image_id, part[:-len('.part')],
                                  f'was not written: the download failed '
                                  f'its hash check: {e.strerror}') from e
            f.flush()
            os.fsync(f.fileno())
            return os.fstat(f.fileno()).st_size


def _checked_and_converted(image, part, target):
    """Nova's checks of a downloaded image, and its conversion to raw
    under force_raw_images, each one Nova's own helper, in the order of
    Nova's fetch_to_raw (which takes no stream, so it cannot be handed a
    hashed download); the result is renamed to ``target``.

    :returns: True when the base holds the image's bytes unchanged
    """
    image_id = image['id']
    with fileutils.remove_path_on_error(part):
        force_format = None
        if not CONF.workarounds.disable_deep_image_inspection:
            force_format = images.do_image_deep_inspection(image, image_id,
                                                           part)
        info = images.qemu_img_info(part)
        fmt = info.file_format
        if fmt is None or (force_format is not None and
                           fmt != force_format):
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=f'content is {fmt}, disk_format says {force_format}')
        data_file = (info.format_specific or {}).get('data', {}).get(
            'data-file')
        if info.backing_file is not None or data_file is not None:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=f'{fmt} with backing file {info.backing_file!r}, '
                       f'data file {data_file!r}')
        if fmt == 'vmdk':
            images.check_vmdk_image(image_id, info)
        if fmt == 'raw' or not CONF.force_raw_images:
            os.rename(part, target)
            return True
        staged = target + '.converted'
        with fileutils.remove_path_on_error(staged):
            images.convert_image(part, staged, fmt, 'raw')
            os.unlink(part)
            if images.qemu_img_info(staged).file_format != 'raw':
                raise exception.ImageUnacceptable(
                    image_id=image_id, reason='conversion to raw failed')
            os.rename(staged, target)
    return False


def fetch(context, target, image, trusted_certs=None):
    """Download ``image`` (a dict from Nova's image API) to ``target`` as
    a verified base, and record it. Call under the base's lock.

    :raises ImageUnacceptable: the download is not what the image service
        claims (nothing is left at ``target``), or Nova's checks refuse it
    :returns: the Marker written
    """
    claim = Claim.of(image)
    part = target + '.part'
    size = _download(context, image['id'], part, trusted_certs)
    wrong = claim.mismatch(size)
    if wrong is not None:
        os.unlink(part)
        LOG.error('Download of image %(id)s for base %(base)s refused: it '
                  '%(why)s', {'id': image['id'], 'base': target,
                              'why': wrong})
        raise refused(image['id'], target,
                      f'was not written: the download {wrong}')
    unchanged = _checked_and_converted(image, part, target)
    if unchanged and claim.value is not None:
        base_algo, base_digest = claim.algo, claim.value
    else:
        base_algo = CONVERTED_ALGO
        base_digest = file_digest(target, base_algo)
    LOG.info('Base %(base)s of image %(id)s verified (%(algo)s)',
             {'base': target, 'id': image['id'], 'algo': claim.algo})
    return Marker(image['id'], claim.algo, claim.value, base_algo,
                  base_digest, size).save(target)


def quarantine(base, image_id, why):
    """Move ``base`` (and its marker) aside; never delete it.

    :returns: the quarantined path
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime(
        '%Y%m%dT%H%M%S.%fZ')
    aside = f'{base}{QUARANTINE_INFIX}{stamp}'
    fileutils.delete_if_exists(marker_path(base))
    os.rename(base, aside)
    LOG.error('Quarantined base %(base)s of image %(id)s as %(aside)s: '
              'it %(why)s', {'base': base, 'id': image_id, 'aside': aside,
                             'why': why})
    return aside


def fitting_marker(base):
    """The marker of ``base`` when it fits the file there, else None."""
    marker = Marker.load(marker_path(base))
    if marker is None:
        return None
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        return None
    return marker if marker.fits(st, inode_generation(base)) else None


def _recheck(base, image):
    """Hash a base holding the image's bytes against the image's claim.

    :returns: why it is not the image, or None (and the marker written)
    """
    claim = Claim.of(image)
    size = os.lstat(base).st_size
    digest = file_digest(base, claim.algo) if claim.algo else None
    wrong = claim.mismatch(size, digest)
    if wrong is None:
        digest = digest or file_digest(base, CONVERTED_ALGO)
        Marker(image['id'], claim.algo, claim.value,
               claim.algo or CONVERTED_ALGO, digest, size).save(base)
    return wrong


def make_base(context, target, image_id, trusted_certs=None, image=None):
    """Download ``image_id`` to ``target``: verified (``fetch``), or Nova's
    own fetch when verify_bases is off. Call under the base's lock."""
    if not CONF.novaext.verify_bases:
        libvirt_utils.fetch_image(context, target, image_id, trusted_certs)
        return
    if image is None:
        image = glance.API().get(context, image_id)
    fetch(context, target, image, trusted_certs)


def check(context, base, image_id, image=None, trusted_certs=None):
    """Make sure the base present at ``base`` is ``image_id``'s; call under
    the base's lock, before the base backs a new disk or is a rebase
    target.

    A fitting marker is enough. Otherwise the image service is asked
    (``image``, when the caller already has it, saves the call): a base
    holding the image's bytes is hashed against its claim; a converted
    one cannot be, and is fetched again. A base that fails is quarantined
    and fetched again.

    :raises ImageUnacceptable: it failed and could not be fetched again
    """
    if not CONF.novaext.verify_bases or fitting_marker(base) is not None:
        return
    try:
        os.lstat(base)
    except FileNotFoundError:
        return  # nothing here to verify: whoever wants it fetches it
    if image is None:
        try:
            image = glance.API().get(context, image_id)
        except (exception.ImageNotFound,
                exception.GlanceConnectionFailed) as e:
            LOG.warning('Base %(base)s of image %(id)s has no record of '
                        'being verified and the image service cannot '
                        'verify it (%(err)s): using it as Nova does',
                        {'base': base, 'id': image_id, 'err': e})
            return
    if holds_image_bytes(image):
        why = _recheck(base, image)
        if why is None:
            LOG.info('Base %(base)s of image %(id)s verified by hashing it',
                     {'base': base, 'id': image_id})
            return
    else:
        why = 'was converted and has no record of the download it came from'
    aside = quarantine(base, image_id, why)
    try:
        marker = fetch(context, base, image, trusted_certs)
    except Exception as e:
        raise refused(image_id, base,
                      f'{why}; it is kept as {aside} and fetching the '
                      f'image again failed: {e}') from e
    if (why.startswith('was converted') and
            file_digest(aside, marker.base_algo) == marker.base_digest):
        # The same bytes as the fresh download: nothing was wrong with it.
        LOG.info('Quarantined %(aside)s equals the fresh download; '
                 'removing it', {'aside': aside})
        os.unlink(aside)


def check_pulled(context, part, name, image_id, peer_marker):
    """Verify a base pulled from a peer into ``part``, before it is renamed
    to ``name``: against the image service's claim when it answers, else
    against the peer's marker (``Marker`` or None). ``image_id`` may be
    None when only the base's name is known.

    :returns: the Marker to save once the base is in place, or None when
        nothing can vouch for it (used as Nova does, with a warning)
    :raises ImageUnacceptable: the pulled bytes are not the base (``part``,
        which never was a base, is removed)
    """
    image = None
    if image_id is not None:
        try:
            image = glance.API().get(context, image_id)
        except (exception.ImageNotFound,
                exception.GlanceConnectionFailed) as e:
            LOG.info('Image service cannot vouch for pulled base %(name)s: '
                     '%(err)s; checking it against the peer\'s record',
                     {'name': name, 'err': e})
    size = os.lstat(part).st_size
    if image is not None and holds_image_bytes(image):
        claim = Claim.of(image)
        digest = file_digest(part, claim.algo) if claim.algo else None
        wrong = claim.mismatch(size, digest)
        base_algo = claim.algo or CONVERTED_ALGO
        digest = digest or file_digest(part, base_algo)
        source = 'the image service'
        result = Marker(image_id, claim.algo, claim.value, base_algo,
                        digest, size)
    elif peer_marker is not None:
        digest = file_digest(part, peer_marker.base_algo)
        wrong = None
        if size != peer_marker.size:
            wrong = (f'has {size} bytes, the peer recorded '
                     f'{peer_marker.size}')
        elif digest != peer_marker.base_digest:
            wrong = (f'has {peer_marker.base_algo} {digest}, the peer '
                     f'recorded {peer_marker.base_digest}')
        source = 'the peer\'s record'
        result = peer_marker
    else:
        LOG.warning('Pulled base %(name)s has no record on the peer and the '
                    'image service cannot vouch for it: using it as Nova '
                    'does', {'name': name})
        return None
    if wrong is not None:
        LOG.error('Refusing base %(name)s pulled from a peer: it %(why)s',
                  {'name': name, 'why': wrong})
        fileutils.delete_if_exists(part)
        raise refused(image_id or name, name,
                      f'pulled from the peer was refused: it {wrong}')
    LOG.info('Pulled base %(name)s verified against %(source)s',
             {'name': name, 'source': source})
    return result
