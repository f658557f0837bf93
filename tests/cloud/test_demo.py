"""scripts/demo's cloud cycle runs end to end through the openstack CLI
and moves only what the server wrote."""

import os
import re
import subprocess

from realhost.cloud import demo

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_cloud_demo_runs_every_step_and_moves_only_the_written_data(cloud):
    python = os.path.join(cloud.root, 'venv', 'bin', 'python')
    out = subprocess.run(
        [python, '-m', 'realhost.cloud.demo'], capture_output=True,
        text=True, timeout=900, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO,
                 PYTHONWARNINGS='ignore::DeprecationWarning'))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    steps = re.findall(r'^\[(\d+)\] ', out.stdout, re.MULTILINE)
    oks = re.findall(r'^    ok \(', out.stdout, re.MULTILINE)
    assert len(steps) == 9 and len(oks) == 9, out.stdout
    assert 'demo finished' in out.stdout
    written = demo.WRITE_MIB
    moved = [float(m) for m in re.findall(
        r'(?:uploaded|novaext pushed) ([0-9.]+) MiB', out.stdout)]
    # snapshot upload, resize push, cold-migration push: the server's
    # writes (plus qcow2 metadata), never the image's 256 MiB.
    assert len(moved) == 3, out.stdout
    assert all(written <= m < written + 4 for m in moved), moved
    assert 'ACTIVE throughout' in out.stdout
