"""A server's life through Nova's REST API on novaext's driver."""

from novaext.virt import driver as ext_driver
from tests.functional import base


class ServerLifecycleTestCase(base.ExtServersTestBase):

    def test_create_active_then_delete(self):
        hostname = self.start_compute('compute1')
        compute = self.computes[hostname]
        self.assertIs(type(compute.driver), ext_driver.ExtLibvirtDriver)

        server = self._create_server(networks='none')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(hostname, server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([server['OS-EXT-SRV-ATTR:instance_name']],
                         compute.driver.list_instances())

        self._delete_server(server)
        self.assertEqual([], compute.driver.list_instances())

