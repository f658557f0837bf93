"""Which base image a delta snapshot of a root disk sits on.

A delta snapshot is usable anywhere only if its base can be found by
name: the disk's backing file must be a base in this host's ``_base``
named by the sha1 of an image id (or a legacy ``<sha1>_<GB>`` copy of
it), and that image must still be in the image service. ``find`` returns
a ``DeltaBase`` for such a disk, or None with the reason logged; None
means the snapshot is uploaded whole.

The image is identified without trusting any name alone: the instance's
own image when sha1 of its id is the base's name; for an instance booted
from a delta snapshot, the image carrying ``image_id_sha1`` whose id
hashes to that name (imagebackend.delta_base).
"""

import dataclasses
import os

from nova import exception
from oslo_log import log as logging

from novaext.imagebackend import base_names
from novaext.imagebackend import delta_base

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DeltaBase:
    path: str            # the disk's backing file, in _base
    sha1: str            # sha1 of the base image's id: the delta's backing
    image_id: str        # the base image in the image service
    image: dict          # its metadata as the image API returned it


def base_sha1_of(backing_path):
    """sha1 a backing path in ``_base`` is named by, or None."""
    if not backing_path or os.path.dirname(backing_path) != \
            base_names.base_dir():
        return None
    name = os.path.basename(backing_path)
    if base_names.is_sha1(name):
        return name
    legacy = base_names.parse_legacy(name)
    return legacy[0] if legacy else None


def _image_for(context, image_api, instance, sha1):
    image_ref = instance.image_ref
    if image_ref and base_names.of_image(image_ref) == sha1:
        return image_ref
    return delta_base.find_base_image_id(context, image_api, sha1,
                                         image_ref)


def find(context, image_api, instance, backing_path):
    """The DeltaBase of a disk backed by ``backing_path``, or None."""
    sha1 = base_sha1_of(backing_path)
    if sha1 is None:
        LOG.info('Root disk backing %s is not a base in _base: the '
                 'snapshot will be full', backing_path, instance=instance)
        return None
    try:
        image_id = _image_for(context, image_api, instance, sha1)
        image = image_api.get(context, image_id)
    except exception.ImageNotFound as e:
        LOG.warning('Base %(sha1)s of the root disk is not in the image '
                    'service (%(err)s): the snapshot will be full',
                    {'sha1': sha1, 'err': e}, instance=instance)
        return None
    if image.get('status', 'active') != 'active':
        LOG.warning('Base image %(id)s is %(status)s: the snapshot will be '
                    'full', {'id': image_id, 'status': image.get('status')},
                    instance=instance)
        return None
    return DeltaBase(path=backing_path, sha1=sha1, image_id=image_id,
                     image=image)
