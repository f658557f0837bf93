"""With the image service down, what needs no image works, as in Nova:
the disk and its base are here, so nothing asks the image service. Also
for a guest booted from a delta snapshot, whose base is the delta's base
(``_base/<base sha1>``), not ``_base/<sha1(delta id)>``."""

import os

import libvirt
import pytest
from nova import objects

from tests.real.imagebackend import images


@pytest.fixture(params=['image', 'delta-snapshot'])
def boot_image(request, real_host, tiny_image, tmp_path):
    if request.param == 'image':
        return real_host.upload_image(str(tiny_image), 'qcow2')
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    real_host.upload_image(base_file, 'qcow2', name='base',
                           properties={'image_id_sha1': base_sha1},
                           image_id=base_id)
    return real_host.upload_image(
        delta_file, 'qcow2', name='delta',
        properties={'base_image_id_sha1': base_sha1,
                    'image_type': 'snapshot'})


def _running_guest_then_image_service_down(real_host, image_id):
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    image_meta = real_host.image_meta(image_id)
    real_host.driver.power_off(instance)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    images.qemu_io(disk, 'qcow2', 'write -P 0x21 5M 1M')
    real_host.driver.power_on(real_host.context, instance, [])
    real_host.image_service_down()
    return instance, image_meta, disk


def test_hard_reboot_with_the_image_service_down(real_host, boot_image):
    instance, _meta, disk = _running_guest_then_image_service_down(
        real_host, boot_image)
    inode = os.stat(disk).st_ino

    real_host.driver.reboot(real_host.context, instance, [], 'HARD')

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    assert os.stat(disk).st_ino == inode
    images.qemu_io(disk, 'qcow2', 'read -P 0x21 5M 1M', force_share=True)
    real_host.destroy(instance)


def test_same_host_resize_with_the_image_service_down(real_host, boot_image):
    instance, image_meta, disk = _running_guest_then_image_service_down(
        real_host, boot_image)
    new_flavor = instance.flavor.obj_clone()
    new_flavor.root_gb += 1

    disk_info = real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, real_host.driver.get_host_ip_addr(),
        new_flavor, [])
    instance.old_flavor, instance.new_flavor = instance.flavor, new_flavor
    instance.flavor = new_flavor
    migration = objects.Migration(source_compute=real_host.hostname,
                                  dest_compute=real_host.hostname)
    real_host.driver.finish_migration(
        real_host.context, migration, instance, disk_info, [], image_meta,
        True, {}, None, True)

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    images.qemu_io(disk, 'qcow2', 'read -P 0x21 5M 1M', force_share=True)
    real_host.driver.confirm_migration(real_host.context, migration,
                                       instance, [])
    real_host.destroy(instance)


def test_rescue_with_the_image_service_down(real_host, tiny_image):
    """Rescue from the instance's own image, whose base is cached."""
    instance, image_meta, disk = _running_guest_then_image_service_down(
        real_host, real_host.upload_image(str(tiny_image), 'qcow2'))

    real_host.driver.rescue(real_host.context, instance, [], image_meta,
                            'rescue-password', None, None)

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    assert os.path.exists(
        os.path.join(real_host.instance_dir(instance), 'disk.rescue'))
    real_host.driver.unrescue(real_host.context, instance)
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)
