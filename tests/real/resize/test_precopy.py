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
