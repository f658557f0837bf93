"""Nova's own libvirt functional tests, with ExtLibvirtDriver behind
``compute_driver = libvirt.LibvirtDriver`` (see tests/conformance.py)."""

import os
import sys

from nova.tests.fixtures import conf as nova_conf_fixture

from tests import conformance

conformance.swap()

_nova_conf_setup = nova_conf_fixture.ConfFixture.setUp


def _conf_setup_with_installed_paste_config(self):
    """Nova looks for api-paste.ini beside its package; the wheel
    installs it under <prefix>/etc/nova."""
    _nova_conf_setup(self)
    self.conf.set_default(
        'api_paste_config',
        os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
        group='wsgi')


nova_conf_fixture.ConfFixture.setUp = _conf_setup_with_installed_paste_config
