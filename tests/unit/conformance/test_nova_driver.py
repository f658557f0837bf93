"""nova/tests/unit/virt/libvirt/test_driver.py against ExtLibvirtDriver."""

from nova.tests.unit.virt.libvirt import test_driver

from tests import conformance

globals().update(conformance.nova_test_cases(test_driver))
