"""Finding a delta snapshot's base in the image service."""

import pytest

from novaext.imagebackend import base_names
from novaext.imagebackend import delta_base


class ListingImageAPI:
    """An image API whose get_all returns fixed images, recording filters."""

    def __init__(self, images):
        self.images = images
        self.filters = []

    def get_all(self, context, filters=None):
        self.filters.append(filters)
        return list(self.images)


def _image(image_id, sha1):
    return {'id': image_id, 'properties': {'image_id_sha1': sha1}}


def test_finds_the_image_whose_id_hashes_to_the_sha1():
    sha1 = base_names.of_image('base-1')
    api = ListingImageAPI([_image('other', 'f' * 40), _image('base-1', sha1)])
    assert delta_base.find_base_image_id(None, api, sha1, 'delta') == \
        'base-1'
    assert api.filters == [{'image_id_sha1': sha1}]


def test_mislabelled_image_is_not_taken_as_the_base():
    sha1 = base_names.of_image('base-1')
    api = ListingImageAPI([_image('impostor', sha1)])
    with pytest.raises(delta_base.DeltaBaseNotFound) as err:
        delta_base.find_base_image_id(None, api, sha1, 'delta-9')
    assert sha1 in str(err.value) and 'delta-9' in str(err.value)


def test_no_candidate_raises_image_not_found():
    from nova import exception
    with pytest.raises(exception.ImageNotFound):
        delta_base.find_base_image_id(None, ListingImageAPI([]), 'a' * 40,
                                      'delta')
