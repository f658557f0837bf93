"""Telling normal images, full snapshots and delta snapshots apart."""

import pytest
from nova import exception

from novaext.imagebackend import image_kind
from novaext.imagebackend.image_kind import ImageKind

SHA1 = 'a' * 40


def test_normal_image():
    assert image_kind.classify({'id': 'x', 'properties': {}}) == (
        ImageKind.NORMAL, None)


def test_image_without_properties_is_normal():
    assert image_kind.classify({'id': 'x'}) == (ImageKind.NORMAL, None)


def test_full_snapshot():
    image = {'id': 'x', 'properties': {'image_type': 'snapshot'}}
    assert image_kind.classify(image) == (ImageKind.FULL_SNAPSHOT, None)


def test_delta_snapshot_wins_over_image_type():
    image = {'id': 'x', 'properties': {'image_type': 'snapshot',
                                       'base_image_id_sha1': SHA1}}
    assert image_kind.classify(image) == (ImageKind.DELTA_SNAPSHOT, SHA1)


@pytest.mark.parametrize('bad', [
    'a' * 39, 'a' * 41, 'A' * 40, 'g' * 40, '../' + 'a' * 37,
    '/etc/passwd', '', 'a' * 40 + '\n', 42, 'None'])
def test_base_sha1_that_is_not_40_hex_is_refused(bad):
    image = {'id': 'img-1', 'properties': {'base_image_id_sha1': bad}}
    with pytest.raises(exception.ImageUnacceptable) as err:
        image_kind.classify(image)
    assert 'img-1' in str(err.value)
    assert 'not 40 hex' in str(err.value)
