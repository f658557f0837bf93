"""``novaext-rsyncd run``: the daemon as a service's main process, the
process model systemd (Type=simple) and a container runtime expect. The
real rsync daemon (and stunnel with TLS) is started by the command under
test; the process tree is read from /proc."""

import os
import signal
import subprocess
import time

import pytest

from novaext.rsync import client as rsync_client
from novaext.rsync import tls as rsync_tls
from realhost import rsyncd

INSTANCE = '11111111-2222-3333-4444-555555555555'


def _children(pid):
    """Every live process below ``pid``."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != 'Z':
            found.append(int(entry))
    return found + [g for c in found for g in _children(c)]


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _wait_for(what, check, timeout=15):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f'{what} within {timeout} s'
        time.sleep(0.1)


@pytest.fixture
def foreground(tmp_path, request):
    """``novaext-rsyncd run`` on ``tmp_path/instances`` at a free port, as
    a service manager starts it; ``request.param``: TLS options or None."""
    instances = tmp_path / 'instances'
    instances.mkdir()
    port = rsyncd.free_port()
    tls_conf = None
    if getattr(request, 'param', None) == 'tls':
        from realhost import tls
        tls_conf = tls.TlsPki(tmp_path / 'pki').client_conf(
            rsyncd.free_port())
    cmd = rsyncd.daemon_command(tmp_path, instances, port,
                                tls_conf=tls_conf)
    log = open(tmp_path / 'service.log', 'w+')
    proc = subprocess.Popen(cmd + ['run'], stdout=log, stderr=log)
    listen = tls_conf['rsync_tls_port'] if tls_conf else port
    _wait_for('the daemon answering', lambda: rsyncd_answers(listen))
    # rsync's daemon forks one process per connection: the probe's own
    # must be gone before the tests count what the service started.
    started = 2 if tls_conf else 1
    _wait_for('the probe connection\'s process gone',
              lambda: len(_children(proc.pid)) == started)
    yield {'proc': proc, 'port': port, 'tmp': tmp_path, 'log': log,
           'instances': instances, 'tls': tls_conf}
    # Its children, taken before it ends: a killed parent's are init's.
    children = _children(proc.pid)
    if proc.poll() is None:
        proc.terminate()  # the service manager's stop
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # stopped with the service
    log.close()


def rsyncd_answers(port):
    import socket
    try:
        with socket.create_connection(('127.0.0.1', port), 1) as s:
            s.settimeout(1)
            return True
    except OSError:
        return False


@pytest.mark.parametrize('foreground', [None, 'tls'], indirect=True,
                         ids=['plain', 'tls'])
def test_stays_serves_and_stops_everything_on_sigterm(foreground):
    proc = foreground['proc']
    time.sleep(1)
    assert proc.poll() is None, 'the service\'s main process exited'
    children = _children(proc.pid)
    names = sorted(open(f'/proc/{p}/comm').read().strip()
                   for p in children)
    assert names == (['rsync', 'stunnel'] if foreground['tls']
                     else ['rsync']), names

    (foreground['instances'] / INSTANCE).mkdir()
    payload = foreground['tmp'] / 'payload'
    payload.write_bytes(b'novaext' * 1000)
    pw = foreground['tmp'] / 'pw'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    tls = foreground['tls'] or {}
    port = tls.get('rsync_tls_port', foreground['port'])
    client = rsync_client.RsyncDaemonClient(
        '127.0.0.1', port, 'nova_instances', 'nova', str(pw),
        tls_client_config=rsync_tls.client_config(
            '127.0.0.1', port, tls['rsync_tls_cert_file'],
            tls['rsync_tls_key_file'], tls['rsync_tls_ca_file'])
        if tls else None)
    client.push(str(payload), INSTANCE, 'pushed')
    assert (foreground['instances'] / INSTANCE / 'pushed').read_bytes() \
        == payload.read_bytes()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    _wait_for('every process it started gone',
              lambda: not any(_alive(p) for p in children))
    foreground['log'].seek(0)
    print(foreground['log'].read()[-2000:])


def test_a_dead_rsync_ends_the_service_with_failure(foreground):
    """So that the service manager restarts the whole."""
    proc = foreground['proc']
    (rsync,) = _children(proc.pid)
    os.kill(rsync, signal.SIGKILL)
    assert proc.wait(20) == 1


def test_a_second_one_is_refused(foreground):
    second = subprocess.run(foreground['proc'].args, capture_output=True,
                            text=True, timeout=30)
    assert second.returncode == 2
    assert 'runs already' in second.stderr
    assert foreground['proc'].poll() is None
