"""The resize pre-copy on the real libvirtd, QEMU and rsync daemon: the
overlay is pushed while the guest runs and writes, and after power-off
only what changed; what arrives is byte-identical to the source."""

import filecmp
import json
import os
import threading
import time

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


def test_precopy_with_guest_writing_arrives_byte_identical(
        real_host, daemon, tiny_image, caplog, monkeypatch):
    pw = daemon['tmp'] / 'client.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    # 48 MiB pre-copied at 8 MiB/s: about 6 s of guest writes in pass 1.
    real_host.conf_group('novaext', rsync_port=daemon['port'],
                         rsync_password_file=str(pw), resize_precopy=True,
                         resize_precopy_min_mib=0, rsync_bwlimit_kib=8192)
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    dom = real_host.domain(instance)
    for n in range(48):
        snapshots.guest_write(dom, hex(0x80 + n), f'{8 + n}M', '1M')
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
    # Pass 2 sends what the guest wrote since pass 1 read it (at most the
    # writes, rsync's checksums and qcow2 metadata), not the overlay.
    written = (len(writer.during) + len(writer.after)) * MiB
    assert final_sent < written + 4 * MiB, (final_sent, written)
    source = os.path.join(real_host.instance_dir(instance) + '_resize',
                          'disk')
    dest = str(daemon['instances'] / instance.uuid / 'disk')
    assert filecmp.cmp(source, dest, shallow=False)
    assert snapshots.identical(source, dest)[0]
    # The last write, between the passes, is there.
    n, offset = writer.after[0]
    images.qemu_io(dest, 'qcow2',
                   f'read -P {hex(0x10 + n % 0xe0)} {offset}M 1M',
                   force_share=True)
    assert harness.qemu_img_info(dest)['format'] == 'qcow2'
    print(f'pre-copy {precopy_sent / MiB:.1f} MiB, final pass '
          f'{final_sent / MiB:.1f} MiB for {written / MiB:.0f} MiB written '
          f'({len(writer.during)} writes during pass 1); {seconds:.1f} s')
    os.rename(os.path.dirname(source), real_host.instance_dir(instance))
    real_host.destroy(instance)
