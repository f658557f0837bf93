"""Root, ephemeral and swap disks: each an overlay on its own base."""

import os

from realhost import harness


def test_root_ephemeral_and_swap_overlays_on_their_own_bases(
        real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id, ephemeral_gb=1, swap_mb=64)
    real_host.spawn(instance)
    inst_dir = real_host.instance_dir(instance)
    base_dir = os.path.join(real_host.instances_path, '_base')

    backings = {}
    for name, virtual_size in (('disk', 1024 ** 3),
                               ('disk.local', 1024 ** 3),
                               ('disk.swap', 64 * 1024 ** 2)):
        info = harness.qemu_img_info(os.path.join(inst_dir, name))
        assert info['format'] == 'qcow2', name
        assert info['virtual-size'] == virtual_size, name
        backing = info['full-backing-filename']
        assert os.path.dirname(backing) == base_dir, name
        backings[name] = os.path.basename(backing)

    # The root overlay sits on the unsuffixed sha1 base, no per-size copy.
    assert backings['disk'] == harness.base_name(image_id)
    assert backings['disk.local'].startswith('ephemeral_1_')
    assert backings['disk.swap'] == 'swap_64'
    # ... and the root base's record of its verification; nothing else.
    assert sorted(os.listdir(base_dir)) == sorted(
        [*backings.values(), harness.base_name(image_id) + '.verified'])
    swap_base = os.path.join(base_dir, 'swap_64')
    with open(swap_base, 'rb') as f:
        assert b'SWAPSPACE2' in f.read(4096)
    real_host.destroy(instance)
