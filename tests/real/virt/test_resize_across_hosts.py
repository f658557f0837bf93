"""Resize across two "hosts": two instances_paths, the rsync daemon, QEMU.

The source host pushes to an rsync daemon rooted at the destination's
instances_path; then the destination host (same machine, its own
instances_path, its own empty _base) finishes the migration through the
driver. The guest runs there with the same disk content, on a base it
fetched itself, grown to the bigger flavor.
"""

import os
import subprocess

import libvirt
from nova import exception
from nova import objects

from novaext.virt import rsync_client
from tests.real import harness
from tests.real.imagebackend import images
from tests.real.virt import test_rsync_daemon
from tests.real.virt.test_rsync_daemon import daemon  # noqa: F401


def _same_guest_view(source_disk, dest_disk):
    """qemu-img compare: identical as the guest reads them (the bigger
    destination's extra space must read as zeros)."""
    out = subprocess.run(
        ['qemu-img', 'compare', '-U', '-f', 'qcow2', '-F', 'qcow2',
         source_disk, dest_disk], capture_output=True, text=True)
    return out.returncode == 0, out.stdout + out.stderr


def _image_service_down(host):
    def unreachable(*args, **kwargs):
        raise exception.GlanceConnectionFailed(
            server='glance.example:9292', reason='connection refused')
    host.images.download = unreachable
    host.images.show = unreachable


def _write_while_stopped(src, instance):
    src.driver.power_off(instance)
    images.qemu_io(os.path.join(src.instance_dir(instance), 'disk'),
                   'qcow2', 'write -P 0x77 3M 2M')


def _resize_across(daemon, image_file, image_on_destination,  # noqa: F811
                   source_host='src-host', image_service_down=False,
                   disk_format='qcow2', root_gb=1,
                   write=_write_while_stopped,
                   expect_backing=harness.base_name):
    """Boot on the source, ``write``, migrate to the destination, finish.

    Returns (destination downloads, image id, bytes the source pushed).
    """
    pw = daemon['tmp'] / 'client.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    src_path = str(daemon['tmp'] / 'src-instances')
    dst_path = str(daemon['instances'])

    src = harness.RealComputeHost('src-host', instances_path=src_path)
    src.setUp()
    try:
        src.conf_group('novaext', rsync_port=daemon['port'],
                       rsync_password_file=str(pw))
        image_id = src.upload_image(str(image_file), disk_format,
                                    by_reference=True)
        instance = src.new_instance(image_id, root_gb=root_gb)
        src.spawn(instance)
        write(src, instance)
        new_flavor = instance.flavor.obj_clone()
        new_flavor.root_gb = root_gb + 1
        pushed = []
        real_push = rsync_client.RsyncDaemonClient.push

        def counting_push(self, *args, **kwargs):
            pushed.append(real_push(self, *args, **kwargs))
            return pushed[-1]
        src.stub_out('novaext.virt.rsync_client.RsyncDaemonClient.push',
                     counting_push)
        disk_info = src.driver.migrate_disk_and_power_off(
            src.context, instance, '127.0.0.1', new_flavor, [])
        uuid = instance.uuid
        # Nova keeps the image's metadata with the instance.
        image_meta = src.image_meta(image_id)
    finally:
        src.cleanUp()
    assert os.path.isdir(os.path.join(src_path, uuid + '_resize'))

    dst = harness.RealComputeHost('dst-host', instances_path=dst_path)
    dst.setUp()
    try:
        dst.conf_group('novaext', rsync_port=daemon['port'],
                       rsync_password_file=str(pw))
        if image_on_destination:
            dst.upload_image(str(image_file), disk_format, image_id=image_id,
                             by_reference=True)
        if image_service_down:
            _image_service_down(dst)
        moved = dst.new_instance(image_id, root_gb=root_gb + 1,
                                 instance_uuid=uuid)
        # As Nova's resize sets them before finish_migration.
        moved.new_flavor = moved.flavor
        moved.old_flavor = moved.flavor.obj_clone()
        moved.old_flavor.root_gb = root_gb
        migration = objects.Migration(source_compute=source_host,
                                      dest_compute='dst-host')
        dst.driver.finish_migration(
            dst.context, migration, moved, disk_info, [],
            image_meta, True, {}, None, True)

        assert dst.domain(moved).state()[0] == libvirt.VIR_DOMAIN_RUNNING
        disk = os.path.join(dst.instance_dir(moved), 'disk')
        info = harness.qemu_img_info(disk)
        assert info['full-backing-filename'] == os.path.join(
            dst_path, '_base', expect_backing(image_id))
        assert info['virtual-size'] == (root_gb + 1) * 1024 ** 3
        same, report = _same_guest_view(
            os.path.join(src_path, uuid + '_resize', 'disk'), disk)
        assert same, report
        dst.destroy(moved)
        return dst.downloads, image_id, sum(pushed)
    finally:
        dst.cleanUp()


def test_resize_to_bigger_flavor_across_hosts(daemon, tiny_image):  # noqa
    downloads, image_id, _sent = _resize_across(daemon, tiny_image, True)
    assert downloads == {image_id: 1}


def test_base_missing_everywhere_but_the_source_host(
        daemon, tiny_image):  # noqa: F811
    """The image is gone from the image service: the destination pulls
    the base from the source host's rsync daemon (127.0.0.2 here)."""
    src_dir = daemon['tmp'] / 'src-daemon'
    src_dir.mkdir()
    _cmd, pid = test_rsync_daemon.start_daemon(
        src_dir, daemon['tmp'] / 'src-instances', daemon['port'],
        address='127.0.0.2')
    try:
        downloads, image_id, _sent = _resize_across(
            daemon, tiny_image, False, source_host='127.0.0.2')
    finally:
        test_rsync_daemon.stop_daemon(pid)
    assert image_id not in downloads


def test_image_service_down_base_comes_from_the_source_host(
        daemon, tiny_image):  # noqa: F811
    """The image service does not answer: the destination pulls the base
    from the source host's rsync daemon and the resize completes."""
    src_dir = daemon['tmp'] / 'src-daemon'
    src_dir.mkdir()
    _cmd, pid = test_rsync_daemon.start_daemon(
        src_dir, daemon['tmp'] / 'src-instances', daemon['port'],
        address='127.0.0.2')
    try:
        _resize_across(daemon, tiny_image, True, source_host='127.0.0.2',
                       image_service_down=True)
    finally:
        test_rsync_daemon.stop_daemon(pid)


def _write_200_mib_in_the_running_guest(src, instance):
    """200 MiB written through the running QEMU's own block layer
    (HMP qemu-io on the guest's disk), as a guest's writes would be."""
    import libvirt_qemu
    dom = src.domain(instance)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    writes = [f'write -P {0x11 * (i + 1):#x} {i * 512}M 50M'
              for i in range(4)]
    for write in writes + ['flush']:
        out = libvirt_qemu.qemuMonitorCommand(
            dom, f'qemu-io -d /machine/peripheral/virtio-disk0/'
                 f'virtio-backend "{write}"',
            libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        assert 'rror' not in out, out
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # The writes are in the overlay (read without stopping the guest).
    images.qemu_io(os.path.join(src.instance_dir(instance), 'disk'),
                   'qcow2', *[w.replace('write', 'read') for w in writes],
                   'read -P 0x5a 50M 1M', force_share=True)


def test_running_guest_on_2_gib_base_moves_only_its_200_mib(
        daemon, tmp_path):  # noqa: F811
    """A running guest on a 2 GiB (fully written) base with 200 MiB
    written in its overlay: about 200 MiB cross, not the base, and the
    guest runs on the destination with the same disk content."""
    base = tmp_path / 'base-2g.raw'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(base), '2G'],
                   check=True)
    images.qemu_io(base, 'raw', 'write -P 0x5a 0 1024M',
                   'write -P 0x6b 1024M 1024M')
    _downloads, _image_id, sent = _resize_across(
        daemon, base, True, disk_format='raw', root_gb=2,
        write=_write_200_mib_in_the_running_guest)
    assert 200 * 1024 ** 2 <= sent < 260 * 1024 ** 2


def _make_legacy_backed_then_write(src, instance):
    """Leave the disk as an older Nova did: backed by <sha1>_<GB>, the
    base grown to the root size, with no plain <sha1> base left."""
    src.driver.power_off(instance)
    disk = os.path.join(src.instance_dir(instance), 'disk')
    base = harness.qemu_img_info(disk)['full-backing-filename']
    legacy = f'{base}_{instance.flavor.root_gb}'
    subprocess.run(['cp', '--sparse=always', base, legacy], check=True)
    subprocess.run(['qemu-img', 'resize', '-q', '-f', 'raw', legacy,
                    f'{instance.flavor.root_gb}G'], check=True)
    subprocess.run(['qemu-img', 'rebase', '-u', '-F', 'raw', '-b', legacy,
                    disk], check=True)
    os.unlink(base)
    images.qemu_io(disk, 'qcow2', 'write -P 0x77 3M 2M')


def test_legacy_size_suffixed_backing_moves_as_metadata(
        daemon, tiny_image):  # noqa: F811
    """A disk backed by a legacy <sha1>_<GB> base: the destination
    rebuilds that base (same bytes: the image grown with zeros) and the
    overlay is re-pointed with rebase -u; the guest reads the same."""
    _downloads, image_id, sent = _resize_across(
        daemon, tiny_image, True, write=_make_legacy_backed_then_write,
        expect_backing=lambda image_id: harness.base_name(image_id) + '_1')
    assert sent < 8 * 1024 ** 2
