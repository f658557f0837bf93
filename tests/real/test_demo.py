"""The README's demo runs end to end on this machine and says so."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_demo_runs_every_step_and_exits_zero():
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, 'scripts', 'demo.py')],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    steps = re.findall(r'^\[(\d+)\] ', out.stdout, re.MULTILINE)
    outcomes = re.findall(r'^    (ok|FAILED)\b', out.stdout, re.MULTILINE)
    assert steps and len(outcomes) == len(steps), out.stdout
    assert set(outcomes) == {'ok'}, out.stdout
    assert 'demo finished' in out.stdout
    # The resize moved the overlay, not the 512 MiB base.
    moved = re.search(r'push the overlay.*?ok \([0-9.]+ s, ([0-9.]+) MiB',
                      out.stdout, re.DOTALL)
    assert moved and 100 < float(moved.group(1)) < 200, out.stdout
    # So did the delta snapshot, and the guest never paused for it.
    uploaded = re.search(r'live delta snapshot.*?ok \([0-9.]+ s, ([0-9.]+) '
                         r'MiB', out.stdout, re.DOTALL)
    assert uploaded and 100 < float(uploaded.group(1)) < 200, out.stdout
    assert 'guest running throughout' in out.stdout
