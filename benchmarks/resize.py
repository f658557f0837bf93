"""Resize disk move: novaext's path beside Nova 34's, flatten and floors,
on three links.

Run from the repo root in the project's environment, as root:

    python benchmarks/resize.py [--quick] [--repeat 3] [--json FILE]
                                [--links loopback,1gbit,10gbit]

Links (benchmarks/links.py): loopback; and a veth pair into a network
namespace of the benchmark's own (198.18.<n>.0/30), shaped with tc tbf to
1 Gbit/s or 10 Gbit/s, removed afterwards. The destination's rsync
daemon, sshd and TCP sink listen in that namespace; the source side (this
process: novaext's client, Nova's copy) stays in the machine's, so every
path below crosses the same link.

For each base size (1, 2, 4 GiB of data) and overlay size (50, 200, 800
MiB written), on the same files in one run:
- novaext: push the qcow2 overlay as it is to a real rsync daemon
  (started with novaext-rsyncd), then `qemu-img rebase -u` onto the
  destination's base;
- nova34: Nova 34's own copy, ``nova.virt.libvirt.utils.copy_image`` with
  ``[libvirt]remote_filesystem_transport = rsync`` (rsync --sparse
  --compress over ssh) to a private sshd that this script starts; bytes
  are what the ssh client reports it sent;
- flatten: the path the seeds replaced, `qemu-img convert` of overlay +
  base into one qcow2, then that file over one TCP stream (tcp_floor);
- novaext-tls (loopback only): the same push over the TLS transport
  (``rsync_transport = tls``: stunnel in front of a second daemon on the
  same instances path, stunnel in client mode on the client,
  certificates checked both ways);
- tcp_floor: the overlay's bytes over one TCP stream with large buffers,
  fsync'd at the destination (benchmarks/tcp_floor.py): the floor of any
  copy over the link;
- floor: dd of the same bytes on the local disk (a reference column).
The overlay holds random (incompressible) data, as guest writes mostly
are. novaext and the floors write through to disk (rsync --fsync, dd
conv=fsync, the sink's fsync), as does flatten's copy; Nova's own copy
does not fsync. The base is present on the destination in every case.
--quick runs only the 2 GiB base / 200 MiB overlay case (on every link).

The downtime case (benchmarks/downtime.py, in the JSON's "downtime" list)
resizes a real guest end to end through novaext's driver with and
without pre-copy and through Nova 34's own, and times its downtime:
shutdown, the transfer after it, and the destination's start. Full runs:
every link of --links, overlays 200 and 800 MiB, the guest writing 0 or
50 MiB during the resize; --quick: 800 MiB, on 1gbit (or
--downtime-links). --downtime-only runs only it, --no-downtime skips it.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from realhost import runtime  # noqa: E402

# Before anything imports Nova's services (the downtime case runs its
# driver): native threads, libvirtd and friends started if need be.
PROBLEM = runtime.prepare()

from novaext.rsync import client as rsync_client  # noqa: E402
from novaext.rsync import tls as rsync_tls  # noqa: E402
from realhost import images  # noqa: E402
from realhost import rsyncd  # noqa: E402
from realhost import sshd  # noqa: E402
from realhost import tls  # noqa: E402
from realhost.timing import timed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import links  # noqa: E402
import tcp_floor  # noqa: E402

MiB = 1024 ** 2
# The destination's instance directory (the daemon takes uuid names only).
INSTANCE_DIR = '00000000-0000-0000-0000-00000000be11'


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_overlay(path, base, written_mib, random_file):
    """An overlay with ``written_mib`` MiB of random data, spread out."""
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw',
        path)
    chunks = range(0, written_mib, 16)
    virtual_mib = os.path.getsize(base) // MiB
    stride = max(16, virtual_mib // len(chunks) // 16 * 16)
    commands = []
    for i, offset in enumerate(chunks):
        length = min(16, written_mib - offset)
        commands += ['-c', f'write -s {random_file} {i * stride}M {length}M']
    run('qemu-io', '-f', 'qcow2', *commands, path)


def make_random_file(path):
    with open(path, 'wb') as f:
        f.write(os.urandom(16 * MiB))


def daemon_and_client(work, instances, tls_conf=None, link=None):
    """A daemon on ``instances`` (realhost.rsyncd); with ``tls_conf``
    ([novaext] TLS options) behind stunnel; on ``link``'s destination side
    (default loopback). Returns the PIDs to stop and a client."""
    link = link or links.Link('loopback')
    work = os.path.join(work, ('tls' if tls_conf else 'plain') + '-' +
                        link.name)
    os.makedirs(work)
    port = rsyncd.free_port()
    _cmd, pid = rsyncd.start_daemon(
        work, instances, port, address=link.dest_address,
        secret='bench-secret', hosts_allow=link.local_address,
        tls_conf=tls_conf, wrap=link.in_dest)
    password = os.path.join(work, 'password')
    with open(os.open(password, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
        f.write('bench-secret')
    pids = [pid]
    tls_client_config = None
    if tls_conf:
        with open(os.path.join(work, 'stunnel.pid')) as f:
            pids.append(int(f.read().strip()))
        tls_client_config = rsync_tls.client_config(
            '127.0.0.1', tls_conf['rsync_tls_port'],
            tls_conf['rsync_tls_cert_file'], tls_conf['rsync_tls_key_file'],
            tls_conf['rsync_tls_ca_file'])
    client = rsync_client.RsyncDaemonClient(
        link.dest_address, port, 'nova_instances', 'nova', password,
        tls_client_config=tls_client_config)
    return pids, client


class PrivateSshd:
    """sshd on a free 127.0.0.1 port with its own keys, for Nova's path.

    Nova's copy runs ``rsync ... 127.0.0.1:dest``; rsync reads the remote
    shell from RSYNC_RSH, which points ssh at this daemon and logs what
    the client sent.
    """

    def __init__(self, work, link):
        work = os.path.join(work, 'ssh-' + link.name)
        os.makedirs(work)
        self.work = work
        self.address = link.dest_address
        self.port = rsyncd.free_port()
        self.log = os.path.join(work, 'ssh-client.log')
        command, self.client_key = sshd.prepare(work, self.address,
                                                self.port)
        self.proc = subprocess.Popen(
            link.in_dest(command), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        sshd.wait_listening(self.address, self.port, self.proc)
        os.environ['RSYNC_RSH'] = (
            f'ssh -p {self.port} -i {self.client_key} -o BatchMode=yes '
            f'-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
            f'-o LogLevel=DEBUG1 -E {self.log}')

    def bytes_sent_last(self):
        """What the last ssh client said it sent (its DEBUG1 summary)."""
        with open(self.log) as f:
            sent = re.findall(r'Transferred: sent ([0-9]+)', f.read())
        os.unlink(self.log)
        return int(sent[-1])

    def stop(self):
        os.environ.pop('RSYNC_RSH', None)
        self.proc.terminate()
        self.proc.wait(10)


def nova34_copy(src, dest, host):
    """Nova 34's own remote copy of one disk (libvirt_utils.copy_image)."""
    from nova.virt.libvirt import utils as libvirt_utils
    libvirt_utils.copy_image(src, dest, host=host, compression=True)


def tcp_copy(link, src, dst):
    """``src`` to ``dst`` over ``link``: one TCP stream, fsync'd at the
    destination (tcp_floor.py's sink in the destination's namespace)."""
    port = rsyncd.free_port()
    sink = subprocess.Popen(
        link.in_dest([sys.executable, os.path.join(HERE, 'tcp_floor.py'),
                      'sink', link.dest_address, str(port), dst]),
        stdout=subprocess.PIPE, text=True)
    try:
        if sink.stdout.readline().strip() != 'ready':
            raise RuntimeError('tcp_floor sink did not start')
        return tcp_floor.send(link.dest_address, port, src)
    finally:
        sink.wait(30)


def one_case(work, link, client, tls_client, sshd, dest, base, base_gib,
             overlay_mib, repeat):
    overlay = os.path.join(work, 'overlay.qcow2')
    make_overlay(overlay, base, overlay_mib, os.path.join(work, 'random'))
    allocated = os.stat(overlay).st_blocks * 512
    dest_base = os.path.join(dest, '_base', 'b' * 40)
    rows = []
    rebase_seconds = []

    def novaext():
        sent = client.push(overlay, INSTANCE_DIR, 'disk')
        seconds, _ = timed(lambda: run(
            'qemu-img', 'rebase', '-u', '-F', 'raw', '-b', dest_base,
            os.path.join(dest, INSTANCE_DIR, 'disk')))
        rebase_seconds.append(seconds)
        return sent

    def novaext_tls():
        return tls_client.push(overlay, INSTANCE_DIR, 'disk')

    def nova34():
        nova34_copy(overlay, os.path.join(dest, INSTANCE_DIR, 'nova34'),
                    link.dest_address)
        return sshd.bytes_sent_last()

    def flatten():
        flat = os.path.join(work, 'flat.qcow2')
        run('qemu-img', 'convert', '-O', 'qcow2', overlay, flat)
        tcp_copy(link, flat, os.path.join(dest, INSTANCE_DIR, 'flat'))
        size = os.path.getsize(flat)
        os.unlink(flat)
        return size

    def floor():
        run('dd', f'if={overlay}', f'of={os.path.join(dest, "floor")}',
            'bs=4M', 'conv=fsync', 'status=none')
        return os.path.getsize(overlay)

    def floor_tcp():
        return tcp_copy(link, overlay, os.path.join(dest, 'floor'))

    paths = [('novaext', novaext), ('novaext-tls', novaext_tls),
             ('nova34', nova34), ('flatten', flatten), ('floor', floor),
             ('tcp_floor', floor_tcp)]
    if tls_client is None:
        paths.remove(('novaext-tls', novaext_tls))
    for name, fn in paths:
        runs = []
        for _ in range(repeat):
            for leftover in (f'{INSTANCE_DIR}/disk', f'{INSTANCE_DIR}/nova34',
                             f'{INSTANCE_DIR}/flat', 'floor'):
                path = os.path.join(dest, leftover)
                if os.path.exists(path):
                    os.unlink(path)
            run('sync')
            runs.append(timed(fn))
        row = {'path': name, 'link': link.name, 'base_gib': base_gib,
               'overlay_mib': overlay_mib,
               'seconds_min': min(r[0] for r in runs),
               'seconds_median': statistics.median(r[0] for r in runs),
               'bytes_sent': runs[-1][1],
               'overlay_allocated_bytes': allocated}
        if name == 'novaext':
            row['rebase_seconds_median'] = statistics.median(rebase_seconds)
        rows.append(row)
    os.unlink(overlay)
    return rows


def configure_nova():
    """Nova's options as a compute host using rsync over ssh has them."""
    from nova import config
    from oslo_config import cfg
    config.parse_args([], default_config_files=[])
    cfg.CONF.set_override('remote_filesystem_transport', 'rsync',
                          group='libvirt')


# name: (tc rate, tbf burst); None: loopback
LINKS = {'loopback': None, '1gbit': ('1gbit', '1mb'),
         '10gbit': ('10gbit', '4mb')}


def run_link(work, dest, link, cases, repeat):
    """Every case on ``link``: daemons and sshd on its destination side."""
    pids, client = daemon_and_client(work, dest, link=link)
    tls_client = None
    if link.rate is None:
        pki = tls.TlsPki(pathlib.Path(work) / 'pki')
        tls_pids, tls_client = daemon_and_client(
            work, dest, pki.client_conf(rsyncd.free_port()))
        pids += tls_pids
    client.make_dir(INSTANCE_DIR)
    sshd = PrivateSshd(work, link)
    rows = []
    try:
        for base_gib in sorted({b for b, _ in cases}):
            base = os.path.join(work, 'base.raw')
            images.make_raw_base(base, base_gib * 1024)
            os.link(base, os.path.join(dest, '_base', 'b' * 40))
            for b, overlay_mib in cases:
                if b == base_gib:
                    rows += one_case(work, link, client, tls_client, sshd,
                                     dest, base, base_gib, overlay_mib,
                                     repeat)
            os.unlink(os.path.join(dest, '_base', 'b' * 40))
            os.unlink(base)
    finally:
        sshd.stop()
        for pid in pids:
            os.kill(pid, 15)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument('--links', default=','.join(LINKS),
                        help='comma-separated, of: ' + ', '.join(LINKS))
    parser.add_argument('--downtime-links', metavar='LINKS',
                        help='links of the downtime case (default: '
                             '--links; with --quick, 1gbit)')
    parser.add_argument('--downtime-runs', type=int, default=1,
                        metavar='N', help='runs of each downtime case, the '
                        'median kept (the guest\'s own shutdown varies by '
                        'a second under TCG)')
    parser.add_argument('--downtime-paths', default='novaext,'
                        'novaext-precopy,nova34',
                        help='paths of the downtime case, comma-separated')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--downtime-only', action='store_true',
                       help='run only the downtime case')
    which.add_argument('--no-downtime', action='store_true',
                       help='skip the downtime case')
    args = parser.parse_args()
    missing = [tool for tool in ('rsync', 'qemu-img', 'qemu-io', 'ssh',
                                 'sshd', 'ssh-keygen', 'stunnel', 'openssl',
                                 'ip', 'tc')
               if shutil.which(tool) is None and not os.path.exists(
                   f'/usr/sbin/{tool}')]
    if missing:
        print(f'missing {", ".join(missing)}: run '
              f'scripts/install-host-packages (as root)', file=sys.stderr)
        return 2
    if not args.no_downtime and PROBLEM:
        print(f'downtime case cannot run: {PROBLEM}', file=sys.stderr)
        return 2
    cases = ([(2, 200)] if args.quick else
             [(2, 50), (2, 200), (2, 800), (1, 200), (4, 200)])
    downtime_rows = []
    if not args.no_downtime:
        # First: its hosts' configuration fixtures parse Nova's options
        # themselves, which configure_nova's parse_args (below) would
        # refuse; they leave the options as they found them.
        import downtime
        names = (args.downtime_links or
                 ('1gbit' if args.quick else args.links)).split(',')
        downtime_rows = downtime.run_all(
            names, args.quick, lambda name: links.Link(
                name, *(LINKS[name] or ())),
            paths=args.downtime_paths.split(','), runs=args.downtime_runs)
    rows = []
    if not args.downtime_only:
        rows = disk_move(args, cases)
    if downtime_rows:
        downtime.print_rows(downtime_rows)
    checked = check_targets(rows, downtime_rows)
    print_targets(checked)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'cases': rows, 'downtime': downtime_rows,
                       'targets': checked}, f, indent=2)
    return 0


def _ratio(table, key, numerator, denominator, value):
    a, b = table.get(key + (numerator,)), table.get(key + (denominator,))
    return None if a is None or b is None or not b[value] else (
        a[value] / b[value])


# Issue 17's targets: (what, rows ('cases' or 'downtime'), the rows that
# count, how a row's case is keyed, numerator path, denominator path
# (None: the row itself), value, comparison, limit).
TARGETS = [
    ('transfer in downtime, pre-copy / direct push, 800 MiB, 1gbit',
     'downtime', lambda r: r['link'] == '1gbit' and r['overlay_mib'] == 800,
     ('link', 'overlay_mib', 'guest_writes_mib'), 'novaext-precopy',
     'novaext', 'transfer_in_downtime_s', '<=', 0.25),
    ('downtime, Nova 34 / novaext with pre-copy, 800 MiB, 1gbit',
     'downtime', lambda r: r['link'] == '1gbit' and r['overlay_mib'] == 800,
     ('link', 'overlay_mib', 'guest_writes_mib'), 'nova34',
     'novaext-precopy', 'downtime_s', '>=', 3.0),
    ('push / TCP floor, >= 200 MiB', 'cases',
     lambda r: r['overlay_mib'] >= 200, ('link', 'base_gib', 'overlay_mib'),
     'novaext', 'tcp_floor', 'seconds_median', '<=', 1.3),
    ('bytes sent / overlay allocation, no pre-copy', 'cases',
     lambda r: True, ('link', 'base_gib', 'overlay_mib'), 'novaext', None,
     'bytes_sent', '<=', 1.05),
]


def check_targets(rows, downtime_rows):
    """Each target on each case it covers: [{target, case, value,
    limit, met}]."""
    checked = []
    for (what, source, counts, case_keys, numerator, denominator, value,
         comparison, limit) in TARGETS:
        table = {}
        for r in (rows if source == 'cases' else downtime_rows):
            if counts(r):
                table[tuple(r[k] for k in case_keys) + (r['path'],)] = r
        for key in sorted({k[:-1] for k in table}):
            if denominator is None:
                row = table.get(key + (numerator,))
                ratio = row and (row[value] /
                                 row['overlay_allocated_bytes'])
            else:
                ratio = _ratio(table, key, numerator, denominator, value)
            if ratio is None:
                continue
            met = ratio <= limit if comparison == '<=' else ratio >= limit
            checked.append({'target': what,
                            'case': dict(zip(case_keys, key, strict=True)),
                            'value': round(ratio, 3),
                            'limit': f'{comparison} {limit}', 'met': met})
    return checked


def print_targets(checked):
    if not checked:
        return
    print('\ntargets (issue 17):')
    for t in checked:
        case = ', '.join(f'{k} {v}' for k, v in t['case'].items())
        print(f'  {"met" if t["met"] else "NOT MET":>7}  {t["target"]} '
              f'({case}): {t["value"]:.2f} {t["limit"]}')


def disk_move(args, cases):
    """The disk move cases on every link; prints their tables."""
    rows = []
    configure_nova()
    for name in args.links.split(','):
        with tempfile.TemporaryDirectory(prefix='novaext-resize-',
                                         dir='/var/tmp') as work, \
                links.Link(name, *(LINKS[name] or ())) as link:
            dest = os.path.join(work, 'dest')
            os.makedirs(os.path.join(dest, '_base'))
            make_random_file(os.path.join(work, 'random'))
            rows += run_link(work, dest, link, cases, args.repeat)

    print(f'\nresize disk move, min/median of {args.repeat} '
          f'({os.cpu_count()} cores)')
    print(f'{"link":>8} {"path":>11} {"base GiB":>8} {"ovl MiB":>8} '
          f'{"min s":>7} {"median s":>9} {"sent MiB":>9} {"sent/alloc":>10} '
          f'{"x tcp":>6} {"x dd":>6}')
    floors = {(r['link'], r['base_gib'], r['overlay_mib'], r['path']):
              r['seconds_median'] for r in rows
              if r['path'] in ('floor', 'tcp_floor')}
    for r in rows:
        key = (r['link'], r['base_gib'], r['overlay_mib'])
        print(f'{r["link"]:>8} {r["path"]:>11} {r["base_gib"]:>8} '
              f'{r["overlay_mib"]:>8} '
              f'{r["seconds_min"]:>7.2f} {r["seconds_median"]:>9.2f} '
              f'{r["bytes_sent"] / MiB:>9.1f} '
              f'{r["bytes_sent"] / r["overlay_allocated_bytes"]:>10.2f} '
              f'{r["seconds_median"] / floors[key + ("tcp_floor",)]:>6.2f} '
              f'{r["seconds_median"] / floors[key + ("floor",)]:>6.1f}')
    print('\nnovaext beside the others (median seconds; rebase -u alone):')
    by_case = {}
    for r in rows:
        by_case.setdefault((r['link'], r['base_gib'], r['overlay_mib']),
                           {})[r['path']] = r
    for (link, base_gib, overlay_mib), case in by_case.items():
        median = {path: row['seconds_median'] for path, row in case.items()}
        ratios = ', '.join(
            f'{other}/novaext {median[other] / median["novaext"]:.1f}x'
            for other in ('nova34', 'flatten') if other in case)
        if 'novaext-tls' in case:
            ratios += (f', nova34/novaext-tls '
                       f'{median["nova34"] / median["novaext-tls"]:.1f}x')
        rebase_ms = case['novaext']['rebase_seconds_median'] * 1000
        print(f'  {link}, base {base_gib} GiB, overlay {overlay_mib} MiB: '
              f'{ratios}; novaext/tcp_floor '
              f'{median["novaext"] / median["tcp_floor"]:.2f}x, '
              f'novaext/dd {median["novaext"] / median["floor"]:.2f}x; '
              f'rebase {rebase_ms:.0f} ms')
    return rows


if __name__ == '__main__':
    sys.exit(main())
