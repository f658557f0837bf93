"""Nova's functional test_rescue_deleted_base.py, on ExtLibvirtDriver."""

from nova.tests.functional.libvirt import test_rescue_deleted_base

from tests import conformance

globals().update(conformance.nova_test_cases(test_rescue_deleted_base))
