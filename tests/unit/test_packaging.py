"""What the built distribution ships, and what novaext must never import."""

import ast
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '--quiet', '--wheel-dir', str(out),
         str(REPO)],
        check=True)
    (wheel,) = out.glob('novaext-*.whl')
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


@pytest.mark.host
def test_wheel_ships_only_the_shim_under_nova(wheel_names):
    under_nova = [n for n in wheel_names if n.startswith('nova/')]
    assert under_nova == ['nova/virt/novaext/__init__.py']


def test_shim_is_one_line_reexporting_the_driver():
    shim = (REPO / 'nova/virt/novaext/__init__.py').read_text()
    assert shim.strip().splitlines() == [
        'from novaext.virt.driver import ExtLibvirtDriver  # noqa: F401']


@pytest.mark.host
def test_wheel_ships_the_subpackages(wheel_names):
    for pkg in ('novaext', 'novaext/virt', 'novaext/volume',
                'novaext/imagebackend'):
        assert f'{pkg}/__init__.py' in wheel_names


@pytest.mark.host
def test_wheel_declares_the_entry_points(wheel_names):
    assert any(n.endswith('.dist-info/entry_points.txt')
               for n in wheel_names)


@pytest.mark.host
def test_the_version_comes_from_git(wheel_names):
    """No constant in setup.cfg: the wheel's version is setuptools-scm's
    reading of the checkout (its latest tag and the commits since)."""
    import configparser

    import setuptools_scm
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    assert 'version' not in cfg['metadata']
    (dist_info,) = {n.split('/')[0] for n in wheel_names
                    if n.split('/')[0].endswith('.dist-info')}
    version = dist_info[len('novaext-'):-len('.dist-info')]
    assert version == setuptools_scm.get_version(root=str(REPO),
                                                 fallback_version='0.0.0')


def _imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_no_eventlet_anywhere_in_novaext():
    sources = list((REPO / 'novaext').rglob('*.py'))
    assert sources
    offenders = [
        str(p.relative_to(REPO)) for p in sources
        if any(m.split('.')[0] == 'eventlet' for m in _imported_modules(p))]
    assert offenders == []


def _declared_requirements():
    import configparser
    import re
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    lines = cfg['options']['install_requires'].split('\n')
    return {re.split(r'[<>=!~ ;\[]', line.strip())[0].lower()
            .replace('_', '-').replace('.', '-')
            for line in lines if line.strip()}


def test_every_library_novaext_imports_is_declared():
    """install_requires holds the distribution of every third-party
    module novaext imports (oslo.log, oslo.utils and oslo.serialization
    came in only through Nova before)."""
    import importlib.metadata as md
    stdlib = set(sys.stdlib_module_names)
    imported = {m.split('.')[0] for p in (REPO / 'novaext').rglob('*.py')
                for m in _imported_modules(p)}
    third_party = sorted(imported - stdlib - {'novaext'})
    dists = md.packages_distributions()
    declared = _declared_requirements()
    missing = [(m, dists.get(m)) for m in third_party
               if not any(d.lower().replace('_', '-').replace('.', '-')
                          in declared for d in dists.get(m, [m]))]
    assert third_party and missing == []
