"""Finding the base image of a delta snapshot in the image service.

A delta snapshot names its base by ``sha1(base image id)``, the name of
the base in every host's ``_base``. When the base is not cached here, the
image service is searched for an image whose ``image_id_sha1`` property is
that sha1; a candidate counts only if the sha1 of its own id matches too,
so a mislabelled image can never stand in for the base.
"""

from novaext.exception import DeltaBaseNotFound
from novaext.imagebackend import base_names
from novaext.imagebackend import image_kind


def find_base_image_id(context, image_api, base_sha1, delta_image_id):
    """Return the id of the image whose id hashes to ``base_sha1``.

    :raises: DeltaBaseNotFound when the image service has none.
    """
    candidates = image_api.get_all(
        context, filters={image_kind.IMAGE_SHA1_PROPERTY: base_sha1})
    for image in candidates:
        props = image.get('properties') or {}
        if (props.get(image_kind.IMAGE_SHA1_PROPERTY) == base_sha1 and
                base_names.of_image(image['id']) == base_sha1):
            return image['id']
    raise DeltaBaseNotFound(prop=image_kind.IMAGE_SHA1_PROPERTY,
                            sha1=base_sha1, image_id=delta_image_id)
