"""Pushing files into another compute host's rsync daemon.

The client side of resize and cold migration's copy channel. The password
is read by rsync from ``[novaext]rsync_password_file`` (mode 0600): it is
never on a command line or in the environment of other processes. Every
remote path is built from validated components, so no instance name or
disk name can leave the module (rooted at the peer's instances_path).
"""

import contextlib
import ipaddress
import os
import re
import subprocess
import tempfile

from oslo_concurrency import processutils
from oslo_log import log as logging

from novaext.exception import InvalidRemotePath
from novaext.exception import RsyncTransferError
from novaext.rsync import tls as rsync_tls

LOG = logging.getLogger(__name__)

# A path component: starts with a letter, digit or '_' (so never '.' or
# '..' or an option), then letters, digits, '.', '_' or '-'.
_COMPONENT = re.compile(r'[A-Za-z0-9_][A-Za-z0-9._-]{0,254}')
# A host name as /etc/hosts and Nova's [DEFAULT]host allow it ('_' too);
# never starting with '-', so never an option.
_HOSTNAME = re.compile(r'[A-Za-z0-9]([A-Za-z0-9._-]{0,252}[A-Za-z0-9])?')
_BYTES_SENT = re.compile(r'^Total bytes sent: ([0-9,]+)$', re.MULTILINE)
# Set on the client's TCP socket (plain transport): no Nagle delay.
SOCKET_OPTIONS = 'TCP_NODELAY'
# One --info=progress2 update: bytes so far and percent of the whole.
_PROGRESS = re.compile(rb'^\s*([0-9,]+)\s+([0-9]{1,3})%')


# rsync dies with the nova-compute thread that runs it (util-linux's
# setpriv sets PR_SET_PDEATHSIG, kept across its exec of rsync; same PID,
# so Nova's job tracker still stops it): a nova-compute killed mid-push
# leaves no orphan push that would write the destination's copy again
# after the restart's recovery removed it.
DIE_WITH_PARENT = ('setpriv', '--pdeathsig', 'KILL')


def parse_progress(update):
    """``(bytes_done, percent)`` of one rsync progress2 update, or None."""
    match = _PROGRESS.match(update)
    if match is None:
        return None
    return int(match.group(1).replace(b',', b'')), int(match.group(2))


def remote_path(*components):
    """Join validated components into a path inside the rsync module."""
    if not components:
        raise InvalidRemotePath(component='', reason='no path given')
    for component in components:
        if not isinstance(component, str) or not _COMPONENT.fullmatch(
                component):
            raise InvalidRemotePath(
                component=component,
                reason='only letters, digits, ".", "_" and "-", not '
                       'starting with "." or "-"')
    return '/'.join(components)


def _url_host(host):
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host or ''):
            raise InvalidRemotePath(
                component=host, reason='not a host name or address') from None
        return host
    return f'[{address}]' if address.version == 6 else str(address)


class RsyncDaemonClient:
    """Push files to one host's rsync daemon module.

    :param execute: processutils.execute or a stand-in (tests)
    """

    def __init__(self, host, port, module, user, password_file,
                 io_timeout=120, connect_timeout=15, bwlimit_kib=0,
                 fsync=True, execute=processutils.execute,
                 base_module='nova_base', tls_client_config=None):
        """``tls_client_config``: stunnel's client configuration that
        reaches the peer over TLS (rsync_tls.client_config); None:
        rsync's own TCP connection."""
        self.target = f'{host}:{port}/{module}'
        self._base_url = (f'rsync://{user}@{_url_host(host)}:{port}/'
                          f'{remote_path(module)}')
        self.base_target = f'{host}:{port}/{base_module}'
        self._image_cache_url = (f'rsync://{user}@{_url_host(host)}:{port}/'
                                 f'{remote_path(base_module)}')
        self._password_file = password_file
        self._connection_args = [f'--timeout={io_timeout}',
                          f'--contimeout={connect_timeout}']
        if tls_client_config is None:
            # rsync's protocol exchanges small messages both ways; with
            # Nagle each exchange waited for the peer's delayed ACK
            # (40 ms, three times per connection: 0.1 s of every push).
            # Through stunnel (TLS) rsync talks to a pipe and stunnel
            # sets TCP_NODELAY itself.
            self._connection_args.append(f'--sockopts={SOCKET_OPTIONS}')
        self._push_args = ['--fsync'] if fsync else []
        if bwlimit_kib:
            self._push_args.append(f'--bwlimit={int(bwlimit_kib)}')
        self._execute = execute
        self._tls_client_config = tls_client_config

    @classmethod
    def from_conf(cls, conf, host):
        opts = conf.novaext
        tls_client_config = None
        if opts.rsync_transport == 'tls':
            rsync_tls.check_files(opts.rsync_tls_cert_file,
                                  opts.rsync_tls_key_file,
                                  opts.rsync_tls_ca_file)
            tls_client_config = rsync_tls.client_config(
                host, opts.rsync_tls_port, opts.rsync_tls_cert_file,
                opts.rsync_tls_key_file, opts.rsync_tls_ca_file)
        return cls(host, opts.rsync_port, opts.rsync_module,
                   opts.rsync_auth_user, opts.rsync_password_file,
                   bwlimit_kib=opts.rsync_bwlimit_kib,
                   base_module=opts.rsync_base_module,
                   tls_client_config=tls_client_config)

    def url(self, *components, directory=False):
        path = remote_path(*components)
        return f'{self._base_url}/{path}' + ('/' if directory else '')

    def _run(self, *args, on_progress=None, on_execute=None,
             on_completion=None, target=None):
        """Run rsync with ``args``; ``on_execute(process)`` and
        ``on_completion(process)`` as processutils.execute calls them
        (Nova's job tracker registers the PID so deleting the instance
        stops the transfer). ``target`` names the module in errors
        (default: the instances module)."""
        target = target or self.target
        if not os.path.isfile(self._password_file):
            raise RsyncTransferError(
                target=target,
                reason=f'password file {self._password_file} is missing')
        cmd = (*DIE_WITH_PARENT, 'rsync',
               f'--password-file={self._password_file}',
               *self._connection_args, *args)
        hooks = {k: v for k, v in (('on_execute', on_execute),
                                   ('on_completion', on_completion)) if v}
        with self._transport_env() as env:
            if env:
                # processutils hands env_variables to the process as its
                # whole environment.
                hooks['env_variables'] = dict(os.environ, **env)
            return self._run_rsync(cmd, target, on_progress, hooks)

    @contextlib.contextmanager
    def _transport_env(self):
        """Environment rsync needs for the transport: with TLS, a
        private stunnel client config for this transfer."""
        if self._tls_client_config is None:
            yield {}
            return
        with tempfile.TemporaryDirectory(prefix='novaext-tls-') as private:
            config = os.path.join(private, 'client.conf')
            with open(os.open(config, os.O_WRONLY | os.O_CREAT, 0o600),
                      'w') as f:
                f.write(self._tls_client_config)
            yield {'RSYNC_CONNECT_PROG': rsync_tls.connect_program(config)}

    def _run_rsync(self, cmd, target, on_progress, hooks):
        try:
            if on_progress is None:
                out, _err = self._execute(*cmd, **hooks)
            else:
                out = _execute_streaming(cmd, on_progress, **hooks)
        except processutils.ProcessExecutionError as e:
            reason = (e.stderr or '').strip().splitlines()
            raise RsyncTransferError(
                target=target,
                reason=f'exit code {e.exit_code}: '
                       f'{reason[0] if reason else e.description}') from e
        return out

    def make_dir(self, *components):
        """Create the directory ``components`` (and its parents) remotely."""
        with tempfile.TemporaryDirectory() as empty:
            self._run('--mkpath', '--dirs', empty + '/',
                      self.url(*components, directory=True))

    def push(self, local_path, *components, sparse=False,
             on_progress=None, on_execute=None, on_completion=None):
        """Copy ``local_path`` to ``components`` in the module.

        The file is on the peer's disk (fsync'd) when this returns, and
        identical to ``local_path`` as it was read (rsync checks the
        whole file's checksum, and sends it again on a mismatch).

        :param sparse: keep holes (raw disks) instead of writing zeros
        :param on_progress: called as ``on_progress(bytes_done,
            percent=percent)`` as rsync reports progress, from this
            thread; what it raises stops the push (rsync killed) and is
            raised from here
        :param on_execute, on_completion: called with the rsync process
            when it starts and ends (see ``_run``)
        :returns: bytes rsync sent over the wire
        """
        args = ['--times', '--perms', '--inplace', '--stats',
                *self._push_args]
        if sparse:
            args.remove('--inplace')
            args.append('--sparse')
        if on_progress is not None:
            args += ['--info=progress2', '--outbuf=line']
        out = self._run(*args, local_path, self.url(*components),
                        on_progress=on_progress, on_execute=on_execute,
                        on_completion=on_completion)
        return self._log_sent(local_path, components, out)

    def push_tree(self, local_dir, *components, on_execute=None,
                  on_completion=None):
        """Copy the directory tree ``local_dir`` to ``components`` (made
        with its parents), fsync'd, keeping modes and times. Symlinks are
        not followed and not sent.

        :returns: bytes rsync sent over the wire
        """
        out = self._run('--recursive', '--times', '--perms', '--mkpath',
                        '--no-links', '--stats', *self._push_args,
                        local_dir.rstrip('/') + '/',
                        self.url(*components, directory=True),
                        on_execute=on_execute, on_completion=on_completion)
        return self._log_sent(local_dir, components, out)

    def _log_sent(self, local_path, components, out):
        match = _BYTES_SENT.search(out)
        sent = int(match.group(1).replace(',', '')) if match else 0
        LOG.info('Pushed %(src)s to %(target)s/%(dst)s: %(sent)d bytes sent',
                 {'src': local_path, 'target': self.target,
                  'dst': remote_path(*components), 'sent': sent})
        return sent

    def create_empty_file(self, *components):
        """Create an empty file at ``components`` (parents included)."""
        with tempfile.NamedTemporaryFile() as empty:
            self._run('--mkpath', empty.name, self.url(*components))

    def remove(self, *components):
        """Remove the file or directory tree at ``components``.

        An rsync daemon has no delete command: an empty directory is
        synced onto the module root with --delete and a filter that
        includes only this path (and walks its parents), so nothing else
        can be touched: excluded files are never deleted.
        """
        path = remote_path(*components)
        parents = [f'--include=/{remote_path(*components[:i])}/'
                   for i in range(1, len(components))]
        with tempfile.TemporaryDirectory() as empty:
            self._run('--recursive', '--delete', *parents,
                      f'--include=/{path}', f'--include=/{path}/***',
                      '--exclude=*', empty + '/', f'{self._base_url}/')

    def pull_base(self, local_path, name, on_progress=None):
        """Copy base ``name`` from the peer's read-only base module to
        ``local_path``, sparse.

        :param on_progress: as for ``push``
        :returns: bytes rsync received over the wire
        """
        args = ['--times', '--sparse', '--stats']
        if on_progress is not None:
            args += ['--info=progress2', '--outbuf=line']
        out = self._run(*args,
                        f'{self._image_cache_url}/{remote_path(name)}',
                        local_path, target=self.base_target,
                        on_progress=on_progress)
        match = re.search(r'^Total bytes received: ([0-9,]+)$', out,
                          re.MULTILINE)
        received = int(match.group(1).replace(',', '')) if match else 0
        LOG.info('Pulled %(target)s/%(src)s to %(dst)s: %(n)d bytes',
                 {'target': self.base_target, 'src': name,
                  'dst': local_path, 'n': received})
        return received


def _execute_streaming(cmd, on_progress, on_execute=None,
                       on_completion=None, env_variables=None):
    """Run ``cmd``, feeding its progress updates to ``on_progress``.

    processutils.execute returns output only when the process ends; a
    progress report needs it as it comes, hence subprocess here. Raises
    ProcessExecutionError like processutils on a non-zero exit;
    ``on_execute``/``on_completion`` are called with the process as
    processutils calls them.
    """
    with tempfile.TemporaryFile() as err, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err,
            stdin=subprocess.DEVNULL, env=env_variables) as proc:
        if on_execute:
            on_execute(proc)
        try:
            out = _read_progress(proc, on_progress)
        except BaseException:
            # on_progress stopped the transfer (or it was interrupted).
            proc.kill()
            raise
        finally:
            if on_completion:
                on_completion(proc)
        returncode = proc.returncode
        err.seek(0)
        stderr = err.read().decode(errors='replace')
    stdout = out.decode(errors='replace')
    if returncode != 0:
        raise processutils.ProcessExecutionError(
            stdout=stdout, stderr=stderr, exit_code=returncode,
            cmd=' '.join(cmd))
    return stdout


def _read_progress(proc, on_progress):
    """Read ``proc``'s stdout to its end and exit, feeding progress."""
    out = bytearray()
    pending = b''
    while chunk := proc.stdout.read1(65536):
        out += chunk
        *updates, pending = re.split(rb'[\r\n]', pending + chunk)
        for update in updates:
            progress = parse_progress(update)
            if progress is not None:
                done, percent = progress
                on_progress(done, percent=percent)
    proc.wait()
    return out
