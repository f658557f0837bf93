"""Cloud disks on the real libvirtd: a tgt LUN attached to a running QEMU
guest through QEMU's own initiator, grown online, detached cleanly."""

import libvirt
import pytest
from lxml import etree
from nova import exception

from novaext.volume import clouddisk
from realhost.tgt import Lun

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


def test_extend_while_the_server_is_stopped_shows_at_next_start(
        real_host, guest, tmp_path):
    """As in Nova: the extend of a stopped server's volume succeeds
    quietly, and the guest has the new size when it starts again."""
    lun = Lun(tmp_path, 954)
    try:
        info = lun.connection_info()
        _attach(real_host, guest, info)
        real_host.driver.power_off(guest)
        lun.grow(96)

        new_size = real_host.driver.extend_volume(
            real_host.context, info, guest, 96 * MiB)

        assert new_size is None  # ComputeDriver.extend_volume returns None
        dom = real_host.domain(guest)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        # Started from its kept definition (Nova's power_on would rebuild
        # it from the block device mapping, the same disk): QEMU reads the
        # LUN's size when it opens it.
        dom.create()
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert dom.blockInfo('sdb')[0] == 96 * MiB
        real_host.driver.detach_volume(real_host.context, info, guest,
                                       '/dev/sdb')
    finally:
        lun.remove()



@pytest.mark.parametrize('acl_name, accepted', [
    ('iqn.2026-12.org.novaext:real-host', True),
    ('iqn.2026-12.org.novaext:another-host', False)],
    ids=['host-iqn-allowed', 'other-iqn-only'])
def test_qemu_logs_in_with_the_host_initiator_name(
        real_host, guest, tmp_path, acl_name, accepted):
    """A target whose ACL names initiators: QEMU logs in with the host's
    name (what Nova's get_volume_connector gave Cinder), not its own
    default, and a target that does not list the host refuses it."""
    host_iqn = 'iqn.2026-12.org.novaext:real-host'
    lun = Lun(tmp_path, 956 + accepted, initiator_name=acl_name)
    try:
        info = lun.connection_info()
        volume_driver = real_host.driver._get_volume_driver(info)
        # os-brick reads /etc/iscsi/initiatorname.iscsi, which this
        # machine (no open-iscsi) lacks; the name is given here instead.
        volume_driver.connector.get_initiator = lambda: host_iqn
        if not accepted:
            with pytest.raises(libvirt.libvirtError):
                _attach(real_host, guest, info)
            assert _disk_xml(real_host, guest, lun.volume_id) is None
            return
        _attach(real_host, guest, info)
        assert f'Initiator: {host_iqn}' in lun.sessions()
        disk = _disk_xml(real_host, guest, lun.volume_id)
        assert disk.find('source/initiator/iqn').get('name') == host_iqn
        real_host.driver.detach_volume(real_host.context, info, guest,
                                       '/dev/sdb')
        assert lun.sessions() == ''
    finally:
        lun.remove()


def _connect_only(real_host, guest, info):
    """What nova-compute killed in the middle of attach_volume leaves:
    the volume driver's connect done, the device never attached."""
    vol_driver = real_host.driver._get_volume_driver(info)
    vol_driver.connect_volume(info, guest)


def test_start_removes_the_secret_of_an_attach_that_did_not_finish(
        real_host, guest, tmp_path):
    attached = Lun(tmp_path, 953, chap=('novaext-kept', 'Chap-Kept-12'))
    interrupted = Lun(tmp_path, 954, chap=('novaext-left', 'Chap-Left-12'))
    try:
        _attach(real_host, guest, attached.connection_info())
        _connect_only(real_host, guest, interrupted.connection_info())
        assert len(_novaext_secrets()) == 2

        real_host.driver.init_host(real_host.hostname)

        assert _novaext_secrets() == [
            clouddisk.secret_usage(attached.volume_id)]
        real_host.driver.detach_volume(real_host.context,
                                       attached.connection_info(), guest,
                                       '/dev/sdb')
        assert _novaext_secrets() == []
    finally:
        attached.remove()
        interrupted.remove()


@pytest.mark.parametrize('device_attached', [False, True],
                         ids=['before-device-attach', 'after-device-attach'])
def test_detach_of_an_attach_nova_did_not_record(
        real_host, guest, tmp_path, device_attached):
    """Nova saves connection_info on the mapping after attach_volume
    returns; killed before that, the mapping has none. The detach takes
    the device out of the guest where it got there, with its secret, and
    does not stop at VolumeDriverNotFound as Nova's own does. A secret
    no device named is the start's to remove (it came first: the kill
    was a restart)."""
    lun = Lun(tmp_path, 955, chap=('novaext-user', 'Chap-Secret-12'))
    try:
        if device_attached:
            _attach(real_host, guest, lun.connection_info())
        else:
            _connect_only(real_host, guest, lun.connection_info())

        real_host.driver.detach_volume(real_host.context, None, guest,
                                       '/dev/sdb')

        assert _disk_xml(real_host, guest, lun.volume_id) is None
        assert lun.sessions() == ''
        assert real_host.domain(guest).state()[0] == \
            libvirt.VIR_DOMAIN_RUNNING
        unnamed = clouddisk.secret_usage(lun.volume_id)
        assert _novaext_secrets() == ([] if device_attached else [unnamed])
        real_host.driver.init_host(real_host.hostname)
        assert _novaext_secrets() == []
    finally:
        lun.remove()
