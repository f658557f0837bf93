"""The demo's steps, run by scripts/demo in the project's virtualenv.

The whole cycle through novaext.ExtLibvirtDriver on the real libvirtd
(QEMU, software emulation), with two "compute hosts" on this machine
(two instances_paths, each with its own rsync daemon started by
novaext-rsyncd) and one image service shared by them (Nova's in-process
GlanceFixture, its images kept as files):

 1. boot a guest on host A from an image;
 2. write data into its disk through the running QEMU;
 3. take a live delta snapshot of it (only the overlay is uploaded);
 4. resize it to a bigger flavor across to host B (only the overlay
    crosses; progress bar from the push's progress reports);
 5. boot a second guest from the delta snapshot on host B, which has no
    copy of the base yet;
 6. finish the resize on host B (the base is there now: nothing fetched);
 7. attach a cloud disk (a tgt LUN with CHAP, QEMU's initiator) to the
    resized guest, grow the LUN and extend the disk online, detach it;
 8. confirm the resize on host A;
 9. tear everything down.

Each step prints its time and the bytes it moved; any failure ends the
demo with a non-zero exit status.
"""

import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from realhost import runtime  # noqa: E402

PROBLEM = runtime.prepare()

import libvirt  # noqa: E402
from nova import objects  # noqa: E402

from realhost import harness  # noqa: E402
from realhost import snapshots  # noqa: E402

MiB = 1024 ** 2
progress_log = logging.getLogger('novaext.progress')
STATES = {libvirt.VIR_DOMAIN_RUNNING: 'running',
          libvirt.VIR_DOMAIN_PAUSED: 'paused',
          libvirt.VIR_DOMAIN_SHUTOFF: 'shut off'}


class Steps:
    """Numbered steps that print their title, outcome and duration."""

    def __init__(self):
        self.number = 0
        self.timings = []

    def __call__(self, title):
        self.number += 1
        return _Step(self, self.number, title)


class _Step:
    def __init__(self, steps, number, title):
        self.steps, self.number, self.title = steps, number, title
        self.moved = None

    def __enter__(self):
        print(f'[{self.number}] {self.title} ...', flush=True)
        self.start = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        took = time.monotonic() - self.start
        moved = '' if self.moved is None else \
            f', {self.moved / MiB:.1f} MiB moved'
        status = 'ok' if exc is None else f'FAILED: {exc}'
        print(f'    {status} ({took:.2f} s{moved})', flush=True)
        self.steps.timings.append((self.title, took, self.moved))
        return False


class ProgressBar(logging.Handler):
    """Draws a bar from novaext's progress reports (novaext.progress:
    the log records carry the notification payload) and adds up the
    bytes each finished push sent."""

    WIDTH = 30

    def __init__(self):
        super().__init__()
        self.bytes_sent = 0
        self._open_line = None  # label of an unfinished bar

    def emit(self, record):
        payload = record.args if isinstance(record.args, dict) else {}
        if payload.get('event') == 'end':
            self.bytes_sent += payload.get('bytes_sent', 0)
            percent = 100
        elif payload.get('event') == 'progress':
            percent = min(100, int(payload['percent'] or 0))
        else:
            return
        filled = self.WIDTH * percent // 100
        bar = '#' * filled + '.' * (self.WIDTH - filled)
        label = payload.get('file') or payload.get('phase') or \
            payload['operation']
        done = payload.get('bytes_done', payload.get(
            'bytes_sent', payload.get('bytes_uploaded', 0)))
        if self._open_line not in (None, label):
            print()
        end = '\n' if percent == 100 else ''
        self._open_line = None if end else label
        print(f'\r    {label:<10} [{bar}] {percent:3d}% '
              f'{done / MiB:8.1f} MiB', end=end,
              flush=True)


class Hosts:
    """Two compute hosts on this machine sharing one image service."""

    def __init__(self, work):
        from realhost import rsyncd
        self.work = work
        self.images = {}  # image id -> (file, disk_format, properties)
        self.daemons = {}
        # Like real compute hosts: every daemon on the same port, each on
        # its host's own address.
        self.port = rsyncd.free_port()
        self.password = os.path.join(work, 'rsync.password')
        with open(os.open(self.password, os.O_WRONLY | os.O_CREAT, 0o600),
                  'w') as f:
            f.write('demo-secret')

    def path(self, name):
        return os.path.join(self.work, f'host-{name}')

    def start_daemon(self, name, address):
        """An rsync daemon rooted at host ``name``'s instances_path."""
        import pathlib

        from realhost import rsyncd
        workdir = pathlib.Path(self.work, f'rsyncd-{name}')
        workdir.mkdir()
        os.makedirs(self.path(name), exist_ok=True)
        _cmd, pid = rsyncd.start_daemon(
            workdir, self.path(name), self.port, address=address,
            secret='demo-secret')
        self.daemons[name] = pid

    def stop_daemons(self):
        for pid in self.daemons.values():
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass

    def open(self, name):
        """Set up host ``name`` (its driver, its view of the images)."""
        host = harness.RealComputeHost(f'host-{name}',
                                       instances_path=self.path(name))
        host.setUp()
        host.conf_group('novaext', rsync_port=self.port,
                        rsync_password_file=self.password,
                        progress_interval=1)
        for image_id, (path, disk_format, props) in self.images.items():
            host.upload_image(path, disk_format, image_id=image_id,
                              properties=props, by_reference=True)
        return host


def write_in_running_guest(host, instance, mib):
    """Write ``mib`` MiB through the running QEMU (HMP qemu-io)."""
    dom = host.domain(instance)
    for i in range(0, mib, 64):
        snapshots.guest_write(dom, f'0x{0x10 + i // 64:02x}',
                              f'{64 + 2 * i}M', f'{min(64, mib - i)}M')


def describe(host, instance):
    dom = host.domain(instance)
    disk = os.path.join(host.instance_dir(instance), 'disk')
    info = harness.qemu_img_info(disk)
    print(f'    {host.hostname}: domain {dom.name()} '
          f'{STATES.get(dom.state()[0], dom.state()[0])}; disk '
          f'{info["virtual-size"] // MiB} MiB virtual, '
          f'{os.stat(disk).st_blocks * 512 / MiB:.1f} MiB allocated, '
          f'backing {info.get("full-backing-filename")}')


def run(step, work):
    hosts = Hosts(work)
    image = os.path.join(work, 'image.raw')
    with step('make a 512 MiB raw image full of data'):
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', image,
                        '512M'], check=True)
        subprocess.run(['qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 0 512M',
                        image], check=True, capture_output=True)
    with step('start an rsync daemon for host A (127.0.0.2) and host B '
              '(127.0.0.1), configured by novaext-rsyncd'):
        hosts.start_daemon('a', '127.0.0.2')
        hosts.start_daemon('b', '127.0.0.1')
    try:
        image_id = str(uuid.uuid4())
        # virtio-scsi: this guest has no OS to consent to a PCI unplug,
        # and a SCSI disk's detach needs none.
        hosts.images[image_id] = (image, 'raw',
                                  {'hw_scsi_model': 'virtio-scsi'})

        a = hosts.open('a')
        try:
            instance = a.new_instance(image_id, memory_mb=128, root_gb=1)
            with step(f'boot guest {instance.uuid} on host A') as s:
                a.spawn(instance)
                s.moved = sum(a.downloads.values()) and os.path.getsize(
                    image)
            describe(a, instance)
            with step('write 128 MiB into its disk while it runs'):
                write_in_running_guest(a, instance, 128)
            describe(a, instance)
            snapshot_id = live_delta_snapshot(step, a, instance, hosts,
                                              image_id, work)
            new_flavor = instance.flavor.obj_clone()
            new_flavor.root_gb = 2
            with step('resize to a 2 GiB root: power off, push the overlay '
                      'to host B\'s rsync daemon') as s:
                bar = ProgressBar()
                progress_log.addHandler(bar)
                try:
                    disk_info = a.driver.migrate_disk_and_power_off(
                        a.context, instance, '127.0.0.1', new_flavor, [])
                finally:
                    progress_log.removeHandler(bar)
                s.moved = bar.bytes_sent
            instance_uuid = instance.uuid
        finally:
            a.cleanUp()

        b = hosts.open('b')
        try:
            second = b.new_instance(snapshot_id, root_gb=1)
            with step('boot a second guest from the delta snapshot on host '
                      'B (no base there yet)') as s:
                b.spawn(second)
                s.moved = sum(os.path.getsize(hosts.images[i][0]) * n
                              for i, n in b.downloads.items())
            print('    fetched: ' + ', '.join(
                f'{"snapshot" if i == snapshot_id else "base"} '
                f'{os.path.getsize(hosts.images[i][0]) / MiB:.1f} MiB'
                for i in b.downloads))
            describe(b, second)
            b.downloads.clear()
            moved = b.new_instance(image_id, root_gb=2,
                                   instance_uuid=instance_uuid)
            moved.new_flavor = moved.flavor
            moved.old_flavor = moved.flavor.obj_clone()
            moved.old_flavor.root_gb = 1
            migration = objects.Migration(source_compute='127.0.0.2',
                                          dest_compute='host-b')
            with step('finish the resize on host B: base already there, '
                      'rebase -u, grow, start') as s:
                b.driver.finish_migration(
                    b.context, migration, moved, disk_info, [],
                    b.image_meta(image_id), True, {}, None, True)
                s.moved = b.downloads.get(image_id, 0) * os.path.getsize(
                    image)
            describe(b, moved)
            cloud_disk(step, b, moved, work)
            with step('tear down on host B'):
                b.destroy(moved)
                b.destroy(second)
        finally:
            b.cleanUp()

        a = hosts.open('a')
        try:
            with step('confirm the resize on host A (removes the '
                      '_resize directory)'):
                instance = a.new_instance(image_id,
                                          instance_uuid=instance_uuid)
                instance.old_flavor = instance.flavor
                instance.new_flavor = new_flavor
                a.driver.confirm_migration(a.context, migration, instance,
                                           [])
                left = os.path.exists(a.instance_dir(instance) + '_resize')
                if left:
                    raise RuntimeError('the _resize directory is still '
                                       'there')
        finally:
            a.cleanUp()
    finally:
        hosts.stop_daemons()


def live_delta_snapshot(step, host, instance, hosts, image_id, work):
    """Snapshot the running guest as a delta; share it with host B.

    Returns the snapshot's image id.
    """
    import shutil
    host.conf_group('novaext', snapshot_mode='delta')
    snapshot_id = host.new_snapshot_image('demo-delta')
    states = []
    with step('take a live delta snapshot (block copy of the overlay, '
              'upload only the overlay)') as s:
        bar = ProgressBar()
        progress_log.addHandler(bar)
        try:
            host.driver.snapshot(
                host.context, instance, snapshot_id,
                lambda task_state, **kw: states.append(
                    (task_state, host.domain(instance).state()[0])))
        finally:
            progress_log.removeHandler(bar)
        s.moved = host.uploads[snapshot_id]
    meta = host.images.show(host.context, snapshot_id)
    print(f'    task states {[t for t, _ in states]}, guest '
          f'{", ".join(sorted({STATES.get(d, str(d)) for _, d in states}))}'
          f' throughout; image {snapshot_id}: {meta["disk_format"]}, '
          f'base_image_id_sha1={meta["properties"]["base_image_id_sha1"]}')
    # The shared image service: the snapshot, and the base image's new
    # image_id_sha1 property, as host B will see them.
    path = os.path.join(work, 'snapshot.qcow2')
    shutil.copyfile(host.uploaded_file(snapshot_id), path)
    hosts.images[snapshot_id] = (path, 'qcow2', meta['properties'])
    base_props = host.images.show(host.context, image_id)['properties']
    hosts.images[image_id] = hosts.images[image_id][:2] + (base_props,)
    return snapshot_id


def cloud_disk(step, host, instance, work):
    """Attach a tgt LUN, grow it online, detach it (QEMU's initiator)."""
    import pathlib

    from realhost.tgt import Lun
    host.conf_group('novaext', clouddisk_attach_mode='qemu')
    with step('create a 64 MiB iSCSI LUN with CHAP on tgtd (127.0.0.1)'):
        lun = Lun(pathlib.Path(work), 970,
                  chap=('demo-user', 'Demo-Chap-Secret1'))
    try:
        info = lun.connection_info()
        dom = host.domain(instance)
        with step('attach it as a cloud disk (QEMU\'s own initiator, '
                  'CHAP in a libvirt secret)'):
            host.driver.attach_volume(host.context, info, instance,
                                      '/dev/sdb', disk_bus='scsi',
                                      device_type='disk')
        print(f'    guest sees {info["data"]["guest_device"]}: '
              f'{dom.blockInfo("sdb")[0] // MiB} MiB')
        with step('grow the LUN to 128 MiB and extend the disk online'):
            lun.grow(128)
            host.driver.extend_volume(host.context, info, instance,
                                      128 * MiB)
        print(f'    guest now has {dom.blockInfo("sdb")[0] // MiB} MiB, '
              f'domain {STATES.get(dom.state()[0])}, no reboot')
        with step('detach it (no secret, device or session left)'):
            host.driver.detach_volume(host.context, info, instance,
                                      '/dev/sdb')
            if lun.sessions():
                raise RuntimeError('tgt still has a session')
    finally:
        lun.remove()


def main():
    logging.basicConfig(level=logging.ERROR)
    # An optional cache backend Nova's import probes; not used here.
    logging.getLogger('stevedore.extension').setLevel(logging.CRITICAL)
    progress_log.setLevel(logging.INFO)
    progress_log.propagate = False
    if PROBLEM:
        print(f'cannot run the demo here: {PROBLEM}', file=sys.stderr)
        return 2
    step = Steps()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='novaext-demo-',
                                     dir='/var/tmp') as work:
        try:
            run(step, work)
        except Exception as e:
            print(f'demo FAILED: {type(e).__name__}: {e}', file=sys.stderr)
            return 1
    print(f'demo finished in {time.monotonic() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
