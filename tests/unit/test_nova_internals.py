"""Every Nova name novaext relies on, checked against the installed Nova.

A Nova upgrade that renames, removes or re-signs one of them fails here,
with the list of what moved, instead of wherever novaext happens to call
it. The list is novaext.nova_internals.PINNED_NAMES; the last tests check
that the list is complete (novaext's code uses no private Nova name that
is not on it) and that novaext's overrides and replacements keep Nova's
signatures (in the spirit of compute-hyperv's assertPublicAPISignatures).
"""

import ast
import inspect
import pathlib
import re

import pytest
from nova.virt.libvirt.volume import remotefs as nova_remotefs

import novaext
from novaext import nova_internals
from novaext.imagebackend import image_cache
from novaext.imagebackend import qcow2
from novaext.rsync import remotefs
from novaext.virt import driver
from novaext.volume import clouddisk

PACKAGE = pathlib.Path(novaext.__file__).parent

# novaext's classes that subclass a Nova class
SUBCLASSES = (driver.ExtLibvirtDriver, image_cache.ExtImageCacheManager,
              qcow2.ExtQcow2, clouddisk.CloudDiskVolumeDriver,
              clouddisk.GuestDiskWithInitiator)


_nova_class = nova_internals._nova_class
_params = nova_internals._params
_moved = nova_internals.moved


def test_every_pinned_nova_name_is_where_novaext_expects_it():
    assert nova_internals.moved_names() == []


def test_a_renamed_nova_method_would_be_reported():
    pin = nova_internals.PinnedName(
        'nova.virt.libvirt.driver.LibvirtDriver', '_can_quiesce',
        ('instance',), 'call', 'test')
    assert 'is not' in _moved(pin)
    gone = pin.__class__(pin.owner, '_no_such_method', (), 'call', 'test')
    assert 'is gone' in _moved(gone)
    attribute = pin.__class__(pin.owner, '_no_such', None, 'attribute', '')
    assert 'no longer sets' in _moved(attribute)


def _private_nova_names_used():
    """(module, name) of each private name novaext's code reaches on an
    object that is not its own: ``x._name`` for any x but self/cls
    (``self._driver._name`` in nova_internals), ``super()._name``, and
    ``self._name`` in a Nova subclass that does not define it."""
    own = {}
    for cls in SUBCLASSES:
        own[cls.__name__] = {
            n for n, v in vars(cls).items()} | _assigned_in(cls)
    used = set()
    for path in PACKAGE.rglob('*.py'):
        tree = ast.parse(path.read_text())
        for cls_node in [n for n in ast.walk(tree)
                         if isinstance(n, ast.ClassDef)]:
            if cls_node.name not in own:
                continue
            for node in ast.walk(cls_node):
                if _is_self_private(node) and \
                        node.attr not in own[cls_node.name]:
                    used.add((path.name, node.attr))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or \
                    not _is_private(node.attr):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in ('self', 'cls'):
                continue
            if isinstance(value, ast.Attribute) and \
                    isinstance(value.value, ast.Name) and \
                    value.value.id == 'self' and value.attr != '_driver':
                continue  # self.<novaext attribute>._name
            used.add((path.name, node.attr))
    return used


def _is_private(name):
    return name.startswith('_') and not name.startswith('__')


def _is_self_private(node):
    return (isinstance(node, ast.Attribute) and _is_private(node.attr) and
            isinstance(node.value, ast.Name) and node.value.id == 'self')


def _assigned_in(cls):
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for n in ast.walk(node):
                if _is_self_private(n) and isinstance(n.ctx, ast.Store):
                    names.add(n.attr)
    return names


def test_novaext_uses_no_private_nova_name_that_is_not_pinned():
    pinned = {pin.name for pin in nova_internals.PINNED_NAMES}
    unpinned = sorted(u for u in _private_nova_names_used()
                      if u[1] not in pinned)
    assert unpinned == []


def test_only_nova_internals_reaches_into_the_driver():
    outside = sorted(
        (module, name) for module, name in _private_nova_names_used()
        if module not in ('nova_internals.py', 'driver.py',
                          'image_cache.py'))
    assert outside == []


def _own_methods(cls):
    """(name, function) of the methods ``cls`` itself defines; not the
    descriptors tests/conformance.py copies over from Nova's class."""
    base = cls.__mro__[1]
    return [(name, value) for name, value in vars(cls).items()
            if callable(value) and not name.startswith('__') and
            vars(base).get(name) is not value]


@pytest.mark.parametrize('cls', SUBCLASSES, ids=lambda c: c.__name__)
def test_overrides_keep_nova_signatures(cls):
    base = cls.__mro__[1]
    differ = []
    for name, value in _own_methods(cls):
        nova_value = getattr(base, name, None)
        if not callable(nova_value):
            continue
        if _params(value) != _params(nova_value):
            differ.append(f'{name}{_params(value)} vs Nova\'s '
                          f'{_params(nova_value)}')
    assert differ == []


@pytest.mark.parametrize('cls', SUBCLASSES, ids=lambda c: c.__name__)
def test_every_private_override_is_pinned(cls):
    base = cls.__mro__[1]
    pinned = {pin.name for pin in nova_internals.PINNED_NAMES
              if pin.use == 'override'}
    overrides = {name for name, _ in _own_methods(cls)
                 if _is_private(name) and hasattr(base, name)}
    assert overrides - pinned == set()


def test_daemon_remotefs_serves_every_call_nova_makes_on_remotefs():
    from nova.virt.libvirt import driver as libvirt_driver
    called = set(re.findall(r'self\._remotefs\.(\w+)\(',
                            inspect.getsource(libvirt_driver)))
    assert called, 'Nova no longer calls self._remotefs: unpin it'
    for name in called:
        ours = getattr(remotefs.DaemonRemoteFilesystem, name, None)
        assert ours is not None, name
        assert _params(ours) == _params(
            getattr(nova_remotefs.RemoteFilesystem, name)), name
