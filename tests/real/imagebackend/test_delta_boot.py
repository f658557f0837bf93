"""Booting from a delta snapshot on the real libvirtd, base not cached."""

import os

import libvirt
import pytest

from realhost import harness
from tests.real.imagebackend import images


@pytest.mark.parametrize('detached', [True, False],
                         ids=['detached-delta', 'delta-naming-its-base'])
def test_boot_from_delta_snapshot_fetches_base_by_sha1_and_rebases(
        real_host, tmp_path, detached):
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path), detached=detached)
    real_host.upload_image(base_file, 'qcow2', name='base',
                           properties={'image_id_sha1': base_sha1},
                           image_id=base_id)
    delta_id = real_host.upload_image(
        delta_file, 'qcow2', name='delta',
        properties={'base_image_id_sha1': base_sha1,
                    'image_type': 'snapshot'})
    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    assert not os.path.exists(base_path)

    instance = real_host.new_instance(delta_id)
    real_host.spawn(instance)

    dom = real_host.domain(instance)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    info = harness.qemu_img_info(disk)
    assert info['format'] == 'qcow2'
    assert info['full-backing-filename'] == base_path
    assert info['virtual-size'] == instance.flavor.root_gb * 1024 ** 3
    assert harness.qemu_img_info(base_path)['format'] == 'raw'
    # The guest-visible disk is the base plus the delta's own writes.
    images.qemu_io(disk, 'qcow2', 'read -P 0x5a 0 1M', 'read -P 0xa5 1M 1M',
                   'read -P 0 2M 1M', force_share=True)
    assert not [n for n in os.listdir(real_host.instance_dir(instance))
                if n.endswith('.part')]

    real_host.destroy(instance)
    assert real_host.domain(instance) is None


def _base_and_delta_uploaded(real_host, tmp_path):
    """A base image and a delta snapshot of it in the image service.

    :returns: (base image id, its sha1, delta image id)
    """
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    real_host.upload_image(base_file, 'qcow2', name='base',
                           properties={'image_id_sha1': base_sha1},
                           image_id=base_id)
    delta_id = real_host.upload_image(
        delta_file, 'qcow2', properties={'base_image_id_sha1': base_sha1})
    return base_id, base_sha1, delta_id


def test_second_boot_of_delta_reuses_cached_base(real_host, tmp_path):
    base_id, base_sha1, delta_id = _base_and_delta_uploaded(real_host,
                                                            tmp_path)
    first = real_host.new_instance(delta_id)
    real_host.spawn(first)
    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    base_inode = os.stat(base_path).st_ino
    # With the base image gone from the image service, only the cache can
    # serve the second boot.
    real_host.images.delete(real_host.context, base_id)

    second = real_host.new_instance(delta_id)
    real_host.spawn(second)

    assert os.stat(base_path).st_ino == base_inode
    disk = os.path.join(real_host.instance_dir(second), 'disk')
    assert harness.qemu_img_info(disk)['full-backing-filename'] == base_path
    real_host.destroy(first)
    real_host.destroy(second)


def test_existing_delta_disk_gets_its_missing_base_back_unchanged(
        real_host, tmp_path):
    """The spawn-path cache call on a disk that exists, base gone."""
    from nova.virt.libvirt import utils as libvirt_utils

    base_id, base_sha1, delta_id = _base_and_delta_uploaded(real_host,
                                                            tmp_path)
    instance = real_host.new_instance(delta_id)
    real_host.spawn(instance)
    real_host.driver.power_off(instance)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    images.qemu_io(disk, 'qcow2', 'write -P 0x33 2M 1M')
    disk_inode = os.stat(disk).st_ino
    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    os.unlink(base_path)
    real_host.downloads.clear()

    backend = real_host.driver.image_backend.by_name(instance, 'disk')
    backend.cache(fetch_func=libvirt_utils.fetch_image,
                  context=real_host.context,
                  filename=harness.base_name(delta_id), image_id=delta_id,
                  size=instance.flavor.root_gb * 1024 ** 3)

    assert real_host.downloads == {base_id: 1}
    assert os.stat(disk).st_ino == disk_inode
    images.qemu_io(disk, 'qcow2', 'read -P 0x5a 0 1M', 'read -P 0xa5 1M 1M',
                   'read -P 0x33 2M 1M')
    real_host.destroy(instance)


def test_a_wrong_base_of_a_delta_is_quarantined_and_fetched_again(
        real_host, tmp_path):
    """The delta's base is found by its sha1 and the cached file under that
    name is not it (no record, other bytes): it is moved aside and the
    base image fetched again before the delta is pointed at anything."""
    base_id, base_sha1, delta_id = _base_and_delta_uploaded(real_host,
                                                            tmp_path)
    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    os.makedirs(os.path.dirname(base_path))
    with open(base_path, 'wb') as f:
        f.truncate(64 * 1024 ** 2)  # zeros: not the base's 0x5a

    instance = real_host.new_instance(delta_id)
    real_host.spawn(instance)

    aside = [n for n in os.listdir(os.path.dirname(base_path))
             if n.startswith(base_sha1 + '.quarantined-')]
    assert len(aside) == 1
    assert real_host.downloads.get(base_id) == 1
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    images.qemu_io(disk, 'qcow2', 'read -P 0x5a 0 1M', 'read -P 0xa5 1M 1M',
                   force_share=True)
    real_host.destroy(instance)
