"""Resize disk move: novaext's path beside the flatten path and the floor.

Run from the repo root in the project's environment:

    python benchmarks/resize.py [--quick] [--repeat 3] [--json FILE]

For each base size (1, 2, 4 GiB of data) and overlay size (50, 200, 800
MiB written), on the same files in one run:
- novaext: push the qcow2 overlay as it is to a real rsync daemon
  (started with novaext-rsyncd), then `qemu-img rebase -u` onto the
  destination's base;
- flatten: the path the seeds replaced, `qemu-img convert` of overlay +
  base into one qcow2, then a copy of that file;
- floor: dd of the same bytes novaext sends (the overlay file).
Not yet here: Nova 34's own path (the overlay over ssh, needing sshd).
--quick runs only the 2 GiB base / 200 MiB overlay case.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from novaext.virt import rsync_client  # noqa: E402

MiB = 1024 ** 2


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_base(path, gib):
    run('qemu-img', 'create', '-q', '-f', 'raw', path, f'{gib}G')
    commands = []
    for offset in range(0, gib * 1024, 1024):
        commands += ['-c', f'write -P 0x5a {offset}M 1024M']
    run('qemu-io', '-f', 'raw', *commands, path)


def make_overlay(path, base, written_mib):
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw',
        path)
    commands = []
    for offset in range(0, written_mib, 256):
        length = min(256, written_mib - offset)
        commands += ['-c', f'write -P 0x33 {offset}M {length}M']
    run('qemu-io', '-f', 'qcow2', *commands, path)


def timed(fn):
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def start_daemon(work, instances):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    secrets = os.path.join(work, 'secrets')
    with open(os.open(secrets, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
        f.write('nova:bench-secret\n')
    password = os.path.join(work, 'password')
    with open(os.open(password, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
        f.write('bench-secret')
    conf = os.path.join(work, 'nova.conf')
    with open(conf, 'w') as f:
        f.write(f'[DEFAULT]\ninstances_path = {instances}\n[novaext]\n'
                f'rsync_port = {port}\nrsync_address = 127.0.0.1\n'
                f'rsync_secrets_file = {secrets}\nrsync_uid = root\n'
                f'rsync_gid = root\nrsyncd_config_file = {work}/rsyncd.conf\n'
                f'rsyncd_pid_file = {work}/rsyncd.pid\n')
    script = os.path.join(os.path.dirname(sys.executable), 'novaext-rsyncd')
    pid = int(subprocess.run([script, '--config-file', conf, 'start'],
                             check=True, capture_output=True,
                             text=True).stdout)
    client = rsync_client.RsyncDaemonClient(
        '127.0.0.1', port, 'nova_instances', 'nova', password)
    return pid, client


def one_case(work, client, dest, base, base_gib, overlay_mib, repeat):
    overlay = os.path.join(work, 'overlay.qcow2')
    make_overlay(overlay, base, overlay_mib)
    allocated = os.stat(overlay).st_blocks * 512
    dest_base = os.path.join(dest, '_base', 'b' * 40)
    rows = []

    def novaext():
        sent = client.push(overlay, 'inst', 'disk')
        run('qemu-img', 'rebase', '-u', '-F', 'raw', '-b', dest_base,
            os.path.join(dest, 'inst', 'disk'))
        return sent

    def flatten():
        flat = os.path.join(work, 'flat.qcow2')
        run('qemu-img', 'convert', '-O', 'qcow2', overlay, flat)
        shutil.copyfile(flat, os.path.join(dest, 'inst', 'flat'))
        size = os.path.getsize(flat)
        os.unlink(flat)
        return size

    def floor():
        run('dd', f'if={overlay}', f'of={os.path.join(dest, "floor")}',
            'bs=4M', 'status=none')
        return os.path.getsize(overlay)

    for name, fn in (('novaext', novaext), ('flatten', flatten),
                     ('floor', floor)):
        runs = []
        for _ in range(repeat):
            for leftover in ('inst/disk', 'inst/flat', 'floor'):
                path = os.path.join(dest, leftover)
                if os.path.exists(path):
                    os.unlink(path)
            runs.append(timed(fn))
        rows.append({'path': name, 'base_gib': base_gib,
                     'overlay_mib': overlay_mib,
                     'seconds_min': min(r[0] for r in runs),
                     'seconds_median': statistics.median(r[0] for r in runs),
                     'bytes_sent': runs[-1][1],
                     'overlay_allocated_bytes': allocated})
    os.unlink(overlay)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--json', metavar='FILE')
    args = parser.parse_args()
    if shutil.which('rsync') is None or shutil.which('qemu-img') is None:
        print('needs rsync and qemu-img: run scripts/install-host-packages',
              file=sys.stderr)
        return 2
    cases = ([(2, 200)] if args.quick else
             [(2, 50), (2, 200), (2, 800), (1, 200), (4, 200)])
    rows = []
    with tempfile.TemporaryDirectory(prefix='novaext-resize-',
                                     dir='/var/tmp') as work:
        dest = os.path.join(work, 'dest')
        os.makedirs(os.path.join(dest, '_base'))
        pid, client = start_daemon(work, dest)
        client.make_dir('inst')
        try:
            for base_gib in sorted({b for b, _ in cases}):
                base = os.path.join(work, 'base.raw')
                make_base(base, base_gib)
                os.link(base, os.path.join(dest, '_base', 'b' * 40))
                for b, overlay_mib in cases:
                    if b == base_gib:
                        rows += one_case(work, client, dest, base, base_gib,
                                         overlay_mib, args.repeat)
                os.unlink(os.path.join(dest, '_base', 'b' * 40))
                os.unlink(base)
        finally:
            os.kill(pid, 15)

    print(f'\nresize disk move, min/median of {args.repeat} '
          f'({os.cpu_count()} cores, loopback)')
    print(f'{"path":>8} {"base GiB":>8} {"ovl MiB":>8} {"min s":>7} '
          f'{"median s":>9} {"sent MiB":>9} {"sent/alloc":>10} '
          f'{"x floor":>8}')
    floors = {(r['base_gib'], r['overlay_mib']): r['seconds_median']
              for r in rows if r['path'] == 'floor'}
    for r in rows:
        floor = floors[(r['base_gib'], r['overlay_mib'])]
        print(f'{r["path"]:>8} {r["base_gib"]:>8} {r["overlay_mib"]:>8} '
              f'{r["seconds_min"]:>7.2f} {r["seconds_median"]:>9.2f} '
              f'{r["bytes_sent"] / MiB:>9.1f} '
              f'{r["bytes_sent"] / r["overlay_allocated_bytes"]:>10.2f} '
              f'{r["seconds_median"] / floor:>8.1f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'cases': rows}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
