"""Real rsync daemons started by novaext-rsyncd, for tests, the demo and
benchmarks."""

import os
import signal
import socket
import subprocess
import sys


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_daemon(workdir, instances, port, address='127.0.0.1',
                 secret='right-secret', extra_conf=''):
    """Start an rsync daemon with novaext-rsyncd; return (command, pid).

    ``extra_conf``: more [novaext] lines (e.g. the TLS transport)."""
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
{extra_conf}""")
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
