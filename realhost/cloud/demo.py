"""The whole cycle on the running cloud, through the openstack CLI.

``python -m realhost.cloud.demo`` (run by scripts/demo after
``scripts/cloud up``), with the cloud's virtualenv. Every step prints the
command as a user would type it (after ``source <state>/etc/openrc``), its
time, and the bytes novaext moved, read from novaext's notifications on
the cloud's RabbitMQ (a real oslo.messaging listener):

 1. upload an image (1 GiB disk, 256 MiB of data) and make two flavors;
 2. boot a server on compute1; write 64 MiB into its disk (through its
    QEMU, as a guest would);
 3. take a live delta snapshot (only what the server wrote is uploaded);
 4. resize it to a bigger flavor: it moves to compute2 (only the overlay
    crosses), then confirm;
 5. cold-migrate it back to compute1, then confirm;
 6. block-live-migrate it to compute2 while it runs;
 7. a cloud disk: create it, attach it (novaext, QEMU's own iSCSI
    initiator), grow it online (``openstack volume set --size``: Cinder,
    then Nova's volume-extended event, then novaext), detach it;
 8. boot a second server from the delta snapshot on compute1;
 9. delete the servers, the volume and the snapshot.

The servers' disks are on virtio-scsi (image properties hw_disk_bus=scsi,
hw_scsi_model=virtio-scsi): the demo's guests have no OS, and only a
guest OS consents to a virtio-blk hot-unplug (the volume's detach).

The cloud stays up (``scripts/cloud down`` stops it); the image and the
flavors stay for exploring. Any failure ends the demo with exit status 1.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from realhost.cloud import access
from realhost.cloud.processes import wait_for

MIB = 1024 * 1024
GIB = 1024 * MIB
IMAGE = 'novaext-demo'
ROOT_DISK = 'scsi0-0-0-0'        # the root disk's device id (virtio-scsi)
IMAGE_DATA_MIB = 256
FLAVORS = {'novaext-demo-1g': 1, 'novaext-demo-2g': 2}
WRITE_MIB = 64


class Failed(Exception):
    pass


class Demo:
    def __init__(self, cloud, notifications):
        self.cloud = cloud
        self.notifications = notifications
        self.openstack = os.path.join(os.path.dirname(sys.executable),
                                      'openstack')
        self.env = dict(
            os.environ, OS_AUTH_URL='http://127.0.0.1:5000/v3',
            OS_IDENTITY_API_VERSION='3', OS_REGION_NAME='RegionOne',
            OS_USERNAME='admin', OS_PASSWORD=cloud.secrets['admin'],
            OS_PROJECT_NAME='admin', OS_USER_DOMAIN_NAME='Default',
            OS_PROJECT_DOMAIN_NAME='Default', OS_COMPUTE_API_VERSION='2.95',
            OS_VOLUME_API_VERSION='3.71')
        self.step = 0

    def run(self, *args, quiet=False):
        """``openstack <args>``, printed, timed; its JSON output if any."""
        shown = ' '.join(args)
        start = time.monotonic()
        out = subprocess.run([self.openstack, *args], env=self.env,
                             capture_output=True, text=True)
        took = time.monotonic() - start
        if not quiet:
            print(f'    $ openstack {shown}    ({took:.1f} s)', flush=True)
        if out.returncode != 0:
            raise Failed(f'openstack {shown}: {out.stderr.strip()}')
        return json.loads(out.stdout) if '-f' in args and out.stdout else None

    def title(self, text):
        """Start a step (ending the one before); returns its wall time."""
        self.end_step()
        self.step += 1
        self.step_start = time.monotonic()
        print(f'[{self.step}] {text}', flush=True)
        return time.time()

    def end_step(self):
        if self.step:
            print(f'    ok ({time.monotonic() - self.step_start:.1f} s)',
                  flush=True)

    def server(self, name):
        return self.run('server', 'show', name, '-f', 'json', quiet=True)

    def wait(self, name, status, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            shown = self.server(name)
            if shown['status'] == status and not shown.get(
                    'OS-EXT-STS:task_state'):
                return shown
            if shown['status'] == 'ERROR' or time.monotonic() > deadline:
                raise Failed(f'{name} is {shown["status"]}, not {status}: '
                             f'{shown.get("fault")}')
            time.sleep(1)

    def wait_volume(self, volume_id, status, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            shown = self.run('volume', 'show', volume_id, '-f', 'json',
                             quiet=True)
            if shown['status'] == status:
                return shown
            if 'error' in shown['status'] or time.monotonic() > deadline:
                raise Failed(f'volume {volume_id} is {shown["status"]}, '
                             f'not {status}')
            time.sleep(1)

    @staticmethod
    def volume_dev(dom, volume_id):
        """The guest's device name of the volume (its disk's serial)."""
        found = re.search(
            rf"<target dev='(\w+)'[^>]*/>\s*<serial>{volume_id}</serial>",
            dom.XMLDesc())
        if found is None:
            raise Failed(f'no disk with serial {volume_id} in the domain')
        return found.group(1)

    def pushed(self, server_id, since):
        ends = self.notifications.wait(server_id, 'novaext.resize.push.end',
                                       since=since, file='disk')
        return sum(e['payload']['bytes_sent'] for e in ends)


def _sdk_server(cloud, server_id):
    return cloud.api.compute.get_server(server_id)


def demo(cloud, notifications):
    d = Demo(cloud, notifications)
    small, large = FLAVORS

    d.title(f'an image with {IMAGE_DATA_MIB} MiB of data and two flavors')
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'image.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path,
                        '1G'], check=True)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        f'write -P 0x11 0 {IMAGE_DATA_MIB}M', path],
                       check=True, capture_output=True)
        if not d.run('image', 'list', '--name', IMAGE, '-f', 'json',
                     quiet=True):
            d.run('image', 'create', '--disk-format', 'qcow2',
                  '--container-format', 'bare', '--file', path,
                  '--property', 'hw_disk_bus=scsi',
                  '--property', 'hw_scsi_model=virtio-scsi', IMAGE,
                  '-f', 'json')
    existing = {f['Name'] for f in d.run('flavor', 'list', '-f', 'json',
                                         quiet=True)}
    for name, disk in FLAVORS.items():
        if name not in existing:
            d.run('flavor', 'create', '--ram', '128', '--vcpus', '1',
                  '--disk', str(disk), name, '-f', 'json')

    d.title('boot a server on compute1 and write into its disk')
    server = d.run('server', 'create', '--image', IMAGE, '--flavor', small,
                   '--nic', 'none', '--availability-zone', 'nova:compute1',
                   '--wait', 'novaext-demo', '-f', 'json')
    sid = server['id']
    sdk = _sdk_server(cloud, sid)
    cloud.hosts['compute1'].guest_io(sdk, f'write -P 0x5a 512M {WRITE_MIB}M',
                                     device=ROOT_DISK)
    cloud.hosts['compute1'].guest_io(sdk, 'flush', device=ROOT_DISK)
    print(f'    wrote {WRITE_MIB} MiB through its QEMU; running on '
          f'{d.server(sid)["OS-EXT-SRV-ATTR:host"]}')

    since = d.title('live delta snapshot (only what the server wrote)')
    d.run('server', 'image', 'create', '--property',
          'novaext_snapshot_mode=delta', '--name', 'novaext-demo-snapshot',
          '--wait', sid, '-f', 'json')
    uploads = [e['payload'] for e in notifications.wait(
        sid, 'novaext.snapshot.progress', since=since, phase='upload',
        percent=100.0)
        if e['payload']['phase'] == 'upload']
    uploaded = max(u['bytes_done'] for u in uploads)
    print(f'    uploaded {uploaded / MIB:.1f} MiB (the '
          f'image holds {IMAGE_DATA_MIB} MiB); server '
          f'{d.server(sid)["status"]} throughout')

    since = d.title('resize to a bigger flavor (moves to compute2), confirm')
    d.run('server', 'resize', '--flavor', large, sid)
    shown = d.wait(sid, 'VERIFY_RESIZE')
    print(f'    on {shown["OS-EXT-SRV-ATTR:host"]}; novaext pushed '
          f'{d.pushed(sid, since) / MIB:.1f} MiB')
    d.run('server', 'resize', 'confirm', sid)
    d.wait(sid, 'ACTIVE')

    since = d.title('cold migration back, confirm')
    d.run('server', 'migrate', sid)
    shown = d.wait(sid, 'VERIFY_RESIZE')
    print(f'    on {shown["OS-EXT-SRV-ATTR:host"]}; novaext pushed '
          f'{d.pushed(sid, since) / MIB:.1f} MiB')
    d.run('server', 'migrate', 'confirm', sid)
    d.wait(sid, 'ACTIVE')

    d.title('block live migration to compute2 (the server keeps running)')
    d.run('server', 'migrate', '--live-migration', '--block-migration',
          '--host', 'compute2', '--wait', sid)
    shown = d.wait(sid, 'ACTIVE')
    print(f'    on {shown["OS-EXT-SRV-ATTR:host"]}')

    d.title('a cloud disk: attach, grow online, detach')
    volume = d.run('volume', 'create', '--size', '1', 'novaext-demo-disk',
                   '-f', 'json')
    d.wait_volume(volume['id'], 'available')
    d.run('server', 'add', 'volume', sid, volume['id'])
    d.wait_volume(volume['id'], 'in-use')
    host = cloud.hosts[d.server(sid)['OS-EXT-SRV-ATTR:host']]
    dom = host.domain(_sdk_server(cloud, sid))
    dev = d.volume_dev(dom, volume['id'])
    print(f'    QEMU sees {dom.blockInfo(dev)[0] / GIB:.0f} GiB on {dev}')
    d.run('volume', 'set', '--size', '2', volume['id'])
    wait_for('QEMU seeing 2 GiB', lambda: dom.blockInfo(dev)[0] == 2 * GIB)
    print(f'    QEMU sees {dom.blockInfo(dev)[0] / GIB:.0f} GiB; server '
          f'{d.server(sid)["status"]}, domain '
          f'{"running" if dom.isActive() else "NOT running"}')
    d.run('server', 'remove', 'volume', sid, volume['id'])
    d.wait_volume(volume['id'], 'available')

    d.title('boot from the delta snapshot on compute1')
    copy = d.run('server', 'create', '--image', 'novaext-demo-snapshot',
                 '--flavor', small, '--nic', 'none', '--availability-zone',
                 'nova:compute1', '--wait', 'novaext-demo-from-snapshot',
                 '-f', 'json')
    cloud.hosts['compute1'].guest_io(_sdk_server(cloud, copy['id']),
                                     f'read -P 0x5a 512M {WRITE_MIB}M',
                                     device=ROOT_DISK)
    print(f'    {copy["status"]}; the {WRITE_MIB} MiB written before the '
          'snapshot read back through its QEMU')

    d.title('delete the servers, the volume and the snapshot')
    d.run('server', 'delete', '--wait', sid, copy['id'])
    d.run('volume', 'delete', volume['id'])
    d.run('image', 'delete', 'novaext-demo-snapshot')
    d.end_step()


def main():
    start = time.monotonic()
    try:
        cloud = access.Cloud()
    except access.NotUp as e:
        print(f'demo: {e}', file=sys.stderr)
        return 1
    notifications = access.Notifications(cloud.transport_url).start()
    try:
        demo(cloud, notifications)
    except (Failed, AssertionError, TimeoutError) as e:
        print(f'    FAILED: {e}', flush=True)
        return 1
    finally:
        notifications.stop()
    print(f'demo finished in {time.monotonic() - start:.0f} s; the cloud '
          f'is still up: source {cloud.root}/etc/openrc, then openstack '
          'server list; scripts/cloud down stops it')
    return 0


if __name__ == '__main__':
    sys.exit(main())
