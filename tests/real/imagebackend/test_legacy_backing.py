"""A disk whose backing file is a legacy size-suffixed base keeps working."""

import os

import libvirt

from realhost import harness
from tests.real.imagebackend import images


def test_hard_reboot_recreates_missing_legacy_sized_base(
        real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    # Make it the disk an older Nova left, with neither base left.
    real_host.driver.power_off(instance)
    legacy = images.make_legacy_backed(disk, instance.flavor.root_gb)
    os.unlink(legacy)

    real_host.context.auth_token = 'user-request'  # as from the API
    real_host.driver.reboot(real_host.context, instance, [], 'HARD')

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    assert harness.qemu_img_info(disk)['full-backing-filename'] == legacy
    assert os.path.getsize(legacy) == instance.flavor.root_gb * 1024 ** 3
    images.qemu_io(disk, 'qcow2', 'read -P 0x5a 0 1M', force_share=True)
    real_host.destroy(instance)
