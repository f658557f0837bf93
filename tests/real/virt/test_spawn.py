"""ExtLibvirtDriver.spawn and destroy on the real libvirtd with QEMU."""

import os

import libvirt

from realhost import harness


def test_spawn_runs_domain_on_qcow2_overlay_of_base_then_destroy_cleans(
        real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)

    real_host.spawn(instance)

    dom = real_host.domain(instance)
    assert dom is not None
    state, _ = dom.state()
    assert state == libvirt.VIR_DOMAIN_RUNNING
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    assert disk in dom.XMLDesc(0)
    info = harness.qemu_img_info(disk)
    assert info['format'] == 'qcow2'
    backing = info['full-backing-filename']
    assert os.path.dirname(backing) == os.path.join(
        real_host.instances_path, '_base')
    assert os.path.isfile(backing)
    assert info['virtual-size'] == instance.flavor.root_gb * 1024 ** 3

    real_host.destroy(instance)

    assert real_host.domain(instance) is None
    assert not os.path.exists(real_host.instance_dir(instance))
