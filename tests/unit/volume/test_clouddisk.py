"""CloudDiskVolumeDriver in host-initiator mode, os-brick's connector
replaced by a recorder (this machine has no kernel iSCSI), and its XML in
QEMU mode."""

import copy

import pytest
from lxml import etree
from nova import exception
from oslo_config import cfg

from novaext import conf as novaext_conf
from novaext.volume import clouddisk
from novaext.volume import connection_data
from tests.unit.volume.test_connection_data import GOOD

CONF = cfg.CONF
novaext_conf.register_opts(CONF)


HOST_IQN = 'iqn.2026-12.org.novaext:compute-a'


class RecordingConnector:
    def __init__(self, new_size=None, initiator=HOST_IQN):
        self.calls = []
        self.new_size = new_size
        self.initiator = initiator
        self.initiator_reads = 0

    def get_initiator(self):
        """Reads a file: no session, so not in ``calls``."""
        self.initiator_reads += 1
        return self.initiator

    def connect_volume(self, data):
        self.calls.append(('connect', dict(data)))
        return {'path': '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-x-lun-1'}

    def disconnect_volume(self, data, device_info, force=False):
        self.calls.append(('disconnect', dict(data)))

    def extend_volume(self, data):
        self.calls.append(('extend', dict(data)))
        return self.new_size


class FakeSecret:
    def UUIDString(self):
        return '5b1f0a7e-1111-4222-8333-944455556666'


class FakeHost:
    def __init__(self):
        self.secrets = {}

    def get_guest(self, instance):
        raise exception.InstanceNotFound(instance_id='x')

    def create_secret(self, usage_type, usage_id, password=None, **kw):
        self.secrets[(usage_type, usage_id)] = password

    def delete_secret(self, usage_type, usage_id):
        self.secrets.pop((usage_type, usage_id), None)

    def find_secret(self, usage_type, usage_id):
        return FakeSecret() if (usage_type, usage_id) in self.secrets \
            else None


@pytest.fixture
def driver(monkeypatch):
    def make(mode, new_size=None):
        CONF.set_override('clouddisk_attach_mode', mode, group='novaext')
        drv = clouddisk.CloudDiskVolumeDriver(FakeHost())
        drv.connector = RecordingConnector(new_size)
        return drv
    yield make
    CONF.clear_override('clouddisk_attach_mode', group='novaext')


DISK_INFO = {'bus': 'virtio', 'dev': 'vdb', 'type': 'disk'}


def test_host_mode_logs_in_through_os_brick_and_gives_the_block_device(
        driver):
    drv = driver('host')
    info = copy.deepcopy(GOOD)
    drv.connect_volume(info, None)
    conf = drv.get_config(info, DISK_INFO)
    assert drv.connector.calls[0][0] == 'connect'
    assert drv.connector.calls[0][1]['auth_password'] == 'S3cret!x'
    assert conf.source_type == 'block'
    assert conf.source_path.startswith('/dev/disk/by-path/')
    assert info['data']['guest_device'] == \
        '/dev/disk/by-id/virtio-0c6b7b2e-6a8e-4c1e-9'
    drv.disconnect_volume(info, None)
    assert drv.connector.calls[-1][0] == 'disconnect'


def test_bad_connection_info_touches_nothing(driver):
    drv = driver('host')
    info = copy.deepcopy(GOOD)
    info['data']['target_iqn'] = 'iqn.2010-10.org.x:a;reboot'
    for call in (drv.connect_volume, drv.disconnect_volume):
        with pytest.raises(connection_data.InvalidConnectionInfo):
            call(info, None)
    assert drv.connector.calls == []


@pytest.mark.parametrize('new_size, message', [
    (None, 'reported no size'),
    (1024 ** 3, 'less than the 2147483648 requested'),
])
def test_host_mode_extend_refuses_a_size_that_did_not_grow(
        driver, new_size, message):
    drv = driver('host', new_size=new_size)
    with pytest.raises(exception.VolumeExtendFailed, match=message):
        drv.extend_volume(copy.deepcopy(GOOD), None, 2 * 1024 ** 3)


def test_host_mode_extend_returns_the_rescanned_size(driver):
    drv = driver('host', new_size=2 * 1024 ** 3)
    assert drv.extend_volume(copy.deepcopy(GOOD), None, 2 * 1024 ** 3) == \
        2 * 1024 ** 3
    assert drv.connector.calls[0][0] == 'extend'


class FakeGuest:
    """A guest whose definition reports ``size`` for the disk (libvirt
    reads the grown host device even when the guest is stopped)."""

    def __init__(self, active, size):
        self.active = active
        self._domain = self
        self.size = size

    def is_active(self):
        return self.active

    def get_all_disks(self):
        serial = GOOD['serial']
        return [type('Disk', (), {'serial': serial, 'target_dev': 'vdb'})]

    def blockInfo(self, dev):
        return [self.size, self.size, self.size]


@pytest.mark.parametrize('active', [True, False], ids=['running', 'stopped'])
def test_host_mode_extend_checks_the_guest_size_only_while_it_runs(
        driver, active):
    """libvirt already reports the grown device for a stopped guest: that
    is no sign that the LUN did not grow (Nova extends quietly then)."""
    new = 2 * 1024 ** 3
    drv = driver('host', new_size=new)
    drv.host.get_guest = lambda instance: FakeGuest(active, new)
    if active:
        with pytest.raises(exception.VolumeExtendFailed,
                           match='has not grown'):
            drv.extend_volume(copy.deepcopy(GOOD), None, new)
    else:
        assert drv.extend_volume(copy.deepcopy(GOOD), None, new) == new


def test_qemu_mode_network_disk_with_chap_secret_and_no_session(driver):
    drv = driver('qemu')
    info = copy.deepcopy(GOOD)
    drv.connect_volume(info, None)
    conf = drv.get_config(info, dict(DISK_INFO, bus='scsi'))
    xml = conf.to_xml()
    assert drv.connector.calls == []
    assert conf.source_type == 'network' and conf.source_protocol == 'iscsi'
    assert conf.source_name == 'iqn.2010-10.org.openstack:volume-0c6b/1'
    secret_uuid = drv._secret_uuid(connection_data.parse(info))
    assert f'<secret type="iscsi" uuid="{secret_uuid}"/>' in xml
    assert 'S3cret' not in xml
    assert info['data']['guest_device'] == (
        '/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_'
        '0c6b7b2e-6a8e-4c1e-9d9a-7f1d2c3b4a5e')
    drv.disconnect_volume(info, None)
    assert drv.host.secrets == {}


@pytest.mark.parametrize('initiator', [HOST_IQN, None],
                         ids=['host-iqn', 'no-host-iqn'])
def test_qemu_mode_logs_in_with_the_host_initiator_name(driver, initiator):
    """The name os-brick reports (what Cinder got from Nova's connector),
    not QEMU's default; read once per driver."""
    drv = driver('qemu')
    drv.connector.initiator = initiator
    xml = [etree.tostring(drv.get_config(copy.deepcopy(GOOD), DISK_INFO)
                          .format_dom()).decode() for _ in range(2)]
    expected = f'<initiator><iqn name="{initiator}"/></initiator></source>'
    assert (expected in xml[0]) is (initiator is not None)
    assert xml[0] == xml[1]
    assert drv.connector.initiator_reads == (1 if initiator else 2)
