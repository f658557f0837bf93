"""Nova's libvirt functional base with compute_driver = novaext's driver."""

import os
import sys

from nova.tests.functional.libvirt import base


class ExtServersTestBase(base.ServersTestBase):
    """ServersTestBase whose computes run novaext.ExtLibvirtDriver."""

    microversion = 'latest'

    def setUp(self):
        # Nova looks for api-paste.ini beside its package; the wheel
        # installs it under <prefix>/etc/nova.
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()

    def _setup_compute_service(self):
        self.flags(compute_driver='novaext.ExtLibvirtDriver')
