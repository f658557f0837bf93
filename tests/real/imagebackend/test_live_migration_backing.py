"""pre_live_migration on a destination whose _base lacks a delta's base.

Block live migration copies the disk's data; the destination must only
have the base that disk points to. For an instance booted from a delta
snapshot that base is the delta's base, found through image_id_sha1, and
the delta itself must not be downloaded (Nova alone would fetch the delta
image into _base under the base's name, and refuse it for its backing
file).
"""

import json
import os

from nova import objects

from realhost import harness
from tests.real.imagebackend import images


def test_pre_live_migration_restores_delta_base_not_delta(
        real_host, tmp_path):
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    real_host.upload_image(base_file, 'qcow2', image_id=base_id,
                           properties={'image_id_sha1': base_sha1})
    delta_id = real_host.upload_image(
        delta_file, 'qcow2', properties={'base_image_id_sha1': base_sha1})
    instance = real_host.new_instance(delta_id)
    root_size = instance.flavor.root_gb * 1024 ** 3
    source_dir = '/var/lib/nova/instances/' + instance.uuid
    disk_info = [{
        'type': 'qcow2', 'path': os.path.join(source_dir, 'disk'),
        'virt_disk_size': root_size, 'disk_size': 2 * 1024 ** 2,
        'backing_file': base_sha1, 'over_committed_disk_size': 0}]
    migrate_data = objects.LibvirtLiveMigrateData(
        is_shared_instance_path=False, is_shared_block_storage=False,
        block_migration=True, instance_relative_path=instance.uuid,
        graphics_listen_addr_vnc='127.0.0.1',
        graphics_listen_addr_spice='127.0.0.1',
        serial_listen_addr=None)

    real_host.driver.pre_live_migration(
        real_host.context, instance, None, [], json.dumps(disk_info),
        migrate_data)

    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    assert real_host.downloads == {base_id: 1}
    assert harness.qemu_img_info(base_path)['format'] == 'raw'
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    info = harness.qemu_img_info(disk)
    assert info['full-backing-filename'] == base_path
    assert info['virtual-size'] == root_size
    # An empty overlay: reads come from the base until migration fills it.
    images.qemu_io(disk, 'qcow2', 'read -P 0x5a 0 1M', 'read -P 0 1M 1M')
