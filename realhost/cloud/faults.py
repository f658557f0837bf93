"""Faults put into a running cloud's compute host, the way an operator
meets them, and the restarts that recover from them.

Every process touched here is one the cloud recorded by PID (its
nova-compute, its rsync daemon) or a guest's QEMU whose PID libvirt
recorded in the host's /run/libvirt; nothing is found by name. A process
started again runs inside the host's mount and UTS namespaces (entered
through its virtlogd, which lives as long as the host), with the argv and
environment the stopped one had, so it is the same service with the
same configuration, as a service manager would restart it.
"""

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time

import libvirt

from novaext.rsync import pidfile
from realhost.cloud import processes

NOVA_COMPUTE_UP = 'Final resource view'


def _argv_env(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
        argv = [a.decode() for a in f.read().split(b'\0') if a]
    with open(f'/proc/{pid}/environ', 'rb') as f:
        env = dict(item.decode().split('=', 1)
                   for item in f.read().split(b'\0') if b'=' in item)
    return argv, env


# The extra config files of start_nova_compute are named so.
FAULT_CONFIG_PREFIX = 'novaext-faults-'


def _without_fault_configs(argv):
    """``argv`` without the --config-file pairs a fault test added."""
    kept = []
    for arg in argv:
        if kept and kept[-1] == '--config-file' and \
                os.path.basename(arg).startswith(FAULT_CONFIG_PREFIX):
            kept.pop()
            continue
        kept.append(arg)
    return kept


def _wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise TimeoutError(f'process {pid} still alive after {timeout} s')


def _kill(pid, with_descendants=False):
    """SIGKILL ``pid`` (and every process below it) and wait until gone."""
    victims = processes.descendants(pid) if with_descendants else [pid]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for victim in victims:
        _wait_gone(victim)


_event_loop = None


def _libvirt_events_running():
    """libvirt's default event loop, running in a daemon thread of this
    process (registered before any connection that subscribes)."""
    global _event_loop
    if _event_loop is None:
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        _event_loop = threading.Thread(target=run, daemon=True,
                                       name='libvirt-events')
        _event_loop.start()


def limit_image_service(cloud, kib_per_s):
    """Slow image data to and from the cloud's image service to
    ``kib_per_s`` (0: no limit) from the next request on: a base's
    download and a snapshot's upload last long enough for a fault."""
    from realhost.cloud import wsgi
    with open(os.path.join(cloud.root, 'etc', wsgi.IMAGE_BWLIMIT_FILE),
              'w') as f:
        f.write(f'{kib_per_s}\n')


class HostFaults:
    """The faults of one compute host (a realhost.cloud.access.Host)."""

    def __init__(self, host):
        self.host = host
        self.pids = os.path.join(host.dir, 'pids')
        self._compute = processes.Daemon(None, 'nova-compute', self.pids,
                                         os.path.join(host.dir, 'logs'))
        self._compute_cmd = None
        # One more --config-file for nova-compute's restarts (options a
        # test needs, e.g. a slowed link), named FAULT_CONFIG_PREFIX...
        self.extra_config = None

    # -- what runs there ----------------------------------------------

    def libvirtd_pid(self):
        return processes.Daemon(None, 'libvirtd', self.pids,
                                self.pids).pid()

    def rsyncd_pid(self):
        return processes.Daemon(None, 'rsyncd', self.pids, self.pids).pid()

    def qemu_pid(self, server):
        """The guest's QEMU PID as libvirt recorded it, or None."""
        anchor = self.virtlogd_pid()
        path = (f'/proc/{anchor}/root/run/libvirt/qemu/'
                f'{server.instance_name}.pid')
        try:
            with open(path) as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid and os.path.exists(f'/proc/{pid}') else None

    def virtlogd_pid(self):
        return processes.Daemon(None, 'virtlogd', self.pids,
                                self.pids).pid()

    def _in_host(self, argv):
        # virtlogd: in the host's namespaces, and alive when libvirtd is
        # the process being restarted.
        return ['nsenter', f'--target={self.virtlogd_pid()}', '--mount',
                '--uts', '--', *argv]

    # -- nova-compute -------------------------------------------------

    def kill_nova_compute(self, with_children=False):
        """SIGKILL nova-compute. Its children (an rsync push, a qemu-img
        commit) are left as an OOM kill leaves them, or, ``with_children``,
        killed with it as a host crash kills them."""
        pid = self._compute.pid()
        if pid is None:
            raise RuntimeError(f'nova-compute is not running on '
                               f'{self.host.name}')
        self._compute_cmd = _argv_env(pid)
        _kill(pid, with_descendants=with_children)

    @contextlib.contextmanager
    def nova_compute_frozen_on_secret(self, secret_uuid):
        """Within the block, nova-compute is stopped (SIGSTOP) the moment
        libvirt reports the secret ``secret_uuid`` defined: the instant a
        volume driver's connect_volume has made it, before Nova's next
        step. Yields a threading.Event set once that happened; on leaving
        the block a process still stopped is left stopped (kill it) or,
        if the event never came, nothing was touched."""
        pid = self._compute.pid()
        if pid is None:
            raise RuntimeError(f'nova-compute is not running on '
                               f'{self.host.name}')
        frozen = threading.Event()

        def on_secret(conn, secret, event, detail, opaque):
            if (event == libvirt.VIR_SECRET_EVENT_DEFINED and
                    secret.UUIDString() == secret_uuid and
                    not frozen.is_set()):
                os.kill(pid, signal.SIGSTOP)
                frozen.set()

        _libvirt_events_running()
        conn = self.host.libvirt()
        callback = conn.secretEventRegisterAny(
            None, libvirt.VIR_SECRET_EVENT_ID_LIFECYCLE, on_secret, None)
        try:
            yield frozen
        finally:
            conn.secretEventDeregisterAny(callback)
            conn.close()

    def nova_compute_children(self):
        """Every live process below nova-compute."""
        pid = self._compute.pid()
        return [] if pid is None else processes.descendants(pid)[1:]

    def start_nova_compute(self, timeout=120):
        """Start nova-compute again as the cloud ran it, with
        ``extra_config`` read last, and wait until it has initialised its
        instances (Nova's init_host) and reported its node.

        :returns: seconds from start to that report
        """
        if self._compute_cmd is None:
            raise RuntimeError('start_nova_compute without a kill first')
        argv, env = self._compute_cmd
        argv = _without_fault_configs(argv)
        if self.extra_config is not None:
            argv += ['--config-file', self.extra_config]
        log = self.host.log('nova-compute')
        offset = os.path.getsize(log)
        started = time.monotonic()
        with open(log, 'ab') as out:
            proc = subprocess.Popen(
                self._in_host(argv), stdin=subprocess.DEVNULL, stdout=out,
                stderr=out, env=env, start_new_session=True)
        self._compute.record(proc.pid)
        deadline = started + timeout
        while True:
            with open(log, errors='replace') as f:
                f.seek(offset)
                text = f.read()
            if NOVA_COMPUTE_UP in text:
                return time.monotonic() - started
            if proc.poll() is not None:
                raise RuntimeError(f'nova-compute on {self.host.name} '
                                   f'exited: {text[-3000:]}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'nova-compute on {self.host.name} not '
                                   f'up after {timeout} s')
            time.sleep(0.5)

    def ensure_nova_compute(self):
        """Start nova-compute if a fault here left it dead; returns True
        when it had to."""
        if self._compute.pid() is not None or self._compute_cmd is None:
            return False
        self.start_nova_compute()
        return True

    def restart_nova_compute(self):
        """SIGKILL and start again (the operator's restart of a service
        that does not drain in time)."""
        self.kill_nova_compute()
        return self.start_nova_compute()

    # -- the rsync daemon ---------------------------------------------

    def kill_rsyncd(self, with_transfers=False):
        """SIGKILL the rsync daemon: its listener only (the transfers it
        forked run to their end), or ``with_transfers`` as a service
        manager stopping it kills its whole group."""
        pid = self.rsyncd_pid()
        if pid is None:
            raise RuntimeError(f'no rsync daemon on {self.host.name}')
        _kill(pid, with_descendants=with_transfers)

    def start_rsyncd(self):
        """``novaext-rsyncd start`` with nova-compute's config files."""
        pid = self._compute.pid()
        argv, env = _argv_env(pid) if pid else self._compute_cmd
        configs = [a for i, a in enumerate(argv)
                   if i and argv[i - 1] == '--config-file']
        rsyncd = os.path.join(os.path.dirname(argv[0]), 'novaext-rsyncd')
        cmd = [rsyncd]
        for config in configs[:2]:
            cmd += ['--config-file', config]
        out = subprocess.run(self._in_host(cmd + ['start']), env=env,
                             capture_output=True, text=True, check=True)
        pid_file = os.path.join(self.pids, 'rsyncd.pid')
        with open(pid_file, 'w') as f:
            f.write(out.stdout.strip().splitlines()[-1] + '\n')
        if pidfile.live_pid(pid_file, ('rsync',)) is None:
            raise RuntimeError(f'no rsync daemon on {self.host.name} after '
                               f'novaext-rsyncd start: {out.stdout}')

    # -- libvirtd -----------------------------------------------------

    def restart_libvirtd(self, timeout=30):
        """The operator's ``systemctl restart libvirtd``: SIGTERM, then
        started again as the host started it; the guests' QEMUs run on.

        :returns: seconds until its socket answers again
        """
        pid = self.libvirtd_pid()
        if pid is None:
            raise RuntimeError(f'no libvirtd on {self.host.name}')
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid)
        started = time.monotonic()
        subprocess.run(self._in_host(
            ['libvirtd', '-d', '--listen', '-p',
             os.path.join(self.pids, 'libvirtd.pid')]), check=True)
        while True:
            try:
                self.host.libvirt().close()
                return time.monotonic() - started
            except Exception:
                if time.monotonic() - started > timeout:
                    raise TimeoutError(
                        f'libvirtd on {self.host.name} not up') from None
                time.sleep(0.1)

    # -- the host -----------------------------------------------------

    def crash(self, server):
        """The host loses power as far as ``server`` can tell: its QEMU
        and nova-compute die at once (libvirtd, standing for the host's
        boot, comes back with the host)."""
        victims = [pid for pid in (self.qemu_pid(server),
                                   self._compute.pid()) if pid]
        self._compute_cmd = _argv_env(self._compute.pid())
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        for pid in victims:
            _wait_gone(pid)

    # -- the link -------------------------------------------------------

    def limit_ssh_link(self, kib_per_s):
        """Slow what the stock profile's sshd here receives to
        ``kib_per_s`` (0: no limit), the stand-in for a slow link that
        novaext's pushes get from [novaext]rsync_bwlimit_kib."""
        path = os.path.join(self.host.dir, 'ssh', 'bwlimit-kib')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(f'{kib_per_s}\n')

    # -- space ----------------------------------------------------------

    def seen_inside(self, path):
        """``path`` as this host's processes see it (its mount namespace),
        read from outside."""
        return f'/proc/{self.virtlogd_pid()}/root{path}'

    @contextlib.contextmanager
    def small_file_system(self, path, size_mib):
        """A fresh ext4 file system of ``size_mib`` mounted at ``path``
        (made) in this host's mount namespace only, so everything of this
        host writing there meets a real ENOSPC once it is full. Yields
        where it is seen from outside (seen_inside); unmounted and
        removed at the end, with what is in it."""
        image = tempfile.NamedTemporaryFile(
            dir=self.host.dir, prefix='novaext-faults-fs-', suffix='.img',
            delete=False)
        image.truncate(size_mib * 1024 * 1024)
        image.close()
        subprocess.run(['mkfs.ext4', '-q', '-F', '-m', '0', image.name],
                       check=True, capture_output=True)
        subprocess.run(self._in_host(['mkdir', '-p', path]), check=True)
        subprocess.run(self._in_host(['mount', '-o', 'loop', image.name,
                                      path]), check=True,
                       capture_output=True)
        try:
            yield self.seen_inside(path)
        finally:
            subprocess.run(self._in_host(['umount', '-l', path]),
                           check=True, capture_output=True)
            subprocess.run(self._in_host(['rm', '-rf', path]), check=True)
            os.unlink(image.name)

    @contextlib.contextmanager
    def ballast(self, path, size):
        """``size`` bytes allocated (fallocate) in a file under ``path``
        (a directory of this host, seen from outside), so its file system
        has that much less free; removed at the end."""
        fd, name = tempfile.mkstemp(dir=path, prefix='novaext-faults-ballast-')
        try:
            os.posix_fallocate(fd, 0, size)
            yield name
        finally:
            os.close(fd)
            os.unlink(name)
