"""Nova's functional test_vtpm.py, on ExtLibvirtDriver."""

from nova.tests.functional.libvirt import test_vtpm

from tests import conformance

globals().update(conformance.nova_test_cases(test_vtpm))
