"""Daemons this package starts: by recorded PID, stopped by that PID only."""

import os
import signal
import subprocess
import time


def _boot_time():
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('btime '):
                return int(line.split()[1])
    raise RuntimeError('no btime in /proc/stat')


def _started_at(ticks):
    """Wall-clock time of a process's start, from /proc/PID/stat's
    starttime (clock ticks since boot)."""
    return _boot_time() + ticks / os.sysconf('SC_CLK_TCK')


class Daemon:
    """One process of the cloud, known by ``<pids>/<name>.pid``."""

    def __init__(self, state, name, pid_dir=None, log_dir=None):
        self.name = name
        self.pid_file = os.path.join(pid_dir or state.pids, name + '.pid')
        self.log_file = os.path.join(log_dir or state.logs, name + '.log')

    def pid(self):
        """The recorded PID when that process is alive and is the one
        recorded, else None. A process that started after its PID was
        recorded is another one that got the number again (after a
        reboot, or in another PID namespace) and is never ours."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip() or 0)
            recorded = os.stat(self.pid_file).st_mtime
        except (FileNotFoundError, ValueError):
            return None
        try:
            with open(f'/proc/{pid}/stat') as f:
                # "pid (comm) state ... starttime (field 22) ..."
                fields = f.read().rsplit(')', 1)[1].split()
        except (FileNotFoundError, IndexError):
            return None
        if fields[0] == 'Z':    # a zombie has exited
            return None
        if _started_at(int(fields[19])) > recorded + 2:
            return None
        return pid

    def start(self, argv, env=None, cwd=None):
        """Start ``argv`` in its own session, output to the log; record it.

        :returns: the PID
        """
        with open(self.log_file, 'ab') as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, **(env or {})), cwd=cwd,
                start_new_session=True)
        with open(self.pid_file, 'w') as f:
            f.write(f'{proc.pid}\n')
        return proc.pid

    def record(self, pid):
        """Record a PID the daemon wrote itself (it forked)."""
        with open(self.pid_file, 'w') as f:
            f.write(f'{pid}\n')

    def stop(self, timeout=30):
        """SIGTERM the recorded PID, SIGKILL it after ``timeout`` s.

        :returns: True when a process was stopped
        """
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass  # the daemon removed its own (libvirtd, virtlogd)
        return True

    def log_tail(self, lines=20):
        try:
            with open(self.log_file, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ''


class Died(Exception):
    """What was waited for will never come (its process is gone)."""


def wait_for(what, check, timeout=60, interval=0.5):
    """Call ``check`` until it returns true; raise TimeoutError naming
    ``what`` after ``timeout`` seconds, or Died at once when ``check``
    raises it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Died:
            raise
        except Exception:  # noqa: S110 - not up yet, whatever it says
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what} not up after {timeout} s')
        time.sleep(interval)


def descendants(pid):
    """``pid`` and every live process below it."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def pss_kib(pids):
    """The processes' proportional set size (shared pages divided among
    their users), in KiB; processes gone meanwhile count 0."""
    total = 0
    for pid in set(pids):
        try:
            with open(f'/proc/{pid}/smaps_rollup') as f:
                for line in f:
                    if line.startswith('Pss:'):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total
