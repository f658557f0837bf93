"""Configuration and control of the per-host rsync daemon.

Each compute host runs an rsync daemon with one module rooted at
``instances_path``; resize and cold migration push disks into the
destination's module. This module turns the ``[novaext]`` options into an
``rsyncd.conf``, starts the daemon and tells whether it answers.

Access is limited twice: ``hosts allow`` (then ``hosts deny = *``) and
``auth users`` with a secrets file (rsync refuses a secrets file readable
by others under its default ``strict modes``).
"""

import dataclasses
import ipaddress
import os
import re
import socket
import tempfile
import time

from oslo_concurrency import processutils
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_HOSTNAME = re.compile(r'^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$')


class RsyncDaemonConfigError(ValueError):
    """A [novaext] rsync option cannot make a safe daemon config."""


def _validate_host_pattern(entry):
    try:
        ipaddress.ip_network(entry, strict=False)
        return entry
    except ValueError:
        pass
    if _HOSTNAME.match(entry):
        return entry
    raise RsyncDaemonConfigError(
        f'rsync_hosts_allow entry {entry!r} is neither an address, a '
        f'network nor a host name')


@dataclasses.dataclass(frozen=True)
class RsyncDaemonSettings:
    """Everything the daemon's config file says, already validated."""

    instances_path: str
    module: str
    port: int
    auth_user: str
    secrets_file: str
    hosts_allow: tuple
    use_chroot: bool
    uid: str
    gid: str
    config_file: str
    pid_file: str
    address: str | None = None

    def __post_init__(self):
        if not os.path.isabs(self.instances_path):
            raise RsyncDaemonConfigError(
                f'instances_path {self.instances_path!r} is not absolute')
        if not self.hosts_allow:
            raise RsyncDaemonConfigError(
                'rsync_hosts_allow is empty: no compute host could connect')
        for entry in self.hosts_allow:
            _validate_host_pattern(entry)
        for name in ('secrets_file', 'config_file', 'pid_file'):
            value = getattr(self, name)
            if not os.path.isabs(value) or '\n' in value:
                raise RsyncDaemonConfigError(
                    f'{name} {value!r} must be an absolute path')

    @classmethod
    def from_conf(cls, conf):
        opts = conf.novaext
        return cls(
            instances_path=os.path.abspath(conf.instances_path),
            module=opts.rsync_module,
            port=opts.rsync_port,
            auth_user=opts.rsync_auth_user,
            secrets_file=opts.rsync_secrets_file,
            hosts_allow=tuple(opts.rsync_hosts_allow),
            use_chroot=opts.rsync_use_chroot,
            uid=opts.rsync_uid,
            gid=opts.rsync_gid,
            config_file=opts.rsyncd_config_file,
            pid_file=opts.rsyncd_pid_file,
            address=opts.rsync_address,
        )


def render_config(settings):
    """Return the text of ``rsyncd.conf`` for ``settings``."""
    lines = [
        '# Written by novaext-rsyncd from nova.conf; edits are overwritten.',
        f'pid file = {settings.pid_file}',
        f'port = {settings.port}',
    ]
    if settings.address:
        lines.append(f'address = {settings.address}')
    lines += [
        f'uid = {settings.uid}',
        f'gid = {settings.gid}',
        f'use chroot = {"yes" if settings.use_chroot else "no"}',
        'max connections = 16',
        'reverse lookup = no',
        '',
        f'[{settings.module}]',
        f'path = {settings.instances_path}',
        'comment = nova instances (novaext resize and cold migration)',
        'read only = no',
        'list = no',
        f'auth users = {settings.auth_user}',
        f'secrets file = {settings.secrets_file}',
        'strict modes = yes',
        f'hosts allow = {" ".join(settings.hosts_allow)}',
        'hosts deny = *',
        'munge symlinks = yes',
        '',
    ]
    return '\n'.join(lines)


def write_config(settings):
    """Write the daemon config atomically; return its path."""
    directory = os.path.dirname(settings.config_file)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.rsyncd.conf.')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(render_config(settings))
        os.chmod(tmp, 0o644)
        os.replace(tmp, settings.config_file)
    except BaseException:
        os.unlink(tmp)
        raise
    return settings.config_file


def running_pid(settings):
    """Return the daemon's PID if its PID file names a live process."""
    try:
        with open(settings.pid_file) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def answers(settings, host='127.0.0.1', timeout=2.0):
    """True if an rsync daemon greets on ``host``:port."""
    try:
        with socket.create_connection((host, settings.port), timeout) as s:
            return s.recv(64).startswith(b'@RSYNCD:')
    except OSError:
        return False


def start(settings):
    """Write the config and start the daemon unless it already runs.

    Returns the daemon's PID. Raises ProcessExecutionError if rsync fails
    to start (its stderr says why: port in use, bad config, ...).
    """
    write_config(settings)
    pid = running_pid(settings)
    if pid is not None:
        LOG.info('rsync daemon already running (pid %d)', pid)
        return pid
    if not os.path.exists(settings.secrets_file):
        raise RsyncDaemonConfigError(
            f'secrets file {settings.secrets_file} does not exist')
    processutils.execute('rsync', '--daemon',
                         f'--config={settings.config_file}')
    for _ in range(50):
        pid = running_pid(settings)
        if pid is not None and answers(settings,
                                       settings.address or '127.0.0.1'):
            return pid
        time.sleep(0.1)
    raise RuntimeError(
        f'rsync daemon did not come up on port {settings.port}; see syslog')
