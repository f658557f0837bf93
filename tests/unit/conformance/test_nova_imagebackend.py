"""Nova's unit libvirt/test_imagebackend.py against novaext's classes."""

from nova.tests.unit.virt.libvirt import test_imagebackend

from tests import conformance

globals().update(conformance.nova_test_cases(test_imagebackend))
