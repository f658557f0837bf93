"""Real tier: a real libvirtd with QEMU (TCG), real qemu-img, rsync, tgt.

Needs root and the services of scripts/start-services. Where the machine
cannot run them the tests skip with the reason; with NOVAEXT_REQUIRE_REAL=1
(set by scripts/test, hence in CI) that skip is a failure instead.
"""

import os

import pytest

from realhost import harness


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
