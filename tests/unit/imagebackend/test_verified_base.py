"""verified_base's pieces: the image service's claim, the hashing writer,
the record beside a base. (Downloads, quarantine and refetch on a real
host: tests/real/imagebackend/test_verified_bases.py.)"""

import dataclasses
import hashlib
import inspect
import io
import json
import os
from unittest import mock

import pytest
from nova import exception

from novaext.imagebackend import image_cache
from novaext.imagebackend import verified_base

IMAGE = {'id': 'c0ffee00-0000-4000-8000-000000000001', 'size': 6,
         'os_hash_algo': 'sha512',
         'os_hash_value': hashlib.sha512(b'abcdef').hexdigest(),
         'checksum': hashlib.md5(b'abcdef').hexdigest()}


def test_the_claim_is_the_multihash_when_there_is_one():
    claim = verified_base.Claim.of(IMAGE)
    assert (claim.algo, claim.value, claim.size) == (
        'sha512', IMAGE['os_hash_value'], 6)
    assert claim.mismatch(6, IMAGE['os_hash_value']) is None


def test_the_claim_falls_back_to_the_md5_checksum():
    image = dict(IMAGE, os_hash_algo=None, os_hash_value=None)
    claim = verified_base.Claim.of(image)
    assert (claim.algo, claim.value) == ('md5', IMAGE['checksum'])


def test_an_image_with_no_hash_is_claimed_by_size_only():
    image = {'id': IMAGE['id'], 'size': 6}
    claim = verified_base.Claim.of(image)
    assert (claim.algo, claim.value) == (None, None)
    assert claim.mismatch(6, None) is None
    assert claim.mismatch(5, None) == (
        'has 5 bytes, the image service says 6')


def test_a_hash_this_host_cannot_compute_is_refused():
    with pytest.raises(exception.ImageUnacceptable, match='no-such-algo'):
        verified_base.Claim.of(dict(IMAGE, os_hash_algo='no-such-algo'))


def test_mismatch_names_both_hashes():
    claim = verified_base.Claim.of(IMAGE)
    assert claim.mismatch(6, 'beef') == (
        f'has sha512 beef, the image service says {IMAGE["os_hash_value"]}')


def test_novas_image_api_reads_image_data_through_glanceclients_check():
    """verified_base leaves the stream's hash to glanceclient: Nova's
    GlanceImageServiceV2.download asks the client for 'data' with nothing
    but the image id, and glanceclient's images.data checks the multihash
    (else the md5 checksum) by default. An upgrade that changes either
    fails here."""
    from glanceclient.v2 import images as glance_images
    from nova.image import glance

    params = inspect.signature(glance_images.Controller.data).parameters
    assert params['do_checksum'].default is True
    service = glance.GlanceImageServiceV2(client=mock.Mock())
    chunks = mock.MagicMock(wrapped=[b'x'])
    chunks.__iter__.return_value = iter([b'x'])
    service._client.call.return_value = chunks
    out = io.BytesIO()
    with mock.patch.object(service, '_get_verifier', return_value=None):
        service.download(None, IMAGE['id'], data=out)
    assert out.getvalue() == b'x'
    service._client.call.assert_called_once_with(None, 2, 'data',
                                                 args=(IMAGE['id'],))


def _marker(**kw):
    return verified_base.Marker(**dict(
        image_id=IMAGE['id'], image_algo='sha512', image_hash='aa',
        base_algo='sha512', base_digest='aa', size=6) | kw)


def test_a_record_fits_the_file_it_was_written_for_only(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'abcdef')
    saved = _marker().save(str(base))
    assert verified_base.Marker.load(str(base) + '.verified') == saved
    assert verified_base.fitting_marker(str(base)) == saved
    os.utime(base, (1, 1))  # the image cache manager's touch
    assert verified_base.fitting_marker(str(base)) == saved
    os.rename(base, tmp_path / 'old')
    base.write_bytes(b'abcdef')  # same name and size, another file
    assert verified_base.fitting_marker(str(base)) is None


def test_a_record_does_not_fit_a_new_file_reusing_the_inode(tmp_path):
    """Seen in CI: a base deleted and a file of the same size put under
    its name reused its inode number, and the stale record vouched for
    it. The inode's generation tells them apart."""
    base = tmp_path / 'base'
    base.write_bytes(b'abcdef')
    saved = _marker().save(str(base))
    if saved.gen is None:
        pytest.skip(f'NO INODE GENERATION on the file system of {tmp_path}')
    os.unlink(base)
    base.write_bytes(b'ghijkl')
    if os.stat(base).st_ino != saved.ino:
        pytest.skip(f'the inode was not reused in {tmp_path}')
    assert verified_base.fitting_marker(str(base)) is None


def test_a_record_from_before_generations_still_fits(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'abcdef')
    saved = _marker().save(str(base))
    old = dataclasses.replace(saved, gen=None)
    (tmp_path / 'base.verified').write_text(
        json.dumps(dataclasses.asdict(old)))
    assert verified_base.fitting_marker(str(base)) == old


def test_a_record_that_is_not_one_vouches_for_nothing(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'abcdef')
    bad_algo = json.dumps(dict(dataclasses.asdict(_marker()),
                               base_algo='nope'))
    for junk in (b'', b'not json', b'{"image_id": 1}', b'[1, 2]',
                 bad_algo.encode()):
        (tmp_path / 'base.verified').write_bytes(junk)
        assert verified_base.fitting_marker(str(base)) is None


def test_quarantine_moves_the_base_aside_and_drops_its_record(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'wrong')
    _marker().save(str(base))
    aside = verified_base.quarantine(str(base), IMAGE['id'], 'is wrong')
    assert not base.exists() and not (tmp_path / 'base.verified').exists()
    assert aside.startswith(str(base) + '.quarantined-')
    assert open(aside, 'rb').read() == b'wrong'


def test_records_of_removed_bases_are_removed(tmp_path):
    kept, gone = 'a' * 40, 'b' * 40
    (tmp_path / kept).write_bytes(b'x')
    (tmp_path / (kept + '.verified')).write_text('{}')
    (tmp_path / (gone + '.verified')).write_text('{}')
    (tmp_path / (gone + '.quarantined-20261203T000000.000000Z')).write_text(
        'evidence')
    manager = image_cache.ExtImageCacheManager()
    assert manager.remove_orphan_markers(str(tmp_path)) == [
        gone + '.verified']
    assert sorted(os.listdir(tmp_path)) == sorted([
        kept, kept + '.verified',
        gone + '.quarantined-20261203T000000.000000Z'])
