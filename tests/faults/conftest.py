"""Fault tier: the cloud tier's cloud (scripts/cloud up) with a fault put
in the middle of an operation, then the standard action that recovers
it, then the guest's data read back and nothing left (issue 30; DESIGN
section 5).

It uses the cloud tier's fixtures and report hook (same cloud, servers
and images; the cloud's log lines in a failing test's report), imported
rather than repeated, and skips or fails the same way when the cloud is
not up. Faults are
realhost.cloud.faults: processes the cloud recorded, by PID.
"""

import os
import tempfile

import pytest

from realhost.cloud import faults
from tests.cloud.conftest import _cloud_log_marks  # noqa: F401
from tests.cloud.conftest import cloud  # noqa: F401
from tests.cloud.conftest import flavors  # noqa: F401
from tests.cloud.conftest import image  # noqa: F401
from tests.cloud.conftest import image_file  # noqa: F401
from tests.cloud.conftest import notifications  # noqa: F401
from tests.cloud.conftest import pytest_runtest_makereport  # noqa: F401
from tests.cloud.conftest import scsi_image  # noqa: F401
from tests.cloud.conftest import servers  # noqa: F401


@pytest.fixture(scope='module')
def host_faults(cloud):  # noqa: F811
    return {name: faults.HostFaults(host)
            for name, host in cloud.hosts.items()}


@pytest.fixture(autouse=True)
def _nova_compute_back(request):
    """After each test, nova-compute runs again wherever its fault left
    it dead (a test that failed between the kill and the start)."""
    yield
    if 'host_faults' in request.fixturenames:
        for faults_of_host in request.getfixturevalue(
                'host_faults').values():
            faults_of_host.ensure_nova_compute()


def _options_file(directory, section, options):
    fd, path = tempfile.mkstemp(prefix=faults.FAULT_CONFIG_PREFIX,
                                suffix='.conf', dir=directory)
    with os.fdopen(fd, 'w') as f:
        f.write(f'[{section}]\n')
        for name, value in options.items():
            f.write(f'{name} = {value}\n')
    return path


@pytest.fixture(scope='module')
def with_options(host_faults, tmp_path_factory):
    """Restart the hosts' nova-compute with extra options (of [novaext]
    unless ``section`` names another), once per module; restarted without
    them at the module's end."""
    changed = []
    directory = str(tmp_path_factory.mktemp('fault-conf'))

    def restart(names, section='novaext', **options):
        path = _options_file(directory, section, options)
        for name in names:
            host_faults[name].extra_config = path
            host_faults[name].restart_nova_compute()
            changed.append(name)

    yield restart
    for name in sorted(set(changed)):
        host_faults[name].extra_config = None
        host_faults[name].restart_nova_compute()
