"""novaext-rsyncd runs a real rsync daemon that admits only whom it should."""

import os
import signal
import socket
import subprocess
import sys

import pytest


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_daemon(workdir, instances, port, address='127.0.0.1',
                 secret='right-secret'):
    """Start an rsync daemon with novaext-rsyncd; return (command, pid)."""
    secrets = workdir / 'rsyncd.secrets'
    secrets.write_text(f'nova:{secret}\n')
    secrets.chmod(0o600)
    conf = workdir / 'nova.conf'
    conf.write_text(f"""[DEFAULT]
instances_path = {instances}
[novaext]
rsync_port = {port}
rsync_address = {address}
rsync_hosts_allow = 127.0.0.1
rsync_secrets_file = {secrets}
rsync_uid = root
rsync_gid = root
rsyncd_config_file = {workdir}/rsyncd.conf
rsyncd_pid_file = {workdir}/rsyncd.pid
""")
    cmd = [os.path.join(os.path.dirname(sys.executable), 'novaext-rsyncd'),
           '--config-file', str(conf)]
    pid = int(subprocess.run(cmd + ['start'], check=True, text=True,
                             capture_output=True).stdout)
    return cmd, pid


def stop_daemon(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # a test killed it on purpose


@pytest.fixture
def daemon(tmp_path):
    instances = tmp_path / 'instances'
    instances.mkdir()
    port = _free_port()
    cmd, pid = start_daemon(tmp_path, instances, port)
    try:
        yield {'cmd': cmd, 'port': port, 'instances': instances,
               'tmp': tmp_path, 'pid': pid}
    finally:
        stop_daemon(pid)


def _push(daemon, password, name='pushed', source_address=None):
    src = daemon['tmp'] / 'payload'
    src.write_bytes(b'novaext' * 1000)
    pw = daemon['tmp'] / f'pw-{password}'
    pw.write_text(password)
    pw.chmod(0o600)
    bind = [f'--address={source_address}'] if source_address else []
    return subprocess.run(
        ['rsync', *bind, f'--password-file={pw}', str(src),
         f'rsync://nova@127.0.0.1:{daemon["port"]}/nova_instances/{name}'],
        capture_output=True, text=True, timeout=30)


def test_check_reports_running_daemon(daemon):
    out = subprocess.run(daemon['cmd'] + ['check'], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'pid {daemon["pid"]}' in out.stdout


def test_start_twice_keeps_the_running_daemon(daemon):
    again = subprocess.run(daemon['cmd'] + ['start'], check=True, text=True,
                           capture_output=True).stdout
    assert int(again) == daemon['pid']


def test_right_secret_writes_into_instances_path(daemon):
    result = _push(daemon, 'right-secret')
    assert result.returncode == 0, result.stderr
    assert (daemon['instances'] / 'pushed').read_bytes() == \
        b'novaext' * 1000


def test_wrong_secret_is_refused_and_writes_nothing(daemon):
    result = _push(daemon, 'wrong-secret')
    assert result.returncode != 0
    assert 'auth failed' in result.stderr
    assert list(daemon['instances'].iterdir()) == []


def test_path_outside_module_is_not_reachable(daemon):
    result = _push(daemon, 'right-secret', name='../escaped')
    assert not (daemon['tmp'] / 'escaped').exists()
    assert result.returncode != 0 or (daemon['instances'] /
                                      'escaped').exists()


def test_host_not_in_hosts_allow_is_refused(daemon):
    result = _push(daemon, 'right-secret', source_address='127.0.0.2')
    assert result.returncode != 0
    # With 'list = no' rsync hides the module from a host it refuses.
    assert ('access denied' in result.stderr
            or "Unknown module 'nova_instances'" in result.stderr)
    assert list(daemon['instances'].iterdir()) == []
