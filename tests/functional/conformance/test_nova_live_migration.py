"""Nova's functional test_live_migration.py, on ExtLibvirtDriver."""

from nova.tests.functional.libvirt import test_live_migration

from tests import conformance

globals().update(conformance.nova_test_cases(test_live_migration))
