"""Cloud disks on the real libvirtd: a tgt LUN attached to a running QEMU
guest through QEMU's own initiator, grown online, detached cleanly."""

import libvirt
import pytest
from lxml import etree
from nova import exception

from novaext.volume import clouddisk
from tests.real.tgt import Lun

MiB = 1024 ** 2


@pytest.fixture
def guest(real_host, tiny_image):
    """A running guest with a virtio-scsi controller. The disk goes on
    SCSI: this guest has no OS, and unplugging a virtio-blk (PCI) disk
    needs the guest's consent, a SCSI disk does not."""
    real_host.conf_group('novaext', clouddisk_attach_mode='qemu')
    real_host.conf_group('libvirt', device_detach_attempts=2,
                         device_detach_timeout=5)
    image_id = real_host.upload_image(
        str(tiny_image), 'qcow2',
        properties={'hw_scsi_model': 'virtio-scsi'})
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    yield instance
    real_host.destroy(instance)


def _disk_xml(real_host, instance, serial):
    root = etree.fromstring(real_host.domain(instance).XMLDesc(0))
    for disk in root.findall('./devices/disk'):
        if disk.findtext('serial') == serial:
            return disk
    return None


def _novaext_secrets():
    conn = libvirt.open('qemu:///system')
    try:
        return [s.usageID() for s in conn.listAllSecrets()
                if s.usageID().startswith(clouddisk.SECRET_USAGE_PREFIX)]
    finally:
        conn.close()


def _attach(real_host, instance, info):
    real_host.driver.attach_volume(real_host.context, info, instance,
                                   '/dev/sdb', disk_bus='scsi',
                                   device_type='disk')


@pytest.mark.parametrize('chap', [None, ('novaext-user', 'Chap-Secret-12')],
                         ids=['no-auth', 'chap'])
def test_attach_extend_online_detach_in_qemu_mode(
        real_host, guest, tmp_path, chap):
    lun = Lun(tmp_path, 950 + (chap is not None), chap=chap)
    try:
        info = lun.connection_info()
        _attach(real_host, guest, info)

        disk = _disk_xml(real_host, guest, lun.volume_id)
        assert disk is not None and disk.get('type') == 'network'
        source = disk.find('source')
        assert source.get('protocol') == 'iscsi'
        assert source.get('name') == f'{lun.iqn}/1'
        assert info['data']['guest_device'] == \
            f'/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_{lun.volume_id}'
        if chap:
            assert disk.find('auth').get('username') == chap[0]
            assert chap[1] not in etree.tostring(disk).decode()
        dom = real_host.domain(guest)
        assert dom.blockInfo('sdb')[0] == 64 * MiB
        assert lun.sessions(), 'QEMU has no iSCSI session with tgt'

        lun.grow(96)
        real_host.driver.extend_volume(real_host.context, info, guest,
                                       96 * MiB)
        assert dom.blockInfo('sdb')[0] == 96 * MiB
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING

        with pytest.raises(exception.VolumeExtendFailed,
                           match='has not grown'):
            real_host.driver.extend_volume(real_host.context, info, guest,
                                           96 * MiB)

        real_host.driver.detach_volume(real_host.context, info, guest,
                                       '/dev/sdb')
        assert _disk_xml(real_host, guest, lun.volume_id) is None
        assert _novaext_secrets() == []
        assert lun.sessions() == ''
    finally:
        lun.remove()


def test_wrong_chap_secret_fails_attach_and_leaves_nothing(
        real_host, guest, tmp_path):
    lun = Lun(tmp_path, 952, chap=('novaext-user', 'Chap-Secret-12'))
    try:
        info = lun.connection_info(password='Not-The-Secret')
        with pytest.raises(libvirt.libvirtError) as err:
            _attach(real_host, guest, info)
        assert 'CHAP' in str(err.value) or 'auth' in str(err.value).lower()
        assert _disk_xml(real_host, guest, lun.volume_id) is None
        assert _novaext_secrets() == []
        assert lun.sessions() == ''
        assert real_host.domain(guest).state()[0] == \
            libvirt.VIR_DOMAIN_RUNNING
    finally:
        lun.remove()


def test_extend_of_a_lun_that_did_not_grow_is_an_error(
        real_host, guest, tmp_path):
    lun = Lun(tmp_path, 953)
    try:
        info = lun.connection_info()
        _attach(real_host, guest, info)
        with pytest.raises(exception.VolumeExtendFailed,
                           match='less than the 100663296 requested'):
            real_host.driver.extend_volume(real_host.context, info, guest,
                                           96 * MiB)
        assert real_host.domain(guest).blockInfo('sdb')[0] == 64 * MiB
        real_host.driver.detach_volume(real_host.context, info, guest,
                                       '/dev/sdb')
    finally:
        lun.remove()
