"""Real tier: a real libvirtd with QEMU (TCG), real qemu-img, rsync, tgt.

Needs root and the services of scripts/start-services. Where the machine
cannot run them the tests skip with the reason; with NOVAEXT_REQUIRE_REAL=1
(set by scripts/test, hence in CI) that skip is a failure instead.
"""

import os

import pytest

from realhost import harness
from realhost import rsyncd
from realhost import tls


def pytest_collection_modifyitems(config, items):
    problem = harness.environment_problem()
    if problem is None:
        return
    if os.environ.get('NOVAEXT_REQUIRE_REAL') == '1':
        pytest.exit(f'real tier required but cannot run: {problem}',
                    returncode=3)
    marker = pytest.mark.skip(reason=f'REAL TIER SKIPPED: {problem}')
    for item in items:
        item.add_marker(marker)


@pytest.fixture
def real_host():
    host = harness.RealComputeHost()
    host.setUp()
    try:
        yield host
    finally:
        host.cleanUp()


@pytest.fixture
def tiny_image(tmp_path):
    """A real qcow2 image file, 64 MiB virtual, with a pattern written."""
    import subprocess
    path = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path),
                    '64M'], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M',
                    str(path)], check=True, capture_output=True)
    return path


@pytest.fixture
def daemon(tmp_path):
    """novaext-rsyncd on ``tmp_path/instances`` at a free port."""
    instances = tmp_path / 'instances'
    instances.mkdir()
    with rsyncd.running_daemon(tmp_path, instances) as daemon:
        yield daemon


@pytest.fixture
def pki(tmp_path):
    """A compute CA with a host certificate, and an intruder's CA."""
    return tls.TlsPki(tmp_path / 'pki')


@pytest.fixture
def tls_daemon(tmp_path, pki):
    """A daemon on ``tmp_path/instances`` behind stunnel (TLS)."""
    instances = tmp_path / 'instances'
    instances.mkdir()
    daemon = tls.start_tls_daemon(tmp_path, instances, pki)
    try:
        yield daemon
    finally:
        tls.stop_tls_daemon(daemon)
