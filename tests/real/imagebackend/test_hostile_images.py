"""Hostile images are refused through spawn, before QEMU runs, losing nothing.

Each case is a real file made with qemu-img, served by the image service
and spawned through the driver. The refusal must be ImageUnacceptable (or
ImageNotFound for a missing base) naming the image; no domain may exist,
no disk or partial file may be left in the instance directory, and
nothing partial may be left in _base.
"""

import hashlib
import os
import subprocess
import uuid

import pytest
from nova import exception

from tests.real.imagebackend import images

SHA1 = hashlib.sha1(b'some-base').hexdigest()


def _qcow2(path, *extra, size='64M'):
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', *extra,
                    str(path), size], check=True)
    return str(path)


def _delta_with_backing(tmp_path, backing, backing_fmt='raw'):
    return _qcow2(tmp_path / 'hostile.qcow2', '-u', '-b', backing,
                  '-F', backing_fmt)


def _spawn_refused(real_host, image_id):
    instance = real_host.new_instance(image_id)
    with pytest.raises((exception.ImageUnacceptable,
                        exception.ImageNotFound)) as err:
        real_host.spawn(instance)
    assert image_id in str(err.value)
    assert real_host.domain(instance) is None
    inst_dir = real_host.instance_dir(instance)
    leftovers = os.listdir(inst_dir) if os.path.isdir(inst_dir) else []
    assert not [n for n in leftovers if n.startswith('disk') and
                n != 'disk.info'], leftovers
    base_dir = os.path.join(real_host.instances_path, '_base')
    in_base = os.listdir(base_dir) if os.path.isdir(base_dir) else []
    assert not [n for n in in_base if not os.path.basename(n).isalnum()
                or n.endswith('.part')], in_base
    return str(err.value), in_base


@pytest.mark.parametrize('backing', [
    '/etc/passwd',
    '../' + SHA1,
    SHA1 + '/../../etc/passwd',
    '/var/lib/nova/instances/%s/disk' % uuid.uuid4(),
    '%s/disk' % uuid.uuid4(),
    '/dev/sda',
    'a' * 40,  # a sha1, but not the declared one
], ids=['absolute', 'dotdot', 'dotdot-after-sha1', 'other-instance-abs',
        'other-instance-rel', 'device', 'other-base'])
def test_delta_with_hostile_backing_file_is_refused(
        real_host, tmp_path, backing):
    delta = _delta_with_backing(tmp_path, backing)
    image_id = real_host.upload_image(
        delta, 'qcow2', properties={'base_image_id_sha1': SHA1})
    message, in_base = _spawn_refused(real_host, image_id)
    assert 'is not the declared base' in message
    assert in_base == []


def test_delta_with_external_data_file_is_refused(real_host, tmp_path):
    delta = _qcow2(tmp_path / 'df.qcow2', '-u', '-b', SHA1, '-F', 'raw',
                   '-o', f'data_file={tmp_path / "data.raw"}')
    image_id = real_host.upload_image(
        delta, 'qcow2', properties={'base_image_id_sha1': SHA1})
    message, in_base = _spawn_refused(real_host, image_id)
    assert 'data_file' in message
    assert in_base == []


def test_plain_image_with_external_data_file_is_refused(real_host, tmp_path):
    image = _qcow2(tmp_path / 'df.qcow2',
                   '-o', f'data_file={tmp_path / "data.raw"}')
    image_id = real_host.upload_image(image, 'qcow2')
    message, _ = _spawn_refused(real_host, image_id)
    assert 'safety check' in message


def test_backing_chain_deeper_than_one_level_is_refused(real_host, tmp_path):
    """The delta's base is itself an overlay: the base fetch refuses it."""
    base_id = str(uuid.uuid4())
    base_sha1 = hashlib.sha1(base_id.encode()).hexdigest()
    chained_base = _qcow2(tmp_path / 'chained-base.qcow2', '-u', '-b',
                          'f' * 40, '-F', 'raw')
    real_host.upload_image(chained_base, 'qcow2', image_id=base_id,
                           properties={'image_id_sha1': base_sha1})
    delta = _delta_with_backing(tmp_path, base_sha1)
    image_id = real_host.upload_image(
        delta, 'qcow2', properties={'base_image_id_sha1': base_sha1})
    message, in_base = _spawn_refused(real_host, image_id)
    assert 'its base image is unacceptable' in message
    assert base_id in message
    assert in_base == []


@pytest.mark.parametrize('bad_sha1', ['abc', '../' + 'a' * 37,
                                      'A' * 40, '/etc/passwd'])
def test_base_sha1_property_not_40_hex_is_refused_before_download(
        real_host, tmp_path, bad_sha1):
    delta = _delta_with_backing(tmp_path, SHA1)
    image_id = real_host.upload_image(
        delta, 'qcow2', properties={'base_image_id_sha1': bad_sha1})
    message, _ = _spawn_refused(real_host, image_id)
    assert 'not 40 hex' in message
    assert real_host.downloads == {}


def test_delta_whose_content_is_not_qcow2_is_refused(real_host, tmp_path):
    raw = tmp_path / 'really-raw.img'
    raw.write_bytes(b'\0' * images.MiB)
    image_id = real_host.upload_image(
        str(raw), 'qcow2', properties={'base_image_id_sha1': SHA1})
    message, in_base = _spawn_refused(real_host, image_id)
    assert 'disk_format is qcow2' in message
    assert in_base == []


def test_plain_image_whose_content_does_not_match_is_refused(
        real_host, tmp_path):
    image = _qcow2(tmp_path / 'q.qcow2')
    image_id = real_host.upload_image(image, 'raw')
    message, _ = _spawn_refused(real_host, image_id)
    # Nova's own deep inspection refuses it, with its own wording.
    assert 'is unacceptable' in message


def test_delta_whose_base_is_nowhere_is_refused(real_host, tmp_path):
    delta = _delta_with_backing(tmp_path, SHA1)
    image_id = real_host.upload_image(
        delta, 'qcow2', properties={'base_image_id_sha1': SHA1})
    message, in_base = _spawn_refused(real_host, image_id)
    assert SHA1 in message and 'could not be found' in message
    assert in_base == []
