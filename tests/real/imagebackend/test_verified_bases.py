"""Verified bases on a real host: a base is used only if it is what its
name claims, checked against the image service's size and hash.

Each test spawns through novaext's driver on the real libvirtd with real
qemu-img; the image service is the in-process one, which streams the
image in 64 KiB chunks and records Glance's sha512 multihash.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess

import pytest
from nova import exception

from novaext.imagebackend import verified_base
from realhost import harness


def _base(host, image_id):
    return os.path.join(host.instances_path, '_base',
                        harness.base_name(image_id))


def _marker(host, image_id):
    with open(_base(host, image_id) + '.verified') as f:
        return json.load(f)


def _digest(path, algo):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, algo).hexdigest()


def _quarantined(host, image_id):
    return glob.glob(_base(host, image_id) + '.quarantined-*')


@pytest.fixture
def raw_image(tmp_path):
    path = tmp_path / 'image.raw'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(path),
                    '64M'], check=True)
    subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 0 8M',
                    str(path)], check=True, capture_output=True)
    return path


def _spawned(host, image_id):
    instance = host.new_instance(image_id)
    host.spawn(instance)
    return instance


def _nothing_made(host, instance, image_id):
    """The guest was never touched: no domain, no disk, no base, no part."""
    assert host.domain(instance) is None
    assert not os.path.exists(os.path.join(host.instance_dir(instance),
                                           'disk'))
    base = _base(host, image_id)
    assert not os.path.exists(base)
    assert not os.path.exists(base + '.part')
    assert not os.path.exists(base + '.verified')


def test_a_downloaded_raw_base_is_recorded_with_the_image_hash(
        real_host, raw_image):
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    instance = _spawned(real_host, image_id)

    marker = _marker(real_host, image_id)
    base = _base(real_host, image_id)
    st = os.stat(base)
    assert marker['image_id'] == image_id
    assert marker['image_algo'] == marker['base_algo'] == 'sha512'
    assert marker['image_hash'] == marker['base_digest'] == _digest(
        raw_image, 'sha512') == real_host.images.show(None, image_id)[
            'os_hash_value']
    assert _digest(base, 'sha512') == marker['base_digest']
    assert (marker['dev'], marker['ino'], marker['size']) == (
        st.st_dev, st.st_ino, st.st_size)
    assert real_host.domain(instance) is not None


def test_a_converted_base_records_its_own_digest(real_host, tiny_image):
    """force_raw_images: a qcow2 image's base holds raw bytes; the download
    was checked against the image hash, the base records its own."""
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    _spawned(real_host, image_id)

    marker = _marker(real_host, image_id)
    base = _base(real_host, image_id)
    assert harness.qemu_img_info(base)['format'] == 'raw'
    assert marker['image_hash'] == _digest(tiny_image, 'sha512')
    assert marker['base_algo'] == 'sha256'
    assert marker['base_digest'] == _digest(base, 'sha256')


@pytest.mark.parametrize('hash_algo, damage, says', [
    # Glance's multihash, checked on the stream by glanceclient (Nova's
    # image API always downloads through it), reported by novaext.
    ('sha512', 'flip', 'failed its hash check: Corrupt image download. '
                       'Hash was '),
    ('sha512', 'truncate', 'Corrupt image download. Hash was '),
    # An image from before multihash: glanceclient checks its md5.
    ('md5', 'flip', 'Corrupt image download. Checksum was '),
    # No hash at all: the size, checked by novaext.
    (None, 'truncate', 'the download has 33554432 bytes, the image '
                       'service says 67108864'),
])
def test_a_download_that_is_not_the_image_is_refused(
        real_host, raw_image, hash_algo, damage, says):
    real_host.hash_algo = hash_algo
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    # The stored bytes change after the image service recorded the hash.
    with open(raw_image, 'r+b') as f:
        if damage == 'flip':
            f.seek(4096)
            f.write(b'\xff' * 512)
        else:
            f.truncate(32 * 1024 ** 2)
    instance = real_host.new_instance(image_id)

    with pytest.raises(exception.ImageUnacceptable) as err:
        real_host.spawn(instance)

    text = str(err.value)
    assert image_id in text and _base(real_host, image_id) in text
    assert 'was not written: ' in text and says in text
    _nothing_made(real_host, instance, image_id)


def _plant_wrong_base(host, image_id, tmp_path):
    """A regular file of ours under the base's name, with other bytes."""
    base = _base(host, image_id)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    wrong = tmp_path / 'wrong.raw'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(wrong),
                    '64M'], check=True)
    subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x66 0 8M',
                    str(wrong)], check=True, capture_output=True)
    shutil.copyfile(wrong, base)
    return _digest(base, 'sha256')


def test_a_wrong_base_is_quarantined_and_fetched_again(
        real_host, raw_image, tmp_path):
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    planted = _plant_wrong_base(real_host, image_id, tmp_path)

    instance = _spawned(real_host, image_id)

    aside = _quarantined(real_host, image_id)
    assert len(aside) == 1 and _digest(aside[0], 'sha256') == planted
    base = _base(real_host, image_id)
    assert _digest(base, 'sha512') == _marker(real_host, image_id)[
        'image_hash'] == _digest(raw_image, 'sha512')
    assert real_host.downloads == {image_id: 1}
    assert real_host.domain(instance) is not None


def test_a_stale_record_does_not_vouch_for_another_file(
        real_host, raw_image, tmp_path):
    """The record fits the file it was written for (device, inode, size),
    not the name: a file put there later under the same name is checked."""
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    real_host.destroy(_spawned(real_host, image_id))
    base = _base(real_host, image_id)
    os.unlink(base)  # the record stays
    planted = _plant_wrong_base(real_host, image_id, tmp_path)

    _spawned(real_host, image_id)

    assert [_digest(p, 'sha256') for p in _quarantined(
        real_host, image_id)] == [planted]
    assert _digest(base, 'sha512') == _digest(raw_image, 'sha512')
    assert real_host.downloads == {image_id: 2}


def test_a_right_base_without_record_is_hashed_not_downloaded(
        real_host, raw_image):
    """A base from before novaext verified bases (raw: it holds the image's
    bytes) is hashed against the image service's claim and kept."""
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    real_host.destroy(_spawned(real_host, image_id))
    base = _base(real_host, image_id)
    os.unlink(base + '.verified')
    inode = os.stat(base).st_ino

    _spawned(real_host, image_id)

    assert os.stat(base).st_ino == inode
    assert _marker(real_host, image_id)['ino'] == inode
    assert real_host.downloads == {image_id: 1}
    assert _quarantined(real_host, image_id) == []


def test_a_converted_base_without_record_is_fetched_again_and_kept_aside_only_if_different(  # noqa: E501
        real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    real_host.destroy(_spawned(real_host, image_id))
    base = _base(real_host, image_id)
    os.unlink(base + '.verified')

    _spawned(real_host, image_id)

    assert real_host.downloads == {image_id: 2}
    # The fresh conversion has the same bytes: nothing kept aside.
    assert _quarantined(real_host, image_id) == []
    assert _marker(real_host, image_id)['base_digest'] == _digest(
        base, 'sha256')


def test_a_wrong_base_that_cannot_be_fetched_again_fails_clearly(
        real_host, raw_image, tmp_path):
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    planted = _plant_wrong_base(real_host, image_id, tmp_path)
    with open(raw_image, 'r+b') as f:  # the image service's copy is bad
        f.write(b'\xff' * 512)
    instance = real_host.new_instance(image_id)

    with pytest.raises(exception.ImageUnacceptable) as err:
        real_host.spawn(instance)

    aside = _quarantined(real_host, image_id)
    text = str(err.value)
    assert image_id in text and _base(real_host, image_id) in text
    assert len(aside) == 1 and f'kept as {aside[0]}' in text
    assert _digest(aside[0], 'sha256') == planted  # nothing lost
    _nothing_made(real_host, instance, image_id)


def test_image_service_down_hard_reboot_uses_a_base_without_record(
        real_host, raw_image):
    """Nova hard-reboots from the cached base without the image service;
    so does novaext, with a warning, when the base has no record."""
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    instance = _spawned(real_host, image_id)
    marker = _base(real_host, image_id) + '.verified'
    os.unlink(marker)
    real_host.image_service_down()

    real_host.driver.reboot(real_host.context, instance, [], 'HARD')

    assert real_host.domain(instance).isActive()
    assert not os.path.exists(marker)


def test_verify_bases_off_is_novas_own_fetch(real_host, raw_image):
    """Nothing of novaext's checks the download: with a client that does
    not check it either, the altered bytes become the base."""
    real_host.conf_group('novaext', verify_bases=False)
    real_host.client_checks_hash = False
    image_id = real_host.upload_image(str(raw_image), 'raw',
                                      by_reference=True)
    with open(raw_image, 'r+b') as f:
        f.write(b'\xff' * 512)

    _spawned(real_host, image_id)

    assert not os.path.exists(_base(real_host, image_id) + '.verified')
    assert verified_base.fitting_marker(_base(real_host, image_id)) is None
