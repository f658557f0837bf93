"""The libvirt volume driver of ``driver_volume_type`` 'clouddisk'.

A cloud disk is an iSCSI LUN (Cinder's iSCSI connection data). Two ways
to attach it, by ``[novaext]clouddisk_attach_mode``:

- ``host``: the host's initiator logs in through os-brick (Nova's
  LibvirtISCSIVolumeDriver, which this class extends: CHAP, multipath
  when ``[libvirt]volume_use_multipath``, logout only when no other LUN of
  the target is in use) and the guest gets the host's block device.
- ``qemu``: QEMU's own initiator opens the LUN as a network disk; there is
  no host kernel session. CHAP goes through a libvirt secret (usage type
  iscsi, private) that connect_volume creates and disconnect_volume
  removes; the password is never in the domain XML or a command line.
  QEMU logs in with the host's initiator name (os-brick reads it from
  /etc/iscsi/initiatorname.iscsi, the name Nova's get_volume_connector
  gave Cinder), so targets with initiator ACLs accept it; QEMU's own
  default name is used only when the host has none.

Every field of the connection data is validated (connection_data) before
anything is touched. ``connection_info['data']['guest_device']`` records
the device the guest sees, ``/dev/disk/by-id/virtio-<first 20 characters
of the serial>`` (virtio-blk) or ``.../scsi-0QEMU_QEMU_HARDDISK_<serial>``
(virtio-scsi), because
the name Nova returns at attach time (``/dev/vdb``) is only libvirt's
target name; Nova's compute manager saves connection_info in the block
device mapping, where operators and tools find it.

extend_volume learns the LUN's new size from the target (os-brick's
rescan in host mode; a fresh READ CAPACITY through qemu-img in QEMU
mode), checks that it grew, and returns it in bytes; Nova's
LibvirtDriver.extend_volume then resizes the disk in the running guest.
A target that was not grown is an error, never a silent success. A
stopped guest's disk is checked against the requested size only, and the
guest sees the new size at its next start, as in Nova.

tgt note (the real tests' target): tgtd reads a file-backed LUN's size
only when the logical unit is created; after growing the file, the LU is
deleted and created again on the same LUN number (``tgtadm --op delete``
then ``--op new``), which open sessions survive.
"""

import os
import tempfile
import uuid

from lxml import etree
from nova import exception
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt.volume import iscsi
from nova.virt.libvirt.volume import volume as libvirt_volume
from oslo_config import cfg
from oslo_log import log as logging

from novaext import nova_internals
from novaext import qemu_img
from novaext.volume import connection_data

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

GUEST_DEVICE_KEY = 'guest_device'
SECRET_USAGE_PREFIX = 'novaext-clouddisk-'
_SECRET_NAMESPACE = uuid.UUID('5e0c1d2a-7b3f-4c8e-9a61-2f4d8b7c6e50')


def secret_usage(serial):
    """The usage ID of the CHAP secret of the cloud disk ``serial``."""
    return f'{SECRET_USAGE_PREFIX}{serial}'


def secret_uuid(serial):
    """The UUID of the CHAP secret of the cloud disk ``serial``, derived
    from it: the domain XML can name it without a lookup, and a reconnect
    redefines the same secret instead of adding one."""
    return str(uuid.uuid5(_SECRET_NAMESPACE, serial))


# How udev in the guest names a disk with a given serial, by disk bus
# (virtio-blk keeps 20 characters of the serial).
_BY_ID = {
    'virtio': lambda serial: f'virtio-{serial[:20]}',
    'scsi': lambda serial: f'scsi-0QEMU_QEMU_HARDDISK_{serial}',
}


def guest_device(serial, bus='virtio'):
    """The /dev/disk/by-id path of disk ``serial`` on ``bus`` inside the
    guest, or None for a bus without a stable serial name."""
    name = _BY_ID.get(bus)
    return f'/dev/disk/by-id/{name(serial)}' if name else None


class GuestDiskWithInitiator(vconfig.LibvirtConfigGuestDisk):
    """Nova's disk config, plus the iSCSI initiator name in its network
    ``<source>`` (``<initiator><iqn name=.../></initiator>``), which
    Nova's config class has no field for."""

    initiator_iqn = None

    @classmethod
    def from_disk(cls, disk, initiator_iqn):
        """``disk`` (a LibvirtConfigGuestDisk), made to name the initiator."""
        disk.__class__ = cls
        disk.initiator_iqn = initiator_iqn
        return disk

    def format_dom(self):
        dev = super().format_dom()
        source = dev.find('source')
        if self.initiator_iqn and source is not None:
            initiator = etree.SubElement(source, 'initiator')
            etree.SubElement(initiator, 'iqn', name=self.initiator_iqn)
        return dev


class CloudDiskVolumeDriver(iscsi.LibvirtISCSIVolumeDriver):
    """Cloud disks over iSCSI, through the host or through QEMU."""

    _initiator_iqn = None

    def _qemu_mode(self):
        return CONF.novaext.clouddisk_attach_mode == 'qemu'

    # -- connect / disconnect -------------------------------------------
    def connect_volume(self, connection_info, instance):
        target = connection_data.parse(connection_info)
        if self._qemu_mode():
            if target.chap is not None:
                self.host.create_secret(
                    'iscsi', self._secret_usage(target),
                    password=target.chap.secret,
                    uuid=self._secret_uuid(target), private=True)
        else:
            super().connect_volume(connection_info, instance)
        LOG.info('Cloud disk %(serial)s (%(iqn)s lun %(lun)d at %(portal)s) '
                 'connected through %(mode)s',
                 {'serial': target.serial, 'iqn': target.iqn,
                  'lun': target.lun, 'portal': target.portal,
                  'mode': CONF.novaext.clouddisk_attach_mode},
                 instance=instance)

    def disconnect_volume(self, connection_info, instance, force=False):
        target = connection_data.parse(connection_info)
        if self._qemu_mode():
            if target.chap is not None:
                self.host.delete_secret('iscsi', self._secret_usage(target))
            libvirt_volume.LibvirtBaseVolumeDriver.disconnect_volume(
                self, connection_info, instance, force=force)
        else:
            super().disconnect_volume(connection_info, instance, force=force)

    @staticmethod
    def _secret_usage(target):
        return secret_usage(target.serial)

    @staticmethod
    def _secret_uuid(target):
        return secret_uuid(target.serial)

    # -- domain XML -------------------------------------------------------
    def get_config(self, connection_info, disk_info):
        """The disk's libvirt config; also records in connection_info the
        device the guest will see (its bus is known only here)."""
        target = connection_data.parse(connection_info)
        device = guest_device(target.serial, disk_info.get('bus'))
        if device:
            connection_info['data'][GUEST_DEVICE_KEY] = device
        if not self._qemu_mode():
            return super().get_config(connection_info, disk_info)
        conf = libvirt_volume.LibvirtBaseVolumeDriver.get_config(
            self, connection_info, disk_info)
        conf.source_type = 'network'
        conf.source_protocol = 'iscsi'
        conf.source_name = f'{target.iqn}/{target.lun}'
        conf.source_hosts = [target.host]
        conf.source_ports = [str(target.port)]
        if target.chap is not None:
            conf.auth_username = target.chap.username
            conf.auth_secret_type = 'iscsi'
            conf.auth_secret_uuid = self._secret_uuid(target)
        initiator = self._host_initiator()
        if initiator:
            conf = GuestDiskWithInitiator.from_disk(conf, initiator)
        return conf

    def _host_initiator(self):
        """The host's iSCSI initiator name (os-brick), read once; None
        when the host has none."""
        if self._initiator_iqn is None:
            iqn = self.connector.get_initiator()
            if not iqn:
                LOG.warning('This host has no iSCSI initiator name '
                            '(/etc/iscsi/initiatorname.iscsi): QEMU logs in '
                            'to cloud disks with its default name, which '
                            'targets with initiator ACLs refuse')
                return None
            self._initiator_iqn = iqn
        return self._initiator_iqn

    # -- online extend ------------------------------------------------------
    def extend_volume(self, connection_info, instance, requested_size):
        """Return the LUN's new size in bytes, as the target reports it.

        :raises: VolumeExtendFailed when the target reports no size, or one
            smaller than ``requested_size`` or than what the guest has now
        """
        target = connection_data.parse(connection_info)
        if self._qemu_mode():
            new_size = self._target_capacity(target)
        else:
            new_size = super().extend_volume(connection_info, instance,
                                             requested_size)
        current = self._guest_capacity(instance, target.serial)

        def fail(reason):
            raise exception.VolumeExtendFailed(volume_id=target.serial,
                                               reason=reason)
        if not new_size:
            fail(f'the target {target.iqn} lun {target.lun} reported no '
                 f'size')
        if requested_size and new_size < requested_size:
            fail(f'the target reports {new_size} bytes, less than the '
                 f'{requested_size} requested: the LUN has not grown yet')
        if current is not None and new_size <= current:
            fail(f'the target still reports {new_size} bytes, which the '
                 f'guest already has: the LUN has not grown')
        LOG.info('Cloud disk %(serial)s grew to %(size)d bytes (was '
                 '%(old)s)', {'serial': target.serial, 'size': new_size,
                              'old': current}, instance=instance)
        return new_size

    def _guest_capacity(self, instance, serial):
        """Bytes the running (or paused) guest has for the disk ``serial``;
        None when the guest is not running: a stopped guest's definition
        knows no size of its own (libvirt reads the grown device, or cannot
        read a network disk at all), and it sees the new size when it
        starts, as in Nova."""
        try:
            guest = self.host.get_guest(instance)
        except exception.InstanceNotFound:
            return None
        if not guest.is_active():
            return None
        for disk in guest.get_all_disks():
            if disk.serial == serial:
                return nova_internals.guest_block_capacity(
                    guest, disk.target_dev)
        return None

    @staticmethod
    def _target_capacity(target):
        """READ CAPACITY of the LUN through QEMU's initiator (qemu-img).

        The CHAP password reaches qemu-img in a 0600 file named by a
        --object secret, not on its command line.
        """
        opts = ['driver=iscsi', 'transport=tcp',
                f'portal={target.portal}', f'target={target.iqn}',
                f'lun={target.lun}']
        with tempfile.TemporaryDirectory() as tmp:
            objects = []
            if target.chap is not None:
                secret_file = os.path.join(tmp, 'chap')
                with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT,
                                  0o600), 'w') as f:
                    f.write(target.chap.secret)
                objects = [f'secret,id=chap0,file={secret_file}']
                opts += [f'user={target.chap.username}',
                         'password-secret=chap0']
            return qemu_img.virtual_size(opts, objects)
