"""Delta snapshots on the real libvirtd: only the overlay is uploaded, and
it boots through novaext's image backend, with or without its base."""

import json
import os
import subprocess

from oslo_utils.imageutils import format_inspector

from novaext.imagebackend import image_safety
from realhost import harness
from realhost import snapshots
from tests.real.imagebackend import images

MiB = 1024 ** 2
WRITTEN = 32 * MiB


def _top_layer_data(disk):
    """Bytes of data the disk's own (top) layer holds."""
    out = subprocess.run(['qemu-img', 'map', '-U', '--output=json', disk],
                         check=True, capture_output=True, text=True).stdout
    return sum(e['length'] for e in json.loads(out)
               if e['depth'] == 0 and e['data'])


def _read(disk, *commands):
    images.qemu_io(disk, 'qcow2', *commands, force_share=True)


def test_delta_snapshot_uploads_overlay_and_boots_with_and_without_base(
        real_host, tmp_path):
    real_host.conf_group('novaext', snapshot_mode='delta')
    base_file = str(tmp_path / 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base_file,
                    '2G'], check=True)
    images.qemu_io(base_file, 'qcow2', 'write -P 0x5a 0 1M')
    base_id = real_host.upload_image(base_file, 'qcow2', name='base')
    base_sha1 = harness.base_name(base_id)
    instance = real_host.new_instance(base_id, root_gb=2)
    real_host.spawn(instance)
    dom = real_host.domain(instance)
    snapshots.guest_write(dom, '0x77', '100M', f'{WRITTEN}')
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    allocated = _top_layer_data(disk)

    delta_id = real_host.new_snapshot_image('delta')
    real_host.driver.snapshot(real_host.context, instance, delta_id,
                              lambda **kw: None)

    uploaded = real_host.uploads[delta_id]
    assert allocated >= WRITTEN
    assert uploaded <= 1.1 * allocated, (uploaded, allocated)
    assert uploaded <= 1.1 * WRITTEN + MiB, (uploaded, WRITTEN)
    delta_meta = real_host.images.show(real_host.context, delta_id)
    assert delta_meta['disk_format'] == 'qcow2'
    assert delta_meta['properties']['base_image_id_sha1'] == base_sha1
    base_meta = real_host.images.show(real_host.context, base_id)
    assert base_meta['properties']['image_id_sha1'] == base_sha1
    delta_file = real_host.uploaded_file(delta_id)
    # Detached, so that the image service's upload inspection (glance's,
    # the same oslo format inspector) finds nothing to refuse.
    assert 'backing-filename' not in harness.qemu_img_info(delta_file)
    format_inspector.detect_file_format(delta_file).safety_check()
    info = image_safety.check_delta_snapshot(delta_file, delta_id, 'qcow2',
                                             base_sha1)
    assert info.virtual_size == 2 * 1024 ** 3

    # Same host, base cached: the delta boots into the disk as it was.
    same_host = real_host.new_instance(delta_id, root_gb=2)
    real_host.spawn(same_host)
    same_disk = os.path.join(real_host.instance_dir(same_host), 'disk')
    same, out = snapshots.identical(same_disk, disk)
    assert same, out

    # A host without the base: it is found by image_id_sha1 and fetched.
    real_host.destroy(same_host)
    real_host.destroy(instance)
    base_path = os.path.join(real_host.instances_path, '_base', base_sha1)
    os.unlink(base_path)
    real_host.downloads.clear()
    elsewhere = real_host.new_instance(delta_id, root_gb=2)
    real_host.spawn(elsewhere)
    assert real_host.downloads == {delta_id: 1, base_id: 1}
    new_disk = os.path.join(real_host.instance_dir(elsewhere), 'disk')
    assert harness.qemu_img_info(new_disk)['full-backing-filename'] == \
        base_path
    _read(new_disk, 'read -P 0x5a 0 1M', 'read -P 0x77 100M 32M',
          'read -P 0 1M 99M')

    # A full snapshot of the delta-booted guest must not look like a
    # delta: the inherited base_image_id_sha1 is dropped.
    full_id = real_host.new_snapshot_image(
        'full', properties={'base_image_id_sha1': base_sha1,
                            'novaext_snapshot_mode': 'full'})
    real_host.driver.snapshot(real_host.context, elsewhere, full_id,
                              lambda **kw: None)
    full_meta = real_host.images.show(real_host.context, full_id)
    assert 'base_image_id_sha1' not in full_meta['properties']
    full_info = harness.qemu_img_info(real_host.uploaded_file(full_id))
    assert 'backing-filename' not in full_info
    same, out = snapshots.identical(real_host.uploaded_file(full_id),
                                    new_disk)
    assert same, out
    real_host.destroy(elsewhere)


def test_delta_falls_back_to_full_when_base_may_not_be_labelled(
        real_host, tiny_image, monkeypatch):
    from nova import exception
    real_host.conf_group('novaext', snapshot_mode='delta')
    base_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(base_id)
    real_host.spawn(instance)
    update = real_host.images.update

    def owner_only(context, image_id, metadata, data=None, **kwargs):
        if image_id == base_id:
            raise exception.ImageNotAuthorized(image_id=image_id)
        return update(context, image_id, metadata, data, **kwargs)

    monkeypatch.setattr(real_host.images, 'update', owner_only)
    snap_id = real_host.new_snapshot_image()
    real_host.driver.snapshot(real_host.context, instance, snap_id,
                              lambda **kw: None)
    meta = real_host.images.show(real_host.context, snap_id)
    assert 'base_image_id_sha1' not in meta['properties']
    assert 'image_id_sha1' not in real_host.images.show(
        real_host.context, base_id)['properties']
    uploaded = real_host.uploaded_file(snap_id)
    assert 'backing-filename' not in harness.qemu_img_info(uploaded)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    same, out = snapshots.identical(uploaded, disk)
    assert same, out
    real_host.destroy(instance)
