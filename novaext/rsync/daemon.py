"""Configuration and control of the per-host rsync daemon.

Each compute host runs an rsync daemon with two modules, each allowing
only what peers need (``MODULE_RULES``):

- the instances module (``rsync_module``), rooted at ``instances_path``,
  is *write only*: peers push disks into instance directories
  (``<uuid>/``) and make, probe and remove them there; they cannot read
  or list anything, and everything else (``_base``, ``locks``,
  ``<uuid>_resize``, ...) is excluded by the daemon;
- the base module (``rsync_base_module``), rooted at ``_base``, is
  *read only* and serves base files by name (``<sha1>``,
  ``<sha1>_<GB>``) and nothing else: no partial files, no ephemeral or
  swap bases, and no listing (the daemon refuses ``--dirs``,
  ``--recursive`` and ``--list-only``).

Neither module is listed. Access is limited twice more: ``hosts allow``
(then ``hosts deny = *``) and ``auth users`` with a secrets file (rsync
refuses a secrets file readable by others under its default
``strict modes``). This module turns the ``[novaext]`` options into an
``rsyncd.conf``, starts the daemon and tells whether it answers.
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

from novaext.exception import DaemonDidNotStart
from novaext.exception import RsyncDaemonConfigError
from novaext.rsync import pidfile
from novaext.rsync import tls as rsync_tls

LOG = logging.getLogger(__name__)

_HOSTNAME = re.compile(r'^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$')

# rsync wildcards: an instance directory (a uuid) and a base's name.
# The daemon checks a destination directory's own name without its
# trailing slash, so the instance directory's rule has none.
_UUID_DIR = '/????????-????-????-????-????????????'
_SHA1 = '/' + '[0-9a-f]' * 40

# Per module: what peers may do there, as rsyncd.conf lines.
MODULE_RULES = {
    'instances': (
        'read only = no',
        'write only = yes',
        'munge symlinks = yes',
        f'filter = + {_UUID_DIR} + {_UUID_DIR}/** - *',
    ),
    'base': (
        'read only = yes',
        'write only = no',
        f'filter = + {_SHA1} + {_SHA1}_[0-9]* + {_SHA1}.verified - *',
        'refuse options = list-only dirs recursive',
    ),
}


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
    base_module: str = 'nova_base'
    base_subdir: str = '_base'
    transport: str = 'plain'
    tls_port: int = 874
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    stunnel_config_file: str | None = None
    stunnel_pid_file: str | None = None

    @property
    def listen_address(self):
        """Where the rsync daemon itself listens: behind stunnel, on
        the loopback only."""
        if self.transport == 'tls':
            return rsync_tls.LOOPBACK
        return self.address

    @property
    def admitted(self):
        """Who the daemon admits: with tls, stunnel (the loopback)."""
        if self.transport == 'tls':
            return (rsync_tls.LOOPBACK,)
        return self.hosts_allow

    def __post_init__(self):
        if not os.path.isabs(self.instances_path):
            raise RsyncDaemonConfigError(
                f'instances_path {self.instances_path!r} is not absolute')
        if not re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9_.-]*', self.base_subdir):
            raise RsyncDaemonConfigError(
                f'image cache subdirectory {self.base_subdir!r} is not a '
                f'plain directory name')
        if self.transport == 'tls':
            for name in ('stunnel_config_file', 'stunnel_pid_file',
                         'tls_cert_file', 'tls_key_file', 'tls_ca_file'):
                value = getattr(self, name)
                if not value or not os.path.isabs(value) or '\n' in value:
                    raise RsyncDaemonConfigError(
                        f'{name} {value!r} must be an absolute path with '
                        f'rsync_transport = tls')
            if self.tls_port == self.port:
                raise RsyncDaemonConfigError(
                    'rsync_tls_port and rsync_port must differ')
        if self.module == self.base_module:
            raise RsyncDaemonConfigError(
                f'rsync_module and rsync_base_module are both '
                f'{self.module!r}: they must differ')
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
            base_module=opts.rsync_base_module,
            base_subdir=conf.image_cache.subdirectory_name,
            transport=opts.rsync_transport,
            tls_port=opts.rsync_tls_port,
            tls_cert_file=opts.rsync_tls_cert_file,
            tls_key_file=opts.rsync_tls_key_file,
            tls_ca_file=opts.rsync_tls_ca_file,
            stunnel_config_file=opts.stunnel_config_file,
            stunnel_pid_file=opts.stunnel_pid_file,
        )


def render_config(settings):
    """Return the text of ``rsyncd.conf`` for ``settings``."""
    lines = [
        '# Written by novaext-rsyncd from nova.conf; edits are overwritten.',
        f'pid file = {settings.pid_file}',
        f'port = {settings.port}',
    ]
    if settings.listen_address:
        lines.append(f'address = {settings.listen_address}')
    lines += [
        f'uid = {settings.uid}',
        f'gid = {settings.gid}',
        f'use chroot = {"yes" if settings.use_chroot else "no"}',
        'max connections = 16',
        'reverse lookup = no',
        # The daemon's side of the small messages both ways (see
        # rsync_client.SOCKET_OPTIONS).
        'socket options = TCP_NODELAY',
    ]
    modules = (
        (settings.module, settings.instances_path, 'instances',
         'nova instances: pushes into instance directories only'),
        (settings.base_module,
         os.path.join(settings.instances_path, settings.base_subdir), 'base',
         'nova image cache: base files by name, read only'),
    )
    for name, path, rules, comment in modules:
        lines += [
            '',
            f'[{name}]',
            f'path = {path}',
            f'comment = {comment}',
            'list = no',
            f'auth users = {settings.auth_user}',
            f'secrets file = {settings.secrets_file}',
            'strict modes = yes',
            f'hosts allow = {" ".join(settings.admitted)}',
            'hosts deny = *',
            *MODULE_RULES[rules],
        ]
    return '\n'.join(lines) + '\n'


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
    """Return the daemon's PID if its PID file names a live rsync."""
    return pidfile.live_pid(settings.pid_file, ('rsync',))


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
        _start_tls_endpoint(settings)
        return pid
    if not os.path.exists(settings.secrets_file):
        raise RsyncDaemonConfigError(
            f'secrets file {settings.secrets_file} does not exist')
    processutils.execute('rsync', '--daemon',
                         f'--config={settings.config_file}')
    for _ in range(50):
        pid = running_pid(settings)
        if pid is not None and answers(
                settings, settings.listen_address or '127.0.0.1'):
            _start_tls_endpoint(settings)
            return pid
        time.sleep(0.1)
    raise DaemonDidNotStart(f'the rsync daemon (port {settings.port})',
                            'syslog')


def _start_tls_endpoint(settings):
    """With rsync_transport = tls, start stunnel in front of the daemon
    unless it runs; returns its PID (None with plain)."""
    if settings.transport != 'tls':
        return None
    rsync_tls.check_files(settings.tls_cert_file, settings.tls_key_file,
                          settings.tls_ca_file)
    return rsync_tls.start_stunnel(settings, settings.stunnel_config_file)
