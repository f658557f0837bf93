"""Resize across two "hosts": two instances_paths, the rsync daemon, QEMU.

The source host pushes to an rsync daemon rooted at the destination's
instances_path; then the destination host (same machine, its own
instances_path, its own empty _base) finishes the migration through the
driver. The guest runs there with the same disk content, on a base it
fetched itself, grown to the bigger flavor.
"""

import hashlib
import json
import os
import subprocess

import libvirt
import pytest
from nova import exception
from nova import objects

from novaext.rsync import client as rsync_client
from realhost import harness
from realhost import rsyncd
from realhost import snapshots
from tests.real.imagebackend import images


def _same_guest_view(source_disk, dest_disk):
    """qemu-img compare: identical as the guest reads them (the bigger
    destination's extra space must read as zeros)."""
    out = subprocess.run(
        ['qemu-img', 'compare', '-U', '-f', 'qcow2', '-F', 'qcow2',
         source_disk, dest_disk], capture_output=True, text=True)
    return out.returncode == 0, out.stdout + out.stderr


def _write_while_stopped(src, instance):
    src.driver.power_off(instance)
    images.qemu_io(os.path.join(src.instance_dir(instance), 'disk'),
                   'qcow2', 'write -P 0x77 3M 2M')


def _resize_across(daemon, image_file, image_on_destination,  # noqa: F811
                   source_host='src-host', image_service_down=False,
                   disk_format='qcow2', root_gb=1,
                   write=_write_while_stopped,
                   expect_backing=harness.base_name, ephemeral_gb=0,
                   prepare_destination=None, check=None, upload=None):
    """Boot on the source, ``write``, migrate to the destination, finish.

    ``upload(host, image_id)`` puts the image into a host's image service
    (default: ``image_file``; ``image_id`` None on the source) and returns
    the id to boot. ``prepare_destination(dst, image_id)`` runs on the
    destination before the
    migration arrives; ``check(source_resize_dir, dest_instance_dir)``
    with the moved guest running there.

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
                       rsync_password_file=str(pw),
                       **daemon.get('client_conf', {}))
        if upload is None:
            def upload(host, image_id):
                return host.upload_image(str(image_file), disk_format,
                                         image_id=image_id,
                                         by_reference=True)
        image_id = upload(src, None)
        instance = src.new_instance(image_id, root_gb=root_gb,
                                    ephemeral_gb=ephemeral_gb)
        src.spawn(instance)
        write(src, instance)
        new_flavor = instance.flavor.obj_clone()
        new_flavor.root_gb = root_gb + 1
        pushed = []
        real_push = rsync_client.RsyncDaemonClient.push

        def counting_push(self, *args, **kwargs):
            pushed.append(real_push(self, *args, **kwargs))
            return pushed[-1]
        src.stub_out('novaext.rsync.client.RsyncDaemonClient.push',
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
                       rsync_password_file=str(pw),
                       **daemon.get('client_conf', {}))
        if image_on_destination:
            upload(dst, image_id)
        if prepare_destination is not None:
            prepare_destination(dst, image_id)
        if image_service_down:
            dst.image_service_down()
        moved = dst.new_instance(image_id, root_gb=root_gb + 1,
                                 ephemeral_gb=ephemeral_gb,
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
        if check is not None:
            check(os.path.join(src_path, uuid + '_resize'),
                  dst.instance_dir(moved))
        dst.destroy(moved)
        return dst.downloads, image_id, sum(pushed)
    finally:
        dst.cleanUp()


def test_resize_to_bigger_flavor_across_hosts(daemon, tiny_image):  # noqa
    downloads, image_id, _sent = _resize_across(daemon, tiny_image, True)
    assert downloads == {image_id: 1}


@pytest.fixture
def source_daemon(daemon):  # noqa: F811
    """The source host's rsync daemon, on 127.0.0.2 and the same port."""
    src_dir = daemon['tmp'] / 'src-daemon'
    src_dir.mkdir()
    _cmd, pid = rsyncd.start_daemon(
        src_dir, daemon['tmp'] / 'src-instances', daemon['port'],
        address='127.0.0.2')
    yield '127.0.0.2'
    rsyncd.stop_daemon(pid)


def _compute_node_at(host, address):
    """prepare_destination: the destination's database knows compute host
    ``host`` (a service name that resolves nowhere) at ``address``, as
    every nova-compute records its my_ip."""
    def record(dst, _image_id):
        objects.ComputeNode(
            context=dst.context, host=host, hypervisor_hostname=host,
            host_ip=address, vcpus=1, memory_mb=1024, local_gb=10,
            vcpus_used=0, memory_mb_used=0, local_gb_used=0,
            hypervisor_type='QEMU', hypervisor_version=7002000,
            cpu_info='{}').create()
    return record


def test_base_missing_everywhere_but_the_source_host(
        daemon, source_daemon, tiny_image):  # noqa: F811
    """The image is gone from the image service: the destination pulls
    the base from the source host's rsync daemon, at the address its
    compute node records (127.0.0.2, where that daemon alone listens),
    not at its service name (src_host, with '_', resolves nowhere)."""
    downloads, image_id, _sent = _resize_across(
        daemon, tiny_image, False, source_host='src_host',
        prepare_destination=_compute_node_at('src_host', source_daemon))
    assert image_id not in downloads


def test_image_service_down_base_comes_from_the_source_host(
        daemon, source_daemon, tiny_image):  # noqa: F811
    """The image service does not answer: the destination pulls the base
    from the source host's rsync daemon and the resize completes."""
    _resize_across(daemon, tiny_image, True, source_host='src_host',
                   image_service_down=True,
                   prepare_destination=_compute_node_at('src_host',
                                                        source_daemon))


def _write_200_mib_in_the_running_guest(src, instance):
    """200 MiB written through the running QEMU's own block layer
    (HMP qemu-io on the guest's disk), as a guest's writes would be."""
    dom = src.domain(instance)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    writes = [(f'{0x11 * (i + 1):#x}', f'{i * 512}M', '50M')
              for i in range(4)]
    for pattern, offset, length in writes:
        snapshots.guest_write(dom, pattern, offset, length)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # The writes are in the overlay (read without stopping the guest).
    images.qemu_io(os.path.join(src.instance_dir(instance), 'disk'),
                   'qcow2', *[f'read -P {p} {o} {n}' for p, o, n in writes],
                   'read -P 0x5a 50M 1M', force_share=True)


def _full_2_gib_base(tmp_path):
    """A raw 2 GiB image written everywhere (two patterns)."""
    base = tmp_path / 'base-2g.raw'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(base), '2G'],
                   check=True)
    images.qemu_io(base, 'raw', 'write -P 0x5a 0 1024M',
                   'write -P 0x6b 1024M 1024M')
    return base


def test_running_guest_on_2_gib_base_moves_only_its_200_mib(
        daemon, tmp_path):  # noqa: F811
    """A running guest on a 2 GiB (fully written) base with 200 MiB
    written in its overlay: about 200 MiB cross, not the base, and the
    guest runs on the destination with the same disk content."""
    base = _full_2_gib_base(tmp_path)
    _downloads, _image_id, sent = _resize_across(
        daemon, base, True, disk_format='raw', root_gb=2,
        write=_write_200_mib_in_the_running_guest)
    assert 200 * 1024 ** 2 <= sent < 260 * 1024 ** 2


def _make_legacy_backed_then_write(src, instance):
    """Leave the disk as an older Nova did: backed by <sha1>_<GB>, the
    base grown to the root size, with no plain <sha1> base left."""
    src.driver.power_off(instance)
    disk = os.path.join(src.instance_dir(instance), 'disk')
    images.make_legacy_backed(disk, instance.flavor.root_gb)
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


def _ephemeral_base(instances_path):
    names = [n for n in os.listdir(os.path.join(instances_path, '_base'))
             if n.startswith('ephemeral_')]
    assert len(names) == 1, names
    return os.path.join(instances_path, '_base', names[0])


def test_ephemeral_data_survives_resize_across_hosts(
        daemon, tiny_image):  # noqa: F811
    """Data written into disk.local by the running guest reads the same on
    the destination, which already has its OWN ephemeral base of the same
    name (its own mkfs: other bytes), so no overlay may be re-pointed."""
    pattern = []

    def write_ephemeral(src, instance):
        dom = src.domain(instance)
        snapshots.guest_write(dom, '0x3c', '8M', '2M',
                              disk_name='disk.local')
        snapshots.guest_write(dom, '0x4d', '1020M', '1M',
                              disk_name='disk.local')
        pattern.append(_ephemeral_base(src.instances_path))
        _write_while_stopped(src, instance)

    def own_ephemeral_base(dst, image_id):
        # Another guest with the same ephemeral size made this host's base.
        other = dst.new_instance(image_id, ephemeral_gb=1)
        dst.spawn(other)
        dst.destroy(other)
        src_base, dst_base = pattern[0], _ephemeral_base(dst.instances_path)
        assert os.path.basename(src_base) == os.path.basename(dst_base)
        differ, _ = snapshots.identical(src_base, dst_base, 'raw', 'raw')
        assert not differ, 'each host must have made its own base'

    def same_ephemeral(resize_dir, dest_dir):
        source, dest = (os.path.join(resize_dir, 'disk.local'),
                        os.path.join(dest_dir, 'disk.local'))
        same, report = snapshots.identical(source, dest)
        assert same, report
        images.qemu_io(dest, 'qcow2', 'read -P 0x3c 8M 2M',
                       'read -P 0x4d 1020M 1M', force_share=True)

    _resize_across(daemon, tiny_image, True, ephemeral_gb=1,
                   write=write_ephemeral,
                   prepare_destination=own_ephemeral_base,
                   check=same_ephemeral)


def test_overlay_records_the_destination_base_format(
        daemon, tiny_image):  # noqa: F811
    """The source keeps raw bases (force_raw_images, Nova's default), the
    destination qcow2 ones (force_raw_images = False): the overlay arrives
    recording a raw base and must record the local base's qcow2, or the
    guest would read the base's qcow2 bytes as its disk."""
    def qcow2_base_here(dst, image_id):
        harness.CONF.set_override('force_raw_images', False)
        other = dst.new_instance(image_id)
        dst.spawn(other)
        dst.destroy(other)
        base = os.path.join(dst.instances_path, '_base',
                            harness.base_name(image_id))
        assert harness.qemu_img_info(base)['format'] == 'qcow2'

    def records_qcow2(resize_dir, dest_dir):
        source = harness.qemu_img_info(os.path.join(resize_dir, 'disk'))
        assert source['backing-filename-format'] == 'raw'
        dest = harness.qemu_img_info(os.path.join(dest_dir, 'disk'))
        assert dest['backing-filename-format'] == 'qcow2'

    _resize_across(daemon, tiny_image, True,
                   prepare_destination=qcow2_base_here, check=records_qcow2)


def _delta_snapshot_images(tmp_path):
    """upload(): a delta snapshot over its base on the source; on the
    destination the base image only (the delta was deleted since)."""
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    made = {}

    def upload(host, image_id):
        host.upload_image(base_file, 'qcow2', name='base',
                          properties={'image_id_sha1': base_sha1},
                          image_id=base_id)
        if image_id is not None:
            return image_id  # destination: the delta is gone
        made['delta'] = host.upload_image(
            delta_file, 'qcow2', name='delta',
            properties={'base_image_id_sha1': base_sha1,
                        'image_type': 'snapshot'})
        return made['delta']
    return upload, base_id, base_sha1


def test_delta_booted_resize_after_the_delta_image_is_deleted(
        daemon, tmp_path):  # noqa: F811
    """The destination has nothing cached and the delta image is gone:
    the delta's base (not sha1(delta id)) comes from the image service,
    found by its image_id_sha1; no peer is asked (none listens)."""
    upload, base_id, base_sha1 = _delta_snapshot_images(tmp_path)
    downloads, _delta_id, _sent = _resize_across(
        daemon, None, True, upload=upload,
        expect_backing=lambda _image_id: base_sha1)
    assert downloads == {base_id: 1}


def test_delta_booted_resize_with_the_image_service_down(
        daemon, source_daemon, tmp_path):  # noqa: F811
    """The image service does not answer: the delta's base comes from the
    source host's daemon, and the guest reads the same disk there."""
    upload, _base_id, base_sha1 = _delta_snapshot_images(tmp_path)
    downloads, _delta_id, _sent = _resize_across(
        daemon, None, True, upload=upload, image_service_down=True,
        source_host='src_host',
        prepare_destination=_compute_node_at('src_host', source_daemon),
        expect_backing=lambda _image_id: base_sha1)
    assert downloads == {}


def test_resize_across_hosts_over_tls(tls_daemon, tiny_image):
    """The same resize as test_resize_to_bigger_flavor_across_hosts, every
    byte over TLS with certificates checked both ways."""
    downloads, image_id, sent = _resize_across(tls_daemon, tiny_image, True)
    assert downloads == {image_id: 1}
    assert sent > 0


def test_running_guest_200_mib_over_tls(tls_daemon, tmp_path):
    """The 2 GiB base / 200 MiB overlay case over TLS: still only the
    overlay crosses."""
    base = _full_2_gib_base(tmp_path)
    _downloads, _image_id, sent = _resize_across(
        tls_daemon, base, True, disk_format='raw', root_gb=2,
        write=_write_200_mib_in_the_running_guest)
    assert 200 * 1024 ** 2 <= sent < 260 * 1024 ** 2


def test_a_base_pulled_from_the_peer_is_checked_against_its_record(
        daemon, source_daemon, tiny_image):  # noqa: F811
    """Image gone from the image service: the base pulled from the source
    is checked against the source's record of it, and recorded here."""
    def recorded_here(_source_dir, dest_dir):
        base = os.path.join(os.path.dirname(dest_dir), '_base',
                            harness.base_name(image_id))
        with open(base + '.verified') as f:
            marker = json.load(f)
        with open(base, 'rb') as f:
            assert marker['base_digest'] == hashlib.file_digest(
                f, marker['base_algo']).hexdigest()
        assert marker['ino'] == os.stat(base).st_ino
    image_id = None

    def upload(host, wanted_id):
        nonlocal image_id
        image_id = host.upload_image(str(tiny_image), 'qcow2',
                                     image_id=wanted_id, by_reference=True)
        return image_id

    _resize_across(daemon, tiny_image, False, source_host='src_host',
                   prepare_destination=_compute_node_at('src_host',
                                                        source_daemon),
                   upload=upload, check=recorded_here)


def test_a_base_altered_on_the_peer_is_refused(
        daemon, source_daemon, tiny_image):  # noqa: F811
    """The source's base was changed in place after it was recorded (same
    file, same size): the pulled bytes do not match the record, the
    destination refuses them before any guest starts, and the source keeps
    everything it needs to revert."""
    src_base_dir = daemon['tmp'] / 'src-instances' / '_base'
    dst_base_dir = daemon['instances'] / '_base'

    def alter_source_base(dst, image_id):
        _compute_node_at('src_host', source_daemon)(dst, image_id)
        with open(src_base_dir / harness.base_name(image_id), 'r+b') as f:
            f.write(b'\xff' * 512)

    with pytest.raises(exception.ImageUnacceptable) as err:
        _resize_across(daemon, tiny_image, False, source_host='src_host',
                       prepare_destination=alter_source_base)

    text = str(err.value)
    assert 'pulled from the peer was refused' in text
    assert 'the peer recorded' in text
    names = os.listdir(dst_base_dir) if dst_base_dir.exists() else []
    assert [n for n in names if not n.startswith(('ephemeral', 'swap'))] \
        == [], names
    resize_dirs = list((daemon['tmp'] / 'src-instances').glob('*_resize'))
    assert len(resize_dirs) == 1
    assert (resize_dirs[0] / 'disk').exists()


def test_a_wrong_base_on_the_destination_is_replaced_before_the_guest_runs(
        daemon, tiny_image):  # noqa: F811
    """The destination's _base holds a file of ours under the base's name
    with other bytes and no record: the arrived overlay is rebased onto
    that name, then the base is quarantined and fetched again before the
    guest starts, which then reads exactly what it read on the source."""
    dst_base_dir = daemon['instances'] / '_base'

    def plant_wrong_base(_dst, image_id):
        dst_base_dir.mkdir(exist_ok=True)
        with open(dst_base_dir / harness.base_name(image_id), 'wb') as f:
            f.truncate(64 * 1024 ** 2)

    downloads, image_id, _sent = _resize_across(
        daemon, tiny_image, True, prepare_destination=plant_wrong_base)

    assert downloads == {image_id: 1}
    aside = list(dst_base_dir.glob(harness.base_name(image_id) +
                                   '.quarantined-*'))
    assert len(aside) == 1 and aside[0].stat().st_size == 64 * 1024 ** 2
