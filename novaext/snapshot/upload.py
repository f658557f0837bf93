"""Uploading a snapshot file and its metadata to the image service.

The metadata is Nova's (``LibvirtDriver._create_snapshot_metadata``:
status, name, kernel and ramdisk ids, os_type, owner, disk and container
format) plus what novaext's image backend reads:

- a delta snapshot carries ``base_image_id_sha1`` = sha1 of its base
  image's id (its backing file name), and its base image carries
  ``image_id_sha1`` with the same value, set before the delta is uploaded
  so that no delta is ever visible whose base cannot be found;
- a full snapshot carries neither: the snapshot image inherits the
  instance image's properties (Nova's compute API copies them), and an
  inherited ``base_image_id_sha1`` would make a whole disk look like a
  delta, an inherited ``image_id_sha1`` would label it as a base it is
  not. Those two are removed from the image.

The base is labelled before the disk is read; when the image service
refuses (another project's image), the snapshot is uploaded whole.

The file is streamed through ``ProgressReader`` for progress reports.
"""

import io
import os

from nova import exception
from nova.compute import utils as compute_utils
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log as logging

from novaext.imagebackend import image_kind

LOG = logging.getLogger(__name__)

NOVAEXT_PROPERTIES = (image_kind.BASE_SHA1_PROPERTY,
                      image_kind.IMAGE_SHA1_PROPERTY)


class ProgressReader:
    """A read-only file wrapper that reports bytes read."""

    def __init__(self, fileobj, total, progress):
        self._f = fileobj
        self.total = total
        self.progress = progress
        self.bytes_read = 0

    def read(self, size=-1):
        data = self._f.read(size)
        self.bytes_read += len(data)
        self.progress.update(self.bytes_read, self.total,
                             final=not data)
        return data

    def __iter__(self):
        while True:
            chunk = self.read(64 * 1024)
            if not chunk:
                return
            yield chunk

    def seek(self, offset, whence=os.SEEK_SET):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()



def snapshot_metadata(internals, instance, snapshot_image, disk_format,
                      delta_base=None):
    """Metadata for the upload, and the properties the snapshot image
    keeps of its own: None when it inherited none of novaext's, else its
    properties without them (``upload`` cuts the image down to these
    first)."""
    metadata = internals.snapshot_metadata(
        instance.image_meta, instance, disk_format, snapshot_image['name'])
    inherited = dict(snapshot_image.get('properties') or {})
    kept = None
    if any(p in inherited for p in NOVAEXT_PROPERTIES):
        kept = {k: v for k, v in inherited.items()
                if k not in NOVAEXT_PROPERTIES}
        metadata['properties'] = dict(kept, **metadata['properties'])
    if delta_base is not None:
        metadata['properties'][image_kind.BASE_SHA1_PROPERTY] = \
            delta_base.sha1
    return metadata, kept


def try_label_base(image_api, context, delta_base, instance):
    """``label_base``; False when the image service refuses it (the base
    image belongs to someone else and this user may not change it)."""
    try:
        label_base(image_api, context, delta_base, instance)
    except (exception.Forbidden, exception.ImageNotAuthorized) as e:
        LOG.warning('Cannot set %(prop)s on base image %(id)s (%(err)s): '
                    'the snapshot will be full',
                    {'prop': image_kind.IMAGE_SHA1_PROPERTY,
                     'id': delta_base.image_id, 'err': e},
                    instance=instance)
        return False
    return True


def label_base(image_api, context, delta_base, instance):
    """Set ``image_id_sha1`` on the base image unless it is there."""
    props = delta_base.image.get('properties') or {}
    if props.get(image_kind.IMAGE_SHA1_PROPERTY) == delta_base.sha1:
        return
    LOG.info('Labelling base image %(id)s with %(prop)s=%(sha1)s',
             {'id': delta_base.image_id,
              'prop': image_kind.IMAGE_SHA1_PROPERTY,
              'sha1': delta_base.sha1}, instance=instance)
    image_api.update(
        context, delta_base.image_id,
        {'properties': {image_kind.IMAGE_SHA1_PROPERTY: delta_base.sha1}},
        purge_props=False)


def upload(image_api, context, image_id, metadata, path, progress,
           kept=None):
    """Stream ``path`` to image ``image_id`` with ``metadata``.

    With ``kept`` (see ``snapshot_metadata``), the image's properties are
    first cut down to ``kept`` in an update of their own, so that the
    upload's update only adds. In one update, glanceclient's JSON patch
    turns "remove image_id_sha1" plus "add base_image_id_sha1" of the same
    sha1 (a delta of a server booted from a labelled base) into a "move",
    which Glance refuses (HTTP 400 "Invalid operation: move").

    The file is opened with Nova's ``file_open`` (the seam Nova's own
    snapshot and its test fixtures use).
    """
    if kept is not None:
        image_api.update(context, image_id, {'properties': kept},
                         purge_props=True)
    with libvirt_utils.file_open(path, 'rb') as f:
        try:
            total = os.fstat(f.fileno()).st_size
        except (OSError, io.UnsupportedOperation):
            total = None
        reader = ProgressReader(f, total, progress)
        with compute_utils.disk_ops_semaphore:
            image_api.update(context, image_id, metadata, reader,
                             purge_props=False)
    return reader.bytes_read
