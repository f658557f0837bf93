"""novaext's errors to operators are defined in one module,
novaext/exception.py, each one of a kind Nova's manager or the command
line handles (issue 31, item 8)."""

import ast
import pathlib

from nova import exception as nova_exception

from novaext import exception

REPO = pathlib.Path(__file__).resolve().parents[2]


def _exception_classes_outside(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(b) for b in node.bases]
        if any(b.endswith(('Exception', 'Error', 'Invalid', 'Failed',
                           'Refused', 'NotFound'))
               or b.startswith('exception.') for b in bases):
            yield f'{path.relative_to(REPO)}: {node.name}'


def test_no_exception_class_is_defined_outside_the_exceptions_module():
    found = [c for p in sorted((REPO / 'novaext').rglob('*.py'))
             if p.name != 'exception.py'
             for c in _exception_classes_outside(p)]
    assert found == []


def test_faults_on_a_server_are_nova_exceptions_with_their_message():
    for cls in (exception.UnmovableDisk, exception.RsyncTransferError,
                exception.RedirectFailed, exception.NotEnoughSpace,
                exception.LiveSnapshotFailed, exception.BlockJobTimeout,
                exception.UntrustedBaseEntry,
                exception.InvalidConnectionInfo):
        assert issubclass(cls, nova_exception.NovaException), cls
    err = exception.UnmovableDisk(path='/i/u/disk', format='ploop')
    assert str(err) == (
        "Migration pre-check error: /i/u/disk is a 'ploop' disk; novaext "
        'moves qcow2 and raw file disks only. Nothing was moved; the '
        'server stays where it is')


def test_configuration_errors_are_value_errors_naming_what_to_fix():
    for cls in (exception.RsyncDaemonConfigError,
                exception.RsyncTlsConfigError, exception.AlreadyRunning):
        assert issubclass(cls, exception.ConfigError)
        assert issubclass(cls, ValueError)
