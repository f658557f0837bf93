"""The novaext.libvirt.volume_drivers entry point group.

A test-only distribution (a ``*.dist-info`` directory with an
``entry_points.txt``) is put on ``sys.path`` so the lookup goes through
importlib.metadata and stevedore exactly as an installed package would.
"""

import sys
import textwrap

import fixtures
from nova import exception
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.virt import driver as virt_driver
from nova.virt import fake
from nova.virt.libvirt.volume import iscsi
from nova.virt.libvirt.volume import volume as libvirt_volume

from novaext.volume import clouddisk
from novaext.volume import registry


class PluginVolumeDriver(libvirt_volume.LibvirtBaseVolumeDriver):
    """Registered under 'novaext-test' by the test-only distribution."""

    def __init__(self, host):
        super().__init__(host, is_block_dev=False)


class ReplacingISCSIDriver(iscsi.LibvirtISCSIVolumeDriver):
    """Registered under 'iscsi' to show entry points win over Nova."""


def _install_test_distribution(tmp_dir, entry_points):
    dist_info = tmp_dir / 'novaext_testplugin-1.0.dist-info'
    dist_info.mkdir()
    (dist_info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: novaext-testplugin\nVersion: 1.0\n')
    (dist_info / 'entry_points.txt').write_text(textwrap.dedent(entry_points))
    return str(tmp_dir)


class VolumeDriverRegistryTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.useFixture(nova_fixtures.OSBrickFixture())
        self.tmp = self.useFixture(fixtures.TempDir()).path
        # stevedore caches entry points per sys.path; keep its cache in the
        # test's own directory.
        self.useFixture(fixtures.EnvironmentVariable(
            'XDG_CACHE_HOME', self.tmp))
        # ...and in memory, where stevedore keeps them per group.
        self.useFixture(fixtures.MonkeyPatch(
            'stevedore.extension.ExtensionManager.ENTRY_POINT_CACHE', {}))

    def _with_entry_points(self, text):
        import pathlib
        path = _install_test_distribution(
            pathlib.Path(self.useFixture(fixtures.TempDir()).path), text)
        self.useFixture(fixtures.MonkeyPatch('sys.path', [path] + sys.path))

    def _driver(self):
        return virt_driver.load_compute_driver(
            fake.FakeVirtAPI(), 'novaext.ExtLibvirtDriver')

    def test_entry_point_type_is_found(self):
        self._with_entry_points(f"""
            [{registry.ENTRY_POINT_GROUP}]
            novaext-test = {__name__}:PluginVolumeDriver
            """)
        classes = registry.load_volume_driver_classes()
        self.assertIs(PluginVolumeDriver, classes['novaext-test'])
        # novaext's own type comes through the same group.
        self.assertIs(clouddisk.CloudDiskVolumeDriver, classes['clouddisk'])

        drv = self._driver()
        vol_driver = drv._get_volume_driver(
            {'driver_volume_type': 'novaext-test', 'data': {}})
        self.assertIsInstance(vol_driver, PluginVolumeDriver)
        self.assertIs(drv._host, vol_driver.host)
        # built once, then reused
        self.assertIs(vol_driver, drv._get_volume_driver(
            {'driver_volume_type': 'novaext-test', 'data': {}}))

    def test_entry_point_wins_over_nova_builtin_type(self):
        self._with_entry_points(f"""
            [{registry.ENTRY_POINT_GROUP}]
            iscsi = {__name__}:ReplacingISCSIDriver
            """)
        vol_driver = self._driver()._get_volume_driver(
            {'driver_volume_type': 'iscsi', 'data': {}})
        self.assertIs(type(vol_driver), ReplacingISCSIDriver)

    def test_without_entry_point_nova_table_is_used(self):
        vol_driver = self._driver()._get_volume_driver(
            {'driver_volume_type': 'iscsi', 'data': {}})
        self.assertIs(type(vol_driver), iscsi.LibvirtISCSIVolumeDriver)

    def test_unknown_type_still_raises_nova_error(self):
        self.assertRaises(
            exception.VolumeDriverNotFound,
            self._driver()._get_volume_driver,
            {'driver_volume_type': 'no-such-type', 'data': {}})

    def test_broken_entry_point_is_logged_and_skipped(self):
        self._with_entry_points(f"""
            [{registry.ENTRY_POINT_GROUP}]
            broken = no_such_module_novaext:Driver
            novaext-test = {__name__}:PluginVolumeDriver
            """)
        classes = registry.load_volume_driver_classes()
        self.assertIn('novaext-test', classes)
        self.assertNotIn('broken', classes)
        self.assertIn('broken', self.stdlog.logger.output)
