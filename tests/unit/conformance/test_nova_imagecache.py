"""Nova's unit libvirt/test_imagecache.py against novaext's classes."""

from nova.tests.unit.virt.libvirt import test_imagecache

from tests import conformance

globals().update(conformance.nova_test_cases(test_imagecache))
