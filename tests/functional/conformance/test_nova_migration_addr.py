"""Nova's functional test_migration_addr.py, on ExtLibvirtDriver."""

from nova.tests.functional.libvirt import test_migration_addr

from tests import conformance

globals().update(conformance.nova_test_cases(test_migration_addr))
