"""Run Nova's own libvirt tests against ExtLibvirtDriver, without copying them.

Nova's tests build the driver as ``nova.virt.libvirt.driver.LibvirtDriver``
(unit tests) or load it through ``compute_driver = libvirt.LibvirtDriver``,
i.e. ``nova.virt.libvirt.LibvirtDriver`` (functional tests). ``swap()``
points both names at ExtLibvirtDriver (and Nova's Qcow2 image and image
cache manager at novaext's), so every test Nova wrote for them runs
against novaext's. ``nova_test_cases(module)`` hands a test
module's own TestCase classes to pytest from a module of ours.

The tests novaext deliberately fails are listed, each with its reason, in
ONE file, ``tests/nova_parity_allowlist.txt``; the root conftest marks them
strict xfail, so a listed test that starts to pass fails the run until its
line is removed.
"""

import inspect
import os
import unittest

ALLOWLIST = os.path.join(os.path.dirname(__file__),
                         'nova_parity_allowlist.txt')


def swap():
    """Make Nova's driver names resolve to ExtLibvirtDriver.

    With NOVAEXT_CONFORMANCE_BASELINE=1 in the environment nothing is
    swapped: the same tests run against Nova's own classes (the baseline
    the counts in doc/source/contributor/testing.rst are compared with).

    :returns: Nova's own LibvirtDriver class
    """
    if os.environ.get('NOVAEXT_CONFORMANCE_BASELINE') == '1':
        from nova.virt.libvirt import driver as libvirt_driver
        return libvirt_driver.LibvirtDriver
    import nova.virt.libvirt
    from nova.virt.libvirt import driver as libvirt_driver
    from nova.virt.libvirt import imagebackend
    from nova.virt.libvirt import imagecache

    from novaext.imagebackend import image_cache as ext_image_cache
    from novaext.imagebackend import qcow2 as ext_qcow2
    from novaext.virt import driver as ext_driver
    nova_cls = ext_driver.NovaLibvirtDriver
    nova_qcow2 = ext_qcow2.NovaQcow2
    # fixtures.MonkeyPatch looks for staticmethods in the patched class's
    # own __dict__ only; an inherited one is patched as a plain function
    # and then receives ``self``. Give the subclass the same descriptors.
    for name, attr in vars(nova_cls).items():
        if (isinstance(attr, (staticmethod, classmethod)) and
                name not in vars(ext_driver.ExtLibvirtDriver)):
            setattr(ext_driver.ExtLibvirtDriver, name, attr)
    libvirt_driver.LibvirtDriver = ext_driver.ExtLibvirtDriver
    nova.virt.libvirt.LibvirtDriver = ext_driver.ExtLibvirtDriver
    # What ExtLibvirtDriver puts behind images_type qcow2 and the image
    # cache manager, for Nova's tests of those classes.
    imagebackend.Qcow2 = ext_qcow2.ExtQcow2
    _construct_as(imagecache.ImageCacheManager,
                  ext_image_cache.ExtImageCacheManager)
    _match_substitutes({
        nova_qcow2: ext_qcow2.ExtQcow2,
        nova_cls: ext_driver.ExtLibvirtDriver,
    })
    return nova_cls


def _construct_as(nova_cls, ext_cls):
    """Make ``nova_cls()`` build an ``ext_cls``.

    For classes whose Nova code calls ``super(NovaName, self)``: rebinding
    the module name would make that call recurse, so the name stays and
    construction hands out novaext's subclass instead.
    """
    def new(cls, *args, **kwargs):
        return object.__new__(ext_cls if cls is nova_cls else cls)

    nova_cls.__new__ = new


def _match_substitutes(substitutes):
    """Let ``nova.test.MatchType(NovaClass)`` match novaext's subclass.

    MatchType compares exact types; where novaext stands in a subclass for
    one of Nova's classes (and only there), the subclass is that class.
    """
    from nova import test as nova_test

    def matches(self, other):
        return (type(other) is self.wanttype or
                substitutes.get(self.wanttype) is type(other))

    nova_test.MatchType.__eq__ = matches
    nova_test.MatchType.__ne__ = lambda self, other: not matches(self, other)


def nova_test_cases(module):
    """The unittest TestCase classes ``module`` itself defines, by name."""
    return {
        name: cls for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, unittest.TestCase)
        and cls.__module__ == module.__name__}


def nova_test_id(item):
    """Nova's dotted id of a pytest item that runs one of Nova's tests,
    e.g. ``nova.tests.unit.virt.libvirt.test_driver.LibvirtConnTestCase.
    test_hard_reboot``; None for novaext's own tests."""
    cls = getattr(item, 'cls', None)
    if cls is None or not cls.__module__.startswith('nova.'):
        return None
    return f'{cls.__module__}.{cls.__qualname__}.{item.name}'


def load_allowlist(path=ALLOWLIST):
    """{nova test id: reason} from the allow-list file.

    Each entry is ``<nova test id>  <reason>``; blank lines and lines
    starting with ``#`` are comments. A line without a reason is an error.
    """
    entries = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            test_id, _, reason = line.partition(' ')
            if not reason.strip():
                raise ValueError(f'{path}:{lineno}: {test_id} has no reason')
            if test_id in entries:
                raise ValueError(f'{path}:{lineno}: {test_id} listed twice')
            entries[test_id] = reason.strip()
    return entries
