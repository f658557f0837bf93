"""novaext.rsync.pidfile on real processes of this machine."""

import os
import subprocess

import pytest

from novaext.rsync import pidfile

# real processes
pytestmark = pytest.mark.host


def _comm(pid):
    with open(f'/proc/{pid}/comm') as f:
        return f.read().strip()


def test_a_live_process_of_the_named_command_is_the_daemon(tmp_path):
    proc = subprocess.Popen(['sleep', '30'])
    try:
        (tmp_path / 'pid').write_text(f'{proc.pid}\n')
        assert pidfile.live_pid(str(tmp_path / 'pid'), ('sleep',)) == \
            proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_recycled_pid_of_another_command_is_not(tmp_path):
    (tmp_path / 'pid').write_text(f'{os.getpid()}\n')
    assert _comm(os.getpid()) != 'rsync'
    assert pidfile.live_pid(str(tmp_path / 'pid'), ('rsync',)) is None


def test_a_zombie_is_not(tmp_path):
    """Killed, not yet reaped by its parent (this test)."""
    proc = subprocess.Popen(['sleep', '30'])
    proc.kill()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    try:
        (tmp_path / 'pid').write_text(f'{proc.pid}\n')
        assert pidfile.live_pid(str(tmp_path / 'pid'), ('sleep',)) is None
    finally:
        proc.wait()


def test_no_file_or_no_number_is_not(tmp_path):
    assert pidfile.live_pid(str(tmp_path / 'missing'), ('rsync',)) is None
    (tmp_path / 'pid').write_text('rsync\n')
    assert pidfile.live_pid(str(tmp_path / 'pid'), ('rsync',)) is None
