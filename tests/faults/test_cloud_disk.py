"""Faults around a cloud disk: novaext's iSCSI volume driver in QEMU mode
(QEMU's own initiator; CHAP through a libvirt secret that connect_volume
defines and disconnect_volume removes), on Cinder's file-backed target.

- nova-compute dead while the volume is grown: Cinder grows the LUN and
  tells Nova (volume-extended); the event waits in the host's queue, and
  the started nova-compute grows the disk in the running QEMU.
- the host crashes with the volume attached: the guest's QEMU dies with
  nova-compute; a hard reboot (Nova connects every volume again) brings
  the guest back with the volume's data, and the volume still grows and
  detaches.
- nova-compute killed inside the attach, between connect_volume defining
  the CHAP secret and Nova attaching the device: its start removes the
  secret no guest names; the volume, stuck attaching with a mapping that
  has no connection_info, is set in-use (reset-state) and detached, then
  attaches again with its data.

Each cell writes through the guest's QEMU, reads back after recovery,
checks the bytes in the volume's file, and after the detach finds no
secret, export or domain disk of the volume left.
"""

import pytest

from novaext.volume import clouddisk
from realhost.cloud.processes import wait_for
from tests.cloud import checks
from tests.faults import cells
from tests.faults import leftovers

GiB = 1024 ** 3
MiB = 1024 * 1024


@pytest.fixture
def volume(cloud):
    if cloud.hosts['compute1'].stock_nova:
        pytest.skip('stock Nova: no volume driver for the cloud disk\'s '
                    'connection type (clouddisk)')
    volumes = cloud.api.block_storage
    made = volumes.create_volume(size=1, name='novaext-faults-cloud-disk')
    volumes.wait_for_status(made, 'available', failures=['error'],
                            interval=1, wait=60)
    yield made
    volumes.delete_volume(made, ignore_missing=True)
    volumes.wait_for_delete(made, interval=1, wait=60)


class AttachedDisk:
    """``volume`` attached to a running server on compute1, seen through
    the guest's QEMU."""

    def __init__(self, cloud, servers, flavors, scsi_image, volume,
                 attach=True):
        self.cloud = cloud
        self.volume = volume
        self.host = cloud.hosts['compute1']
        self.server = servers.boot(scsi_image.id,
                                   flavors[checks.SMALL_FLAVOR],
                                   self.host.name)
        self.device = f'ua-{volume.id}'
        if attach:
            self.attach()

    def attach(self):
        self.cloud.api.compute.create_volume_attachment(
            self.server, volume_id=self.volume.id)
        self.cloud.api.block_storage.wait_for_status(
            self.volume, 'in-use', failures=['error'], interval=1, wait=120)

    def secrets(self):
        """The volume's libvirt secrets on the host (usage IDs)."""
        return [s.usageID() for s in self.host.libvirt().listAllSecrets()
                if self.volume.id in s.usageID()]

    def target_dev(self):
        disk = checks.volume_disk(self.host.domain(self.server),
                                  self.volume.id)
        return disk.find('target').get('dev')

    def size_seen(self):
        return self.host.domain(self.server).blockInfo(self.target_dev())[0]

    def write(self, pattern, offset):
        self.host.guest_io(self.server, f'write -P {pattern} {offset} 1M',
                           device=self.device)
        self.host.guest_io(self.server, 'flush', device=self.device)

    def read(self, pattern, offset):
        """Through the guest's QEMU, and in the volume's file."""
        self.host.guest_io(self.server, f'read -P {pattern} {offset} 1M',
                           device=self.device)
        with open(self.cloud.volume_file(self.volume.id), 'rb') as f:
            f.seek(offset)
            assert f.read(MiB) == bytes([int(pattern, 16)]) * MiB

    def grow_to_2_gib(self):
        volumes = self.cloud.api.block_storage
        volumes.extend_volume(self.volume, 2)
        wait_for('the volume at 2 GiB, in use', lambda: (
            volumes.get_volume(self.volume.id).size == 2 and
            volumes.get_volume(self.volume.id).status == 'in-use'),
            timeout=120)

    def detach_leaving_nothing(self):
        volumes = self.cloud.api.block_storage
        self.cloud.api.compute.delete_volume_attachment(self.volume.id,
                                                        self.server)
        volumes.wait_for_status(self.volume, 'available',
                                failures=['error'], interval=1, wait=120)
        assert checks.volume_disk(self.host.domain(self.server),
                                  self.volume.id) is None
        iqn = f'iqn.2010-10.org.openstack:volume-{self.volume.id}'
        assert iqn not in checks.tgt_targets()
        assert self.secrets() == []
        leftovers.assert_nothing_left(self.cloud, self.server,
                                      self.host.name)


def test_volume_grown_while_nova_compute_is_down(
        cloud, flavors, scsi_image, servers, host_faults, volume):
    disk = AttachedDisk(cloud, servers, flavors, scsi_image, volume)
    disk.write('0x6c', 0)
    faults = host_faults['compute1']
    faults.kill_nova_compute()

    disk.grow_to_2_gib()
    assert disk.size_seen() == 1 * GiB
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    wait_for('QEMU seeing 2 GiB', lambda: disk.size_seen() == 2 * GiB,
             timeout=60)
    disk.read('0x6c', 0)
    disk.write('0x6d', GiB + GiB // 2)
    disk.read('0x6d', GiB + GiB // 2)
    disk.detach_leaving_nothing()


def test_host_crash_with_a_cloud_disk_attached(
        cloud, flavors, scsi_image, servers, host_faults, volume):
    disk = AttachedDisk(cloud, servers, flavors, scsi_image, volume)
    disk.write('0x6c', 0)
    cells.restart_after(host_faults['compute1'], 'host_crash', disk.server)

    disk.server = cells.hard_reboot(cloud, servers, disk.host, disk.server)
    disk.read('0x6c', 0)
    disk.grow_to_2_gib()
    wait_for('QEMU seeing 2 GiB', lambda: disk.size_seen() == 2 * GiB,
             timeout=60)
    disk.write('0x6d', GiB + GiB // 2)
    disk.read('0x6d', GiB + GiB // 2)
    disk.detach_leaving_nothing()


def test_nova_compute_killed_inside_the_attach(
        cloud, flavors, scsi_image, servers, host_faults, volume):
    with open(cloud.volume_file(volume.id), 'r+b') as f:
        f.write(b'\x6b' * MiB)
    disk = AttachedDisk(cloud, servers, flavors, scsi_image, volume,
                        attach=False)
    faults = host_faults['compute1']
    qemu = faults.qemu_pid(disk.server)
    secret = clouddisk.secret_uuid(volume.id)
    with faults.nova_compute_frozen_on_secret(secret) as frozen:
        cloud.api.compute.create_volume_attachment(disk.server,
                                                   volume_id=volume.id)
        assert frozen.wait(60), 'the attach never defined its secret'
        assert checks.volume_disk(disk.host.domain(disk.server),
                                  volume.id) is None, 'missed the window'
        faults.kill_nova_compute()
    assert disk.secrets() != []
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')

    assert disk.secrets() == [], 'the start left the unused secret'
    assert faults.qemu_pid(disk.server) == qemu
    volumes = cloud.api.block_storage
    assert volumes.get_volume(volume.id).status == 'attaching'
    volumes.reset_volume_status(volume, 'in-use', 'attached', None)
    cloud.api.compute.delete_volume_attachment(volume.id, disk.server)
    volumes.wait_for_status(volume, 'available', failures=['error'],
                            interval=1, wait=120)
    wait_for('the server without the volume', lambda: not list(
        cloud.api.compute.volume_attachments(disk.server)), timeout=60)

    disk.attach()
    disk.read('0x6b', 0)
    disk.write('0x6d', MiB)
    disk.read('0x6d', MiB)
    disk.detach_leaving_nothing()
