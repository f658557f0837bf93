"""The rsync daemon as a service's main process (``novaext-rsyncd run``).

Under systemd (``Type=simple``) or as a container's command, the
process the service manager started must stay, log to its stdout and
stderr, and stop everything it started when it gets SIGTERM. ``start``
(rsync forks into the background, stunnel too) suits neither: the
service's main process exits at once and the manager stops the unit or
the container, taking the daemon with it.

``ForegroundDaemon.run`` writes the configuration, starts ``rsync
--daemon --no-detach`` (and, with ``rsync_transport = tls``, stunnel
with ``foreground = yes``), each in a process group of its own, and
waits. SIGTERM or SIGINT: each group is sent SIGTERM (rsync's
per-connection children with it), then SIGKILL after ``stop_timeout``;
exit status 0. A child that exits by itself: the others are stopped the
same way and the status is 1, so that the service manager restarts the
whole.
"""

import os
import signal
import subprocess
import threading

from oslo_log import log as logging

from novaext.exception import AlreadyRunning
from novaext.rsync import daemon as rsync_daemon
from novaext.rsync import tls as rsync_tls

LOG = logging.getLogger(__name__)


def commands(settings):
    """The foreground processes for ``settings``: (name, argv), written
    configuration files included."""
    rsync_daemon.write_config(settings)
    found = [('rsync', ['rsync', '--daemon', '--no-detach',
                        f'--config={settings.config_file}',
                        '--log-file=/dev/stderr'])]
    if settings.transport == 'tls':
        rsync_tls.check_files(settings.tls_cert_file, settings.tls_key_file,
                              settings.tls_ca_file)
        fd = os.open(settings.stunnel_config_file,
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, 'w') as f:
            f.write(rsync_tls.render_stunnel_config(settings,
                                                    foreground=True))
        found.append(('stunnel', ['stunnel',
                                  settings.stunnel_config_file]))
    return found


class ForegroundDaemon:
    """Runs the daemon's processes until a signal or one of them ends."""

    def __init__(self, settings, stop_timeout=10.0, popen=subprocess.Popen):
        self.settings = settings
        self.stop_timeout = stop_timeout
        self._popen = popen
        self._stop = threading.Event()
        self.children = {}

    def _refuse_a_second_daemon(self):
        pid = rsync_daemon.running_pid(self.settings)
        if pid is not None and pid != os.getpid():
            raise AlreadyRunning(
                f'an rsync daemon runs already (pid {pid}, pid file '
                f'{self.settings.pid_file}): stop it first')
        if not os.path.exists(self.settings.secrets_file):
            raise rsync_daemon.RsyncDaemonConfigError(
                f'secrets file {self.settings.secrets_file} does not exist')

    def stop(self, *_signal_args):
        self._stop.set()

    def run(self):
        """Start the processes and wait; returns the exit status."""
        self._refuse_a_second_daemon()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)
        for name, argv in commands(self.settings):
            self.children[name] = self._popen(argv, start_new_session=True)
            LOG.info('Started %(name)s (pid %(pid)d): %(argv)s',
                     {'name': name, 'pid': self.children[name].pid,
                      'argv': ' '.join(argv)})
        ended = None
        while ended is None and not self._stop.wait(0.2):
            ended = next((n for n, p in self.children.items()
                          if p.poll() is not None), None)
        if ended is not None:
            LOG.error('%(name)s exited with status %(rc)s; stopping the '
                      'rest', {'name': ended,
                               'rc': self.children[ended].returncode})
        self._stop_children()
        return 0 if ended is None else 1

    def _stop_children(self):
        for proc in self.children.values():
            _signal_group(proc, signal.SIGTERM)
        for name, proc in self.children.items():
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                LOG.warning('%s did not stop on SIGTERM: killed', name)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for proc in self.children.values():
            # The group's other members (rsync's per-connection children)
            # outlive their leader by a moment at most.
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc, signum):
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
