"""What kind of image a disk is made from, told apart by image properties.

- NORMAL: an uploaded image;
- FULL_SNAPSHOT: a snapshot holding a whole disk (``image_type=snapshot``);
- DELTA_SNAPSHOT: a qcow2 overlay only, whose backing file name is the
  sha1 of its base image's id (property ``base_image_id_sha1``); its base
  image carries ``image_id_sha1`` with the same value.
"""

import enum

from nova import exception

from novaext.imagebackend import base_names

BASE_SHA1_PROPERTY = 'base_image_id_sha1'
IMAGE_SHA1_PROPERTY = 'image_id_sha1'


class ImageKind(enum.Enum):
    NORMAL = 'normal'
    FULL_SNAPSHOT = 'full-snapshot'
    DELTA_SNAPSHOT = 'delta-snapshot'


def classify(image):
    """Return ``(ImageKind, base_sha1 or None)`` for image metadata.

    ``image`` is the dict Nova's image API returns. A ``base_image_id_sha1``
    that is not a sha1 is refused with ImageUnacceptable: it would become a
    file name under ``_base``.
    """
    properties = image.get('properties') or {}
    base_sha1 = properties.get(BASE_SHA1_PROPERTY)
    if base_sha1 is not None:
        if not base_names.is_sha1(base_sha1):
            raise exception.ImageUnacceptable(
                image_id=image.get('id'),
                reason=f'{BASE_SHA1_PROPERTY} {base_sha1!r} is not 40 hex '
                       f'characters')
        return ImageKind.DELTA_SNAPSHOT, base_sha1
    if properties.get('image_type') == 'snapshot':
        return ImageKind.FULL_SNAPSHOT, None
    return ImageKind.NORMAL, None
