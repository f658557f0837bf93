"""Nova's functional test_evacuate.py, on ExtLibvirtDriver."""

from nova.tests.functional.libvirt import test_evacuate

from tests import conformance

globals().update(conformance.nova_test_cases(test_evacuate))
