"""The resize pre-copy on the real libvirtd, QEMU and rsync daemon: the
overlay is pushed while the guest runs and writes beside it, and after
power-off only what it wrote; once merged on the destination, the disk
reads the same as the source's, every byte."""

import json
import os
import signal
import threading
import time
from xml.etree import ElementTree

import libvirt
import pytest
from nova import exception

from novaext.resize import dest as resize_dest
from novaext.resize import source as resize_source
from realhost import harness
from realhost import snapshots
from tests.real.imagebackend import images

MiB = 1024 ** 2


def _pushes(caplog, file='disk'):
    """(pass, event, payload) of the novaext.progress records of ``file``."""
    return [(r.args['pass'], r.args['event'], r.args)
            for r in caplog.records
            if r.name == 'novaext.progress' and r.args.get('file') == file]


class _WritingGuest:
    """Writes 1 MiB through the running QEMU every 0.3 s, each with its
    own pattern, into both clusters the overlay has and new ones, while
    a pass runs; then once more after it (between the passes)."""

    def __init__(self, dom):
        self.dom = dom
        self.during = []
        self.after = []
        self._stop = threading.Event()

    def _write(self, n, record):
        offset = (8 + n * 5) % 200  # over the pre-written 8-56 MiB and past
        snapshots.guest_write(self.dom, hex(0x10 + n % 0xe0),
                              f'{offset}M', '1M')
        record.append((n, offset))

    def _run(self):
        n = 0
        while not self._stop.wait(0.3):
            self._write(n, self.during)
            n += 1

    def wrap(self, precopy):
        def precopy_while_writing(mover, name):
            writer = threading.Thread(target=self._run)
            writer.start()
            try:
                precopy(mover, name)
            finally:
                self._stop.set()
                writer.join()
            self._write(1000, self.after)
        return precopy_while_writing


def _running_guest_to_precopy(real_host, daemon, tiny_image):
    """A running guest whose overlay holds 48 MiB, pushed to ``daemon``
    at 8 MiB/s when pre-copied: about 6 s of guest writes in pass 1."""
    pw = daemon['tmp'] / 'client.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    real_host.conf_group('novaext', rsync_port=daemon['port'],
                         rsync_password_file=str(pw), resize_precopy=True,
                         resize_precopy_min_mib=0, rsync_bwlimit_kib=8192)
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    dom = real_host.domain(instance)
    for n in range(48):
        snapshots.guest_write(dom, hex(0x80 + n), f'{8 + n}M', '1M')
    return instance, dom


def test_precopy_with_guest_writing_arrives_with_every_write(
        real_host, daemon, tiny_image, caplog, monkeypatch):
    instance, dom = _running_guest_to_precopy(real_host, daemon, tiny_image)
    writer = _WritingGuest(dom)
    monkeypatch.setattr(resize_source._Mover, 'precopy',
                        writer.wrap(resize_source._Mover.precopy))
    caplog.set_level('INFO', logger='novaext.progress')
    flavor = instance.flavor.obj_clone()
    flavor.root_gb += 1

    started = time.monotonic()
    json.loads(real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, '127.0.0.1', flavor, []))
    seconds = time.monotonic() - started

    assert len(writer.during) >= 5, writer.during
    pushes = _pushes(caplog)
    assert [(p, e) for p, e, _ in pushes if e != 'progress'] == [
        ('precopy', 'start'), ('precopy', 'end'),
        ('final', 'start'), ('final', 'end')]
    precopy_sent, final_sent = [payload['bytes_sent']
                                for _, e, payload in pushes if e == 'end']
    assert precopy_sent > 48 * MiB
    # After power-off only what the guest wrote since pass 1 began (and
    # the writes file's qcow2 metadata), not the overlay.
    written = len({offset for _, offset in
                   writer.during + writer.after}) * MiB
    assert written <= final_sent < written + 1 * MiB, (final_sent, written)
    inst_resize = real_host.instance_dir(instance) + '_resize'
    source = os.path.join(inst_resize, 'disk')
    dest_dir = daemon['instances'] / instance.uuid
    dest = str(dest_dir / 'disk')
    # The source's disk holds the writes again and its writes file is
    # gone; the destination has the writes over the pre-copied disk.
    assert 'disk.novaext-writes' not in os.listdir(inst_resize)
    assert {p.name for p in dest_dir.iterdir()} == \
        set(os.listdir(inst_resize)) - {'console.log'} | \
        {'disk.novaext-precopy'}
    assert harness.qemu_img_info(dest)['backing-filename'] == \
        'disk.novaext-precopy'
    assert harness.qemu_img_info(source).get('backing-filename') == \
        harness.qemu_img_info(dest + '.novaext-precopy')['backing-filename']
    assert resize_dest.merge_precopied(dest, instance)
    assert not (dest_dir / 'disk.novaext-precopy').exists()
    assert snapshots.identical(source, dest)[0]
    # The last write, between the passes, is there.
    n, offset = writer.after[0]
    images.qemu_io(dest, 'qcow2',
                   f'read -P {hex(0x10 + n % 0xe0)} {offset}M 1M',
                   force_share=True)
    assert harness.qemu_img_info(dest)['format'] == 'qcow2'
    assert harness.qemu_img_info(dest)['backing-filename'] == \
        harness.qemu_img_info(source)['backing-filename']
    print(f'pre-copy {precopy_sent / MiB:.1f} MiB, final pass '
          f'{final_sent / MiB:.1f} MiB for {written / MiB:.0f} MiB written '
          f'({len(writer.during)} writes during pass 1); {seconds:.1f} s')
    os.rename(os.path.dirname(source), real_host.instance_dir(instance))
    real_host.destroy(instance)


def test_catch_up_pass_during_shutdown_leaves_only_the_last_writes(
        real_host, daemon, tiny_image, caplog, monkeypatch):
    """With a clean shutdown (timeout): the writes of pass 1 are frozen by
    a second snapshot and pushed while the guest is asked to stop (this
    guest has no OS: it is destroyed after the timeout, as Nova does);
    after power-off only what the guest wrote since the second snapshot
    moves. Merged on the destination, the disk reads as the source's."""
    instance, dom = _running_guest_to_precopy(real_host, daemon, tiny_image)
    writer = _WritingGuest(dom)
    monkeypatch.setattr(resize_source._Mover, 'precopy',
                        writer.wrap(resize_source._Mover.precopy))
    last = [('0xe1', 300), ('0xe2', 301)]  # past the writer's offsets
    push_caught_up = resize_source._Mover.push_caught_up

    def push_caught_up_while_writing(mover):
        # After the second snapshot: these land in the last writes.
        snapshots.guest_write(dom, last[0][0], f'{last[0][1]}M', '1M')
        push_caught_up(mover)
        snapshots.guest_write(dom, last[1][0], f'{last[1][1]}M', '1M')
    monkeypatch.setattr(resize_source._Mover, 'push_caught_up',
                        push_caught_up_while_writing)
    caplog.set_level('INFO', logger='novaext.progress')
    flavor = instance.flavor.obj_clone()
    flavor.root_gb += 1

    real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, '127.0.0.1', flavor, [], timeout=3,
        retry_interval=1)

    pushes = _pushes(caplog)
    assert [(p, e) for p, e, _ in pushes if e != 'progress'] == [
        ('precopy', 'start'), ('precopy', 'end'),
        ('catchup', 'start'), ('catchup', 'end'),
        ('final', 'start'), ('final', 'end')]
    _, catch_up_sent, final_sent = [payload['bytes_sent']
                                    for _, e, payload in pushes
                                    if e == 'end']
    pass_1 = len({offset for _, offset in
                  writer.during + writer.after}) * MiB
    assert pass_1 <= catch_up_sent < pass_1 + 1 * MiB
    assert 2 * MiB <= final_sent < 3 * MiB, final_sent
    inst_resize = real_host.instance_dir(instance) + '_resize'
    source = os.path.join(inst_resize, 'disk')
    dest_dir = daemon['instances'] / instance.uuid
    dest = str(dest_dir / 'disk')
    assert not [n for n in os.listdir(inst_resize) if 'writes' in n]
    assert harness.qemu_img_info(dest)['backing-filename'] == \
        'disk.novaext-catchup'
    assert resize_dest.merge_precopied(dest, instance)
    assert not [p for p in dest_dir.iterdir() if 'novaext' in p.name]
    assert snapshots.identical(source, dest)[0]
    for pattern, offset in last:
        images.qemu_io(dest, 'qcow2', f'read -P {pattern} {offset}M 1M',
                       force_share=True)
    print(f'catch-up {catch_up_sent / MiB:.1f} MiB for {pass_1 / MiB:.0f} '
          f'MiB written in pass 1; after power-off {final_sent / MiB:.2f} '
          f'MiB')
    os.rename(os.path.dirname(source), real_host.instance_dir(instance))
    real_host.destroy(instance)


def _kill_daemon_and_its_children(pid):
    """The daemon started by the fixture and the connection it forked."""
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        children = [int(c) for c in f.read().split()]
    for victim in children + [pid]:
        os.kill(victim, signal.SIGKILL)


def test_failed_precopy_puts_the_guest_back_on_its_disk(
        real_host, daemon, tiny_image, monkeypatch):
    """The daemon dies during pass 1 while the guest writes: the resize
    fails with the guest running on its own disk again, which holds
    every write, and no writes file is left."""
    instance, dom = _running_guest_to_precopy(real_host, daemon, tiny_image)
    writer = _WritingGuest(dom)
    precopy = writer.wrap(resize_source._Mover.precopy)

    def precopy_until_the_daemon_dies(mover, name):
        killer = threading.Timer(2.0, _kill_daemon_and_its_children,
                                 (daemon['pid'],))
        killer.start()
        try:
            precopy(mover, name)
        finally:
            killer.join()
    monkeypatch.setattr(resize_source._Mover, 'precopy',
                        precopy_until_the_daemon_dies)
    flavor = instance.flavor.obj_clone()
    flavor.root_gb += 1

    with pytest.raises(exception.InstanceFaultRollback):
        real_host.driver.migrate_disk_and_power_off(
            real_host.context, instance, '127.0.0.1', flavor, [])

    assert dom.isActive()
    inst_dir = real_host.instance_dir(instance)
    disk = os.path.join(inst_dir, 'disk')
    assert not os.path.exists(disk + '.novaext-writes')
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        sources = ElementTree.fromstring(dom.XMLDesc(flags)).findall(
            './devices/disk/source')
        assert disk in [s.get('file') for s in sources], flags
        assert not [s for s in sources
                    if 'novaext-writes' in (s.get('file') or '')]
    assert len(writer.during) >= 3, writer.during
    # Every write, during pass 1 and after it, is in the disk itself, and
    # the guest's next write goes there too.
    for n, offset in writer.during + writer.after:
        images.qemu_io(disk, 'qcow2',
                       f'read -P {hex(0x10 + n % 0xe0)} {offset}M 1M',
                       force_share=True)
    snapshots.guest_write(dom, '0x77', '300M', '1M')
    images.qemu_io(disk, 'qcow2', 'read -P 0x77 300M 1M', force_share=True)
    real_host.destroy(instance)


def test_failed_power_off_after_catch_up_puts_the_guest_back_on_its_disk(
        real_host, daemon, tiny_image, monkeypatch):
    """The power-off fails after the catch-up pass, the guest still
    running on two layers of writes: one active commit takes both back
    into its disk, every write in it, and no writes file is left."""
    instance, dom = _running_guest_to_precopy(real_host, daemon, tiny_image)
    writer = _WritingGuest(dom)
    monkeypatch.setattr(resize_source._Mover, 'precopy',
                        writer.wrap(resize_source._Mover.precopy))

    def power_off_that_fails(nova, inst, timeout, retry_interval,
                             while_stopping=None):
        snapshots.guest_write(dom, '0xe3', '302M', '1M')
        while_stopping()
        snapshots.guest_write(dom, '0xe4', '303M', '1M')
        raise RuntimeError('libvirt went away')
    monkeypatch.setattr(resize_source.resize_shutdown, 'power_off_for_move',
                        power_off_that_fails)
    flavor = instance.flavor.obj_clone()
    flavor.root_gb += 1

    with pytest.raises(RuntimeError, match='libvirt went away'):
        real_host.driver.migrate_disk_and_power_off(
            real_host.context, instance, '127.0.0.1', flavor, [], timeout=3,
            retry_interval=1)

    assert dom.isActive()
    inst_dir = real_host.instance_dir(instance)
    disk = os.path.join(inst_dir, 'disk')
    assert not [n for n in os.listdir(inst_dir) if 'writes' in n]
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        sources = ElementTree.fromstring(dom.XMLDesc(flags)).findall(
            './devices/disk/source')
        assert disk in [s.get('file') for s in sources], flags
    expected = {offset: hex(0x10 + n % 0xe0)
                for n, offset in writer.during + writer.after}
    expected.update({302: '0xe3', 303: '0xe4'})
    for offset, pattern in expected.items():
        images.qemu_io(disk, 'qcow2', f'read -P {pattern} {offset}M 1M',
                       force_share=True)
    real_host.destroy(instance)
