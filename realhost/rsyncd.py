"""Real rsync daemons started by novaext-rsyncd, for tests, the demo and
benchmarks."""

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_daemon(workdir, instances, port, **kwargs):
    """Start an rsync daemon with ``novaext-rsyncd start`` (in the
    background); return (command, pid). ``kwargs``: as daemon_command's."""
    cmd = daemon_command(workdir, instances, port, **kwargs)
    pid = int(subprocess.run(cmd + ['start'], check=True, text=True,
                             capture_output=True).stdout)
    return cmd, pid


def daemon_command(workdir, instances, port, address='127.0.0.1',
                   secret='right-secret', extra_conf='',
                   hosts_allow='127.0.0.1', tls_conf=None, wrap=list):
    """Write a daemon's nova.conf and secrets into ``workdir``; return
    the novaext-rsyncd command for it, to which its action is added.

    ``extra_conf``: more [novaext] lines. ``hosts_allow``: the clients'
    address. ``tls_conf``: [novaext] TLS options (as
    ``tls.TlsPki.client_conf`` gives them): stunnel in front, its
    configuration and PID file (stunnel.pid) in ``workdir``. ``wrap``: a
    function that returns a command as it is to run (e.g.
    ``links.Link.in_dest``, in a network namespace); the command
    returned is wrapped."""
    workdir = pathlib.Path(workdir)
    secrets = workdir / 'rsyncd.secrets'
    secrets.write_text(f'nova:{secret}\n')
    secrets.chmod(0o600)
    if tls_conf:
        extra_conf = '\n'.join(
            [extra_conf, *(f'{k} = {v}' for k, v in tls_conf.items()),
             f'stunnel_config_file = {workdir}/stunnel.conf',
             f'stunnel_pid_file = {workdir}/stunnel.pid', ''])
    conf = workdir / 'nova.conf'
    conf.write_text(f"""[DEFAULT]
instances_path = {instances}
[novaext]
rsync_port = {port}
rsync_address = {address}
rsync_hosts_allow = {hosts_allow}
rsync_secrets_file = {secrets}
rsync_uid = root
rsync_gid = root
rsyncd_config_file = {workdir}/rsyncd.conf
rsyncd_pid_file = {workdir}/rsyncd.pid
{extra_conf}""")
    return wrap([os.path.join(os.path.dirname(sys.executable),
                              'novaext-rsyncd'), '--config-file', str(conf)])


@contextlib.contextmanager
def running_daemon(workdir, instances, **kwargs):
    """A daemon on ``instances`` at a free port (``kwargs`` as for
    start_daemon), stopped on exit; yields {'cmd', 'port', 'instances',
    'tmp' (``workdir``), 'pid'}."""
    port = free_port()
    cmd, pid = start_daemon(workdir, instances, port, **kwargs)
    try:
        yield {'cmd': cmd, 'port': port, 'instances': instances,
               'tmp': workdir, 'pid': pid}
    finally:
        stop_daemon(pid)


def stop_daemon(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # a test killed it on purpose
