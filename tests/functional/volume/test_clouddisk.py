"""A cloud disk through Nova's API on novaext's driver, with Nova's fake
libvirt and CinderFixture.

Host-initiator mode goes the whole way (attach, then Cinder's
volume-extended external event growing the disk in the guest), with
os-brick's iSCSI connector standing in for the kernel initiator this
machine lacks. QEMU mode is checked up to the domain XML: Nova's extend
finds a network disk by its serial, which the fake libvirt drops (the
real tier covers QEMU mode's extend on a real guest).
"""

import time

import fixtures
import nova.conf
from lxml import etree
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import cinder as cinder_fixture
from oslo_serialization import jsonutils
from oslo_utils.fixture import uuidsentinel as uuids

from novaext import conf as novaext_conf
from novaext.volume import clouddisk
from tests.functional import base

GiB = 1024 ** 3
VOLUME = uuids.clouddisk_volume
HOST_IQN = 'iqn.1993-08.org.debian:01:compute1'
DEVICE = '/dev/disk/by-path/ip-192.0.2.10:3260-iscsi-iqn.2010-10.org.' \
         'openstack:vol-1-lun-1'


class CloudDiskTestCase(base.ExtServersTestBase):

    def setUp(self):
        super().setUp()
        novaext_conf.register_opts(nova.conf.CONF)
        # Cinder says the volume is a cloud disk with CHAP.
        self.stub_out(
            'nova.tests.fixtures.cinder.CinderFixture.VOLUME_CONNECTION_INFO',
            dict(cinder_fixture.CinderFixture.VOLUME_CONNECTION_INFO, **{
                VOLUME: {'driver_volume_type': 'clouddisk',
                         'data': {'target_portal': '192.0.2.10:3260',
                                  'target_iqn':
                                      'iqn.2010-10.org.openstack:vol-1',
                                  'target_lun': 1, 'auth_method': 'CHAP',
                                  'auth_username': 'cinder',
                                  'auth_password': 'S3cret-x'}}}))
        # The host's initiator: os-brick's connector, short of iscsiadm.
        connector = 'os_brick.initiator.connectors.iscsi.ISCSIConnector'
        self.brick_calls = []
        self.stub_out(f'{connector}.connect_volume',
                      lambda conn, data: self.brick_calls.append(
                          ('connect', data['auth_username'])) or
                      {'path': DEVICE, 'type': 'block'})
        self.stub_out(f'{connector}.disconnect_volume',
                      lambda conn, data, info, force=False, **kw:
                      self.brick_calls.append(('disconnect', None)))
        # The LUN Cinder grew to 1 GiB (the fixture's volume size), seen
        # by os-brick's rescan, while the guest still has 512 MiB.
        self.stub_out(f'{connector}.extend_volume',
                      lambda conn, data: GiB)
        # What os-brick reads from /etc/iscsi/initiatorname.iscsi (the
        # fake libvirt drops <initiator> from the XML it gives back: the
        # unit and real tiers check it).
        self.stub_out(f'{connector}.get_initiator',
                      lambda conn: HOST_IQN)
        self.useFixture(fixtures.MonkeyPatch(   # fake Domain lacks it
            'nova.tests.fixtures.libvirt.Domain.blockInfo',
            lambda dom, disk, flags=0: (GiB // 2, 0, 0)))
        self.resized = []
        self.stub_out('nova.tests.fixtures.libvirt.Domain.blockResize',
                      lambda dom, disk, size, flags: self.resized.append(
                          (disk, size)))
        self.ctxt = nova_context.get_admin_context()

    def _attached(self, mode):
        self.flags(clouddisk_attach_mode=mode, group='novaext')
        hostname = self.start_compute('compute1')
        server = self._create_server(networks='none')
        self._attach_volume(server, VOLUME)
        driver = self.computes[hostname].driver
        self.assertIsInstance(
            driver._get_volume_driver({'driver_volume_type': 'clouddisk'}),
            clouddisk.CloudDiskVolumeDriver)
        bdm = objects.BlockDeviceMapping.get_by_volume_and_instance(
            self.ctxt, VOLUME, server['id'])
        xml = driver._host.get_guest(objects.Instance.get_by_uuid(
            self.ctxt, server['id'])).get_xml_desc()
        return server, bdm, etree.fromstring(xml)

    def test_host_mode_attach_then_volume_extended_event(self):
        server, bdm, domain = self._attached('host')

        self.assertEqual([('connect', 'cinder')], self.brick_calls)
        connection_info = jsonutils.loads(bdm.connection_info)
        self.assertEqual(f'/dev/disk/by-id/virtio-{VOLUME[:20]}',
                         connection_info['data']['guest_device'])
        source = domain.find("./devices/disk[@type='block']/source")
        self.assertEqual(DEVICE, source.get('dev'))

        self.admin_api.create_server_external_events([{
            'name': 'volume-extended', 'server_uuid': server['id'],
            'tag': VOLUME}])
        for _ in range(100):  # handled asynchronously by the compute
            if self.resized:
                break
            time.sleep(0.1)
        self.assertEqual([(DEVICE, GiB)], self.resized)  # bytes flag

    def test_qemu_mode_attach_is_a_network_disk_with_a_chap_secret(self):
        _server, bdm, domain = self._attached('qemu')

        self.assertEqual([], self.brick_calls)  # no host session
        disk = domain.find("./devices/disk[@type='network']")
        source = disk.find('source')
        self.assertEqual(('iscsi', 'iqn.2010-10.org.openstack:vol-1/1'),
                         (source.get('protocol'), source.get('name')))
        self.assertEqual('cinder', disk.find('auth').get('username'))
        self.assertNotIn(b'S3cret', etree.tostring(domain))
        self.assertIn('guest_device',
                      jsonutils.loads(bdm.connection_info)['data'])
