"""Same-host resize on the real libvirtd: local copy, then revert or confirm.

Nova's revert (finish_revert_migration) and confirm (confirm_migration)
are inherited unchanged; these tests show they work on novaext's layout:
revert brings the source back exactly as it was, confirm removes
<dir>_resize and nothing else.
"""

import hashlib
import json
import os

import libvirt
from nova import objects

from realhost import harness
from tests.real.imagebackend import images


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def _resize_on_same_host(real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id, ephemeral_gb=1, swap_mb=64)
    real_host.spawn(instance)
    real_host.driver.power_off(instance)
    inst_dir = real_host.instance_dir(instance)
    images.qemu_io(os.path.join(inst_dir, 'disk'), 'qcow2',
                   'write -P 0x42 4M 1M')
    before = {n: _digest(os.path.join(inst_dir, n))
              for n in ('disk', 'disk.local', 'disk.swap')}
    new_flavor = instance.flavor.obj_clone()
    new_flavor.root_gb = 2
    disk_info = real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, real_host.driver.get_host_ip_addr(),
        new_flavor, [])
    # Root and ephemeral disks (and disk.info) were copied as they are into
    # the new dir (same host: same ephemeral base); swap is recreated.
    assert sorted(os.listdir(inst_dir)) == ['disk', 'disk.info', 'disk.local']
    assert _digest(os.path.join(inst_dir, 'disk.local')) == \
        before['disk.local']
    instance.old_flavor = instance.flavor
    instance.new_flavor = new_flavor
    instance.flavor = new_flavor
    migration = objects.Migration(source_compute=real_host.hostname,
                                  dest_compute=real_host.hostname)
    real_host.driver.finish_migration(
        real_host.context, migration, instance, disk_info, [],
        real_host.image_meta(image_id), True, {}, None, True)
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    info = harness.qemu_img_info(os.path.join(inst_dir, 'disk'))
    assert info['virtual-size'] == 2 * 1024 ** 3
    return instance, migration, before, json.loads(disk_info)


def test_revert_brings_source_back_exactly(real_host, tiny_image):
    instance, migration, before, _ = _resize_on_same_host(
        real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    # What the compute manager does for a same-host revert.
    real_host.driver.destroy(real_host.context, instance, [],
                             destroy_disks=False)
    instance.flavor = instance.old_flavor
    real_host.driver.finish_revert_migration(
        real_host.context, instance, [], migration)

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    assert not os.path.exists(inst_dir + '_resize')
    real_host.driver.power_off(instance)
    after = {n: _digest(os.path.join(inst_dir, n)) for n in before}
    assert after == before
    real_host.destroy(instance)


def test_confirm_removes_resize_dir_and_nothing_else(real_host, tiny_image):
    instance, migration, _, _ = _resize_on_same_host(real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    base_dir = os.path.join(real_host.instances_path, '_base')
    keep = sorted(os.listdir(inst_dir)), sorted(os.listdir(base_dir))

    real_host.driver.confirm_migration(real_host.context, migration,
                                       instance, [])

    assert not os.path.exists(inst_dir + '_resize')
    assert (sorted(os.listdir(inst_dir)), sorted(os.listdir(base_dir))) \
        == keep
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)
