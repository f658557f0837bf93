"""Resize downtime end to end: novaext, novaext with pre-copy, Nova 34.

Called by benchmarks/resize.py (its "downtime" case); run from the repo
root in the project's environment, as root:

    python benchmarks/resize.py --downtime-only [--quick] [--links 1gbit]

Each case is one resize (root_gb 2 -> 3) of the same real Debian guest
(realhost.guest, QEMU TCG) across two "hosts" that take turns in this
process (realhost.harness.RealComputeHost, one at a time, one image
service): a source and a destination instances_path under /var/tmp. The
guest boots on the source, writes a known file, and its qcow2 overlay is
grown to the case's size with random (incompressible) data written
through the running QEMU (HMP qemu-io ``write -s`` of a fresh 16 MiB
random file per chunk, from 1 GiB upward, past the guest's 1 GiB file
system); with guest writes, the guest itself then writes that many MiB of
/dev/urandom to a file (dd conv=fsync, started through the agent just
before the resize, so with pre-copy it runs during the first pass). The
driver calls are those Nova's compute manager makes:
migrate_disk_and_power_off on the source (clean shutdown, timeout 60 s,
retry 10 s), then finish_migration on the destination (power_on), for
three paths:
- novaext: compute_driver novaext.ExtLibvirtDriver, [novaext]
  resize_precopy = False: one push after power-off to the destination's
  rsync daemon (novaext-rsyncd);
- novaext-precopy: the same with resize_precopy = True and
  resize_precopy_min_mib = 0: the overlay is pushed while the guest runs,
  and after power-off only the changes (rsync delta transfer);
- nova34: Nova 34's own libvirt.LibvirtDriver with [libvirt]
  remote_filesystem_transport = rsync: ``ssh <dest> ...`` and rsync
  --sparse --compress over ssh, to a private sshd that runs in the
  destination's network namespace and in a mount namespace of its own
  where the source's instances_path is the destination's (bind mount), so
  Nova's remote paths (built from its own instances_path) land in the
  destination's directory and its shared-storage probe sees "not shared".
  ``ssh`` is a wrapper first on PATH (and RSYNC_RSH) that points
  /usr/bin/ssh at that daemon with a private config and logs what each
  client sent. (The moved overlay still names the source's base path, as
  Nova leaves it; on real hosts that path is the destination's own base,
  here it is the same bytes.)
Every path crosses the same link (benchmarks/links.py): the rsync daemon
and the sshd listen on its destination side. The destination's _base
holds the guest's bases (root, kernel, ramdisk) before the first case (a
spawn and destroy there), so no path downloads a base in its downtime;
each row records any download the destination made anyway.

Timed: shutdown, from the first shutdown request to the guest (Nova's
Guest.shutdown, which both drivers call; just before it the benchmark
waits, untimed, for the guest's own writes to finish, the guest still
running) until the driver's power_off returns with the domain destroyed;
transfer, the rest of migrate_disk_and_power_off; destination
preparation, finish_migration until it returns with the domain running.
downtime = shutdown + transfer + destination preparation; switching the
host fixtures between calls is not counted, nor is the pre-copy
(everything in migrate_disk_and_power_off before the shutdown request,
reported as precopy_s). The pre-copy's catch-up pass runs after the
first shutdown request, inside the shutdown time: what of it outlasts
the guest's own shutdown is downtime there.
Bytes: novaext's from its novaext.progress records (resize.push .end,
bytes_sent by pass: single or final after power-off, precopy before,
catchup during the shutdown);
Nova's what the ssh clients started after power-off said they sent. After
each case the moved guest's agent answers on the destination and the
known file (and the guest-written one) has the sha256 it had on the
source; both hosts' domains are then gone. One run per case.
"""

import base64
import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid as uuid_lib

import libvirt_qemu
from nova import objects
from nova.virt.libvirt import guest as libvirt_guest
from oslo_config import cfg

from realhost import guest
from realhost import harness
from realhost import rsyncd
from realhost import snapshots
from realhost import sshd

CONF = cfg.CONF
MiB = 1024 ** 2
GiB = 1024 ** 3
PATHS = ('novaext', 'novaext-precopy', 'nova34')
DRIVERS = {'novaext': 'novaext.ExtLibvirtDriver',
           'novaext-precopy': 'novaext.ExtLibvirtDriver',
           'nova34': 'libvirt.LibvirtDriver'}
OLD_GB, NEW_GB = 2, 3
KNOWN = '/root/novaext-known'
WRITES = '/root/precopy-writes'
CHUNK_MIB = 16
SECRET = 'downtime-secret'


def cases(quick):
    """(overlay MiB, guest writes MiB) of a run."""
    overlays = [800] if quick else [200, 800]
    return [(o, w) for o in overlays for w in (0, 50)]


class ProgressRecords(logging.Handler):
    """The payloads of novaext.progress records (resize.push events)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.payloads = []
        self.logger = logging.getLogger('novaext.progress')

    def emit(self, record):
        if isinstance(record.args, dict):
            self.payloads.append(dict(record.args))

    def __enter__(self):
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)
        return False

    def sent(self, passes):
        return sum(p.get('bytes_sent') or 0 for p in self.payloads
                   if p.get('operation') == 'resize.push' and
                   p.get('event') == 'end' and p.get('pass') in passes)


class NovaSshd:
    """The destination's sshd for Nova's path, on ``link``'s destination
    side, in a mount namespace where ``src_instances`` is
    ``dst_instances``; and the ``ssh`` wrapper Nova's commands find."""

    def __init__(self, work, link, src_instances, dst_instances):
        work = os.path.join(work, 'sshd-' + link.name)
        os.makedirs(work)
        self.address = link.dest_address
        self.port = rsyncd.free_port()
        self.log = os.path.join(work, 'ssh-client.log')
        command, client_key = sshd.prepare(work, self.address, self.port)
        script = (f'mount --bind {shlex.quote(dst_instances)} '
                  f'{shlex.quote(src_instances)} && exec '
                  + shlex.join(command))
        self._stderr = open(os.path.join(work, 'sshd.log'), 'w')
        # ip netns exec, unshare and sh all exec: the PID is sshd's.
        self.proc = subprocess.Popen(
            link.in_dest(['unshare', '--mount', '--propagation', 'private',
                          'sh', '-c', script]),
            stdout=subprocess.DEVNULL, stderr=self._stderr)
        if not sshd.wait_listening(self.address, self.port, self.proc):
            self.stop()
            raise RuntimeError(f'sshd did not start; see {work}/sshd.log')
        config = os.path.join(work, 'ssh_config')
        with open(config, 'w') as f:
            f.write(f'Host *\n  Port {self.port}\n'
                    f'  IdentityFile {client_key}\n  IdentitiesOnly yes\n'
                    f'  BatchMode yes\n'
                    f'  StrictHostKeyChecking no\n'
                    f'  UserKnownHostsFile /dev/null\n  LogLevel DEBUG1\n')
        # OpenSSH takes ~/.ssh/config from the passwd entry, not $HOME:
        # an ``ssh`` first on PATH gives every client this configuration.
        self.bin = os.path.join(work, 'bin')
        os.makedirs(self.bin)
        self.wrapper = os.path.join(self.bin, 'ssh')
        with open(self.wrapper, 'w') as f:
            f.write(f'#!/bin/sh\nexec /usr/bin/ssh -F {shlex.quote(config)} '
                    f'-E {shlex.quote(self.log)} "$@"\n')
        os.chmod(self.wrapper, 0o755)

    @contextlib.contextmanager
    def as_ssh(self):
        """Within: ``ssh`` (Nova's ssh_execute, rsync's remote shell) is
        the wrapper."""
        saved = {k: os.environ.get(k) for k in ('PATH', 'RSYNC_RSH')}
        os.environ['PATH'] = self.bin + os.pathsep + os.environ['PATH']
        os.environ['RSYNC_RSH'] = self.wrapper
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except FileNotFoundError:
            return 0

    def sent_since(self, offset):
        """What the ssh clients that ended after ``offset`` (a log size)
        sent (their DEBUG1 summaries), and how many there were."""
        with open(self.log) as f:
            f.seek(offset)
            sent = [int(n) for n in
                    re.findall(r'Transferred: sent ([0-9]+)', f.read())]
        return sum(sent), len(sent)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()


def _hmp(dom, command):
    out = libvirt_qemu.qemuMonitorCommand(
        dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    if 'error' in out.lower() or 'failed' in out.lower():
        raise RuntimeError(f'{command}: {out}')
    return out


def grow_overlay(dom, mib, random_file):
    """Write ``mib`` MiB of random data through the running QEMU (as the
    guest would), from 1 GiB upward: a new 16 MiB random file per chunk,
    so no two chunks are alike; then flush."""
    device = snapshots._device_of(_hmp(dom, 'info block'), 'disk')
    for offset in range(0, mib, CHUNK_MIB):
        length = min(CHUNK_MIB, mib - offset)
        with open(random_file, 'wb') as f:
            f.write(os.urandom(length * MiB))
        _hmp(dom, f'qemu-io -d {device} "write -s {random_file} '
                  f'{GiB + offset * MiB} {length * MiB}"')
    _hmp(dom, f'qemu-io -d {device} "flush"')
    os.unlink(random_file)


class GuestWriter:
    """The guest writing ``mib`` MiB of /dev/urandom to WRITES (dd
    conv=fsync, then its sha256), started through the agent's guest-exec
    and not waited for."""

    def __init__(self, agent, mib):
        self.agent = agent
        self.sha256 = None
        self.pid = agent.command(
            'guest-exec', path='/bin/sh',
            arg=['-c', f'dd if=/dev/urandom of={WRITES} bs=1M count={mib} '
                       f'conv=fsync status=none && sha256sum {WRITES}'],
            **{'capture-output': True})['pid']

    def wait(self, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            status = self.agent.command('guest-exec-status', pid=self.pid)
            if status['exited']:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f'guest writes not done in {timeout} s')
            time.sleep(0.2)
        out = base64.b64decode(status.get('out-data', '')).decode()
        if status.get('exitcode') != 0:
            raise RuntimeError(f'guest writes failed: {status}')
        self.sha256 = out.split()[0]


class ShutdownClock:
    """Marks when the guest is first asked to shut down (Nova's Guest.
    shutdown, which both drivers call) and when the driver's power_off
    returns (the domain destroyed; both drivers end their power-off with
    it). ``before`` runs at the first request, untimed, before the guest
    is asked (it still runs); ``after`` when power_off returns."""

    def __init__(self, driver, before=None, after=None):
        self.driver = driver
        self.before = before
        self.after = after
        self.entered = self.started = self.returned = None
        self._shutdown = libvirt_guest.Guest.shutdown
        self._power_off = driver.power_off
        clock = self

        def shutdown(guest_self):
            if clock.entered is None:
                clock.entered = time.perf_counter()
                if clock.before:
                    clock.before()
                clock.started = time.perf_counter()
            return clock._shutdown(guest_self)

        libvirt_guest.Guest.shutdown = shutdown
        driver.power_off = self.power_off

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._power_off(instance, timeout, retry_interval)
        self.returned = time.perf_counter()
        if self.after:
            self.after()

    def restore(self):
        libvirt_guest.Guest.shutdown = self._shutdown
        del self.driver.power_off


class Run:
    """The two hosts' directories, the image service's images and the
    rsync password of one benchmark run; ``port``: the destination's rsync
    daemon on the current link."""

    def __init__(self, work):
        objects.register_all()
        self.work = work
        self.paths = {'src-host': os.path.join(work, 'src-instances'),
                      'dst-host': os.path.join(work, 'dst-instances')}
        for path in self.paths.values():
            os.makedirs(path)
        self.password_file = os.path.join(work, 'rsync.password')
        with open(os.open(self.password_file,
                          os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
            f.write(SECRET)
        self.exported = []
        self.ids = None
        self.port = None
        self.migration = objects.Migration(source_compute='src-host',
                                           dest_compute='dst-host')

    @contextlib.contextmanager
    def host(self, name, path):
        """The host ``name`` with the driver and options of ``path``."""
        if path == 'nova34' and name == 'src-host':
            # Read when Nova's driver is made (its _remotefs): set before.
            CONF.set_override('remote_filesystem_transport', 'rsync',
                              group='libvirt')
        with harness.RealComputeHost(
                name, instances_path=self.paths[name],
                compute_driver=DRIVERS[path]) as host:
            if path == 'nova34' and name == 'src-host':
                from nova.virt.libvirt.volume import remotefs
                assert isinstance(host.driver._remotefs.driver,
                                  remotefs.RsyncDriver)
            if path.startswith('novaext'):
                host.conf_group('novaext', rsync_port=self.port,
                                rsync_password_file=self.password_file,
                                resize_precopy=path == 'novaext-precopy',
                                resize_precopy_min_mib=0)
            if self.ids is None:
                self.ids = guest.GuestImage().ensure().upload(
                    host, image_id=str(uuid_lib.uuid4()))
            else:
                host.import_images(self.exported)
            yield host
            self.exported = host.export_images(self.work)

    def warm_destination(self):
        """The guest's bases (root, kernel, ramdisk) in the destination's
        _base: one spawn and destroy there."""
        with self.host('dst-host', 'novaext') as dst:
            instance = guest.new_instance(dst, self.ids, root_gb=OLD_GB)
            dst.spawn(instance)
            dst.destroy(instance)
        base = os.path.join(self.paths['dst-host'], '_base',
                            harness.base_name(self.ids['image_id']))
        if not os.path.exists(base):
            raise RuntimeError(f'no base {base} after the warm-up spawn')


def _agent(host, instance):
    """The agent of ``instance``'s guest, answering; when it does not,
    the error says how far the guest's console got."""
    agent = guest.Agent(host.domain(instance))
    try:
        agent.wait()
    except guest.AgentError as e:
        console = os.path.join(host.instance_dir(instance), 'console.log')
        with open(console, errors='replace') as f:
            tail = f.read()[-2000:]
        raise guest.AgentError(f'{e}; console ends:\n{tail}') from e
    return agent


def one_case(run, link, path, overlay_mib, writes_mib, sshd):
    """One resize by ``path``; returns its row."""
    row = {'link': link.name, 'path': path, 'overlay_mib': overlay_mib,
           'guest_writes_mib': writes_mib}
    ssh = sshd.as_ssh() if path == 'nova34' else contextlib.nullcontext()
    with ssh, run.host('src-host', path) as src, \
            ProgressRecords() as progress:
        instance = guest.new_instance(src, run.ids, root_gb=OLD_GB)
        src.spawn(instance)
        agent = _agent(src, instance)
        uuid = instance.uuid
        known = agent.write_known_file(KNOWN, 4)
        disk = os.path.join(src.instance_dir(instance), 'disk')
        grow_overlay(src.domain(instance), overlay_mib,
                     os.path.join(run.work, 'random'))
        row['overlay_allocated_mib'] = round(
            harness.qemu_img_info(disk)['actual-size'] / MiB, 1)
        writer = GuestWriter(agent, writes_mib) if writes_mib else None
        marks = {}
        clock = ShutdownClock(
            src.driver, before=writer.wait if writer else None,
            after=lambda: marks.update(ssh_log=sshd and sshd.log_size()))
        new_flavor = instance.flavor.obj_clone()
        new_flavor.root_gb = NEW_GB
        progress.payloads.clear()
        started = time.perf_counter()
        try:
            disk_info = src.driver.migrate_disk_and_power_off(
                src.context, instance, link.dest_address, new_flavor, [],
                timeout=60, retry_interval=10)
        finally:
            clock.restore()
        ended = time.perf_counter()
        if clock.started is None or clock.returned is None:
            raise RuntimeError(f'{path}: the guest was not shut down '
                               f'through Guest.shutdown and power_off')
        row['shutdown_s'] = clock.returned - clock.started
        row['transfer_in_downtime_s'] = ended - clock.returned
        if path == 'nova34':
            row['bytes_sent'], row['ssh_clients'] = sshd.sent_since(
                marks['ssh_log'])
        else:
            row['bytes_sent'] = progress.sent(('single', 'final'))
        if path == 'novaext-precopy':
            row['precopy_bytes_sent'] = progress.sent(('precopy',))
            row['catchup_bytes_sent'] = progress.sent(('catchup',))
            row['precopy_s'] = clock.entered - started
            if not row['precopy_bytes_sent']:
                raise RuntimeError('novaext-precopy: no pre-copy pass')
        if writer:
            row['writes_wait_s'] = clock.started - clock.entered

    with run.host('dst-host', path) as dst:
        moved = guest.resizing(
            guest.new_instance(dst, run.ids, root_gb=NEW_GB,
                               instance_uuid=uuid), OLD_GB, NEW_GB)
        dst.downloads.clear()
        started = time.perf_counter()
        dst.driver.finish_migration(
            dst.context, run.migration, moved, disk_info, [],
            dst.image_meta(run.ids['image_id']), True, {}, None, True)
        row['dest_prep_s'] = time.perf_counter() - started
        try:
            dom = dst.domain(moved)
            if dom is None or not dom.isActive():
                raise RuntimeError(f'{path}: not running after '
                                   f'finish_migration')
            row['dest_downloads'] = sum(dst.downloads.values())
            agent = _agent(dst, moved)
            if agent.sha256(KNOWN) != known:
                raise RuntimeError(f'{path}: {KNOWN} differs after resize')
            if writer and agent.sha256(WRITES) != writer.sha256:
                raise RuntimeError(f'{path}: {WRITES} differs after resize')
            if agent.block_size_bytes('vda') != NEW_GB * GiB:
                raise RuntimeError(f'{path}: disk not grown to {NEW_GB} GiB')
        finally:
            dst.destroy(moved)
    shutil.rmtree(os.path.join(run.paths['src-host'], uuid + '_resize'),
                  ignore_errors=True)
    # What the driver adds to the guest's own shutdown: the same guest
    # shuts down as slowly under either driver (under TCG here, ~2.5 s).
    row['downtime_after_shutdown_s'] = (row['transfer_in_downtime_s'] +
                                        row['dest_prep_s'])
    row['downtime_s'] = row['shutdown_s'] + row['downtime_after_shutdown_s']
    return row


RUN_PARTS = ('downtime_s', 'shutdown_s', 'transfer_in_downtime_s',
             'dest_prep_s')


def _median_run(rows):
    """The run of median downtime (the lower one of an even count), with
    every run's downtime, and its parts, beside it."""
    ordered = sorted(rows, key=lambda r: r['downtime_s'])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen['runs'] = len(rows)
    for key in RUN_PARTS:
        chosen[key + '_runs'] = [r[key] for r in rows]
    return chosen


def run_link(run, link, case_list, paths, runs=1):
    """Every case on ``link``, the destination's daemons on its far side;
    each case ``runs`` times, the paths taking turns, its median run
    kept."""
    workdir = os.path.join(run.work, 'rsyncd-' + link.name)
    os.makedirs(workdir)
    run.port = rsyncd.free_port()
    _cmd, pid = rsyncd.start_daemon(
        workdir, run.paths['dst-host'], run.port,
        address=link.dest_address, secret=SECRET,
        hosts_allow=link.local_address, wrap=link.in_dest)
    sshd = None
    rows = []
    try:
        if 'nova34' in paths:
            sshd = NovaSshd(run.work, link, run.paths['src-host'],
                            run.paths['dst-host'])
        for overlay_mib, writes_mib in case_list:
            done = {path: [] for path in paths}
            for _ in range(runs):
                for path in paths:
                    row = one_case(run, link, path, overlay_mib,
                                   writes_mib, sshd)
                    print(f'downtime {link.name} {path} overlay '
                          f'{overlay_mib} writes {writes_mib}: '
                          f'{row["downtime_s"]:.2f} s (shutdown '
                          f'{row["shutdown_s"]:.2f}, transfer '
                          f'{row["transfer_in_downtime_s"]:.2f}, '
                          f'destination {row["dest_prep_s"]:.2f})',
                          flush=True)
                    done[path].append(row)
            rows += [_median_run(done[path]) for path in paths]
    finally:
        if sshd:
            sshd.stop()
        rsyncd.stop_daemon(pid)
    return rows


def run_all(link_names, quick, link_factory, paths=PATHS, runs=1):
    """The downtime rows of every case on every link of ``link_names``
    (``link_factory(name)``: a links.Link context manager), each the
    median of ``runs``."""
    rows = []
    with tempfile.TemporaryDirectory(prefix='novaext-downtime-',
                                     dir='/var/tmp') as work:
        run = Run(work)
        run.warm_destination()
        for name in link_names:
            with link_factory(name) as link:
                rows += run_link(run, link, cases(quick), paths, runs)
    return rows


# (what, numerator path, denominator path, row key)
RATIOS = [('downtime', 'nova34', 'novaext-precopy', 'downtime_s'),
          ('downtime after shutdown', 'nova34', 'novaext-precopy',
           'downtime_after_shutdown_s'),
          ('transfer in downtime', 'novaext-precopy', 'novaext',
           'transfer_in_downtime_s'),
          ('downtime', 'nova34', 'novaext', 'downtime_s')]


def print_rows(rows):
    runs = sorted({r.get('runs', 1) for r in rows})
    print(f'\nresize downtime, median of {"/".join(map(str, runs))} '
          f'run(s) per case ({os.cpu_count()} cores)')
    print(f'{"link":>8} {"path":>15} {"ovl MiB":>7} {"wr MiB":>6} '
          f'{"down s":>7} {"shut s":>6} {"xfer s":>6} {"dest s":>6} '
          f'{"sent MiB":>8} {"pre s":>6} {"pre MiB":>7} {"c-up MiB":>8}')
    for r in rows:
        pre_s = f'{r["precopy_s"]:.2f}' if 'precopy_s' in r else '-'
        pre_mib = (f'{r["precopy_bytes_sent"] / MiB:.1f}'
                   if 'precopy_bytes_sent' in r else '-')
        catch_mib = (f'{r["catchup_bytes_sent"] / MiB:.1f}'
                     if 'catchup_bytes_sent' in r else '-')
        print(f'{r["link"]:>8} {r["path"]:>15} {r["overlay_mib"]:>7} '
              f'{r["guest_writes_mib"]:>6} {r["downtime_s"]:>7.2f} '
              f'{r["shutdown_s"]:>6.2f} {r["transfer_in_downtime_s"]:>6.2f} '
              f'{r["dest_prep_s"]:>6.2f} {r["bytes_sent"] / MiB:>8.1f} '
              f'{pre_s:>6} {pre_mib:>7} {catch_mib:>8}')
    by_case = {}
    for r in rows:
        by_case.setdefault((r['link'], r['overlay_mib'],
                            r['guest_writes_mib']), {})[r['path']] = r
    for r in rows:
        if r.get('dest_downloads'):
            print(f'  note: {r["link"]} {r["path"]}: the destination '
                  f'downloaded {r["dest_downloads"]} image(s) in its downtime')
    print('\nratios:')
    for (link, overlay, writes), case in by_case.items():
        parts = [f'{a}/{b} {label} {case[a][key] / case[b][key]:.2f}'
                 for label, a, b, key in RATIOS
                 if a in case and b in case and case[b][key]]
        print(f'  {link}, overlay {overlay} MiB, guest writes {writes} MiB: '
              + ('; '.join(parts) or 'n/a'))
