"""The conformance suite really runs Nova's tests against novaext."""

import importlib

from nova.tests.unit.virt.libvirt import test_driver
from nova.virt import driver as virt_driver
from nova.virt import fake
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import imagebackend
from nova.virt.libvirt import imagecache

from novaext.imagebackend import image_cache as ext_image_cache
from novaext.imagebackend import qcow2 as ext_qcow2
from novaext.virt import driver as ext_driver
from tests import conformance


def test_nova_names_build_novaext_classes():
    assert libvirt_driver.LibvirtDriver is ext_driver.ExtLibvirtDriver
    loaded = virt_driver.load_compute_driver(fake.FakeVirtAPI(),
                                             'libvirt.LibvirtDriver')
    assert type(loaded) is ext_driver.ExtLibvirtDriver
    assert imagebackend.Qcow2 is ext_qcow2.ExtQcow2
    assert imagebackend.Backend(True).backend('qcow2') is ext_qcow2.ExtQcow2
    assert (type(imagecache.ImageCacheManager()) is
            ext_image_cache.ExtImageCacheManager)


def test_nova_test_classes_are_collected_from_novas_module():
    cases = conformance.nova_test_cases(test_driver)
    assert 'LibvirtConnTestCase' in cases
    assert all(c.__module__ == test_driver.__name__ for c in cases.values())


def test_every_allowlist_entry_names_an_existing_nova_test():
    """A renamed or removed Nova test must leave the allow-list too."""
    entries = conformance.load_allowlist()
    assert entries
    for test_id, reason in entries.items():
        module_name, cls_name, method = test_id.rsplit('.', 2)
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
        assert hasattr(cls, method), test_id
        assert len(reason) > 20, test_id
