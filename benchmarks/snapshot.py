"""Snapshot of a running guest: novaext delta and full beside Nova 34's own.

Run from the repo root in the project's environment:

    python benchmarks/snapshot.py [--quick] [--json FILE]

For each base size (1, 2, 4 GiB, full of data) a guest boots through
novaext's driver on the real libvirtd (QEMU, software emulation) with a
root disk of that size; the guest then writes 50, then 200 MiB into its
disk (through QEMU, the same region, so the overlay holds that much), and
after each write the same running guest is snapshot three ways, in one
run (base and overlay in the page cache before each):
- novaext-delta: ExtLibvirtDriver.snapshot with snapshot_mode = delta
  (live block copy, upload of the overlay only);
- novaext-full: ExtLibvirtDriver.snapshot with snapshot_mode = full (live
  block copy, qemu-img convert of the whole disk to qcow2);
- nova34: Nova 34's LibvirtDriver.snapshot called directly on the same
  driver and guest (its live snapshot and qemu-img convert).
Each row has the seconds of the whole snapshot call, the bytes the image
service received, the overlay's allocated bytes and how long the guest
was not running (domain state polled every 10 ms). With --quick only the
2 GiB base / 200 MiB overlay case runs, plus a cold (managedSave) delta
snapshot of it for its pause time. Target: a delta upload at most 1.1 x
the data written. Needs root; starts libvirtd and friends through
scripts/start-services when they are not running.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from realhost import runtime  # noqa: E402

PROBLEM = runtime.prepare()

from nova.virt.libvirt import driver as libvirt_driver  # noqa: E402

from realhost import harness  # noqa: E402
from realhost import images  # noqa: E402
from realhost import snapshots  # noqa: E402
from realhost.timing import timed  # noqa: E402

MiB = 1024 ** 2
TARGET = 1.1


def top_layer_bytes(disk):
    out = subprocess.run(['qemu-img', 'map', '-U', '--output=json', disk],
                         check=True, capture_output=True, text=True).stdout
    return sum(e['length'] for e in json.loads(out)
               if e['depth'] == 0 and e['data'])


def guest_writes(dom, mib):
    for offset in range(0, mib, 100):
        length = min(100, mib - offset)
        snapshots.guest_write(dom, '0x33', f'{offset}M', f'{length}M')


def warm_cache(*paths):
    """Flush dirty pages and read files into the page cache, so no path
    pays for an earlier write-back or a cold read."""
    os.sync()
    for path in paths:
        with open(path, 'rb') as f:
            while f.read(8 * MiB):
                pass


def snapshot_with(host, instance, path):
    """One snapshot by ``path``; returns seconds, bytes, paused seconds."""
    mode = {'novaext-delta': 'delta', 'novaext-cold-delta': 'delta'}.get(
        path, 'full')
    host.conf_group('novaext', snapshot_mode=mode)
    host.conf_group('workarounds',
                    disable_libvirt_livesnapshot=path == 'novaext-cold-delta')
    snap_id = host.new_snapshot_image(path)
    if path == 'nova34':
        def call():
            libvirt_driver.LibvirtDriver.snapshot(
                host.driver, host.context, instance, snap_id,
                lambda **kw: None)
    else:
        def call():
            host.driver.snapshot(host.context, instance, snap_id,
                                 lambda **kw: None)
    with snapshots.StateRecorder(instance.name) as recorder:
        seconds, _ = timed(call)
    uploaded = host.uploads[snap_id]
    os.unlink(host.uploaded_file(snap_id))
    host.images.delete(host.context, snap_id)
    return seconds, uploaded, recorder.not_running_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='only the 2 GiB base / 200 MiB overlay case')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the results as JSON to FILE')
    args = parser.parse_args()
    if PROBLEM:
        print(f'cannot run: {PROBLEM}', file=sys.stderr)
        return 2
    bases = [2] if args.quick else [1, 2, 4]
    overlays = [200] if args.quick else [50, 200]
    paths = ('nova34', 'novaext-full', 'novaext-delta')
    cases, cold = [], []
    with tempfile.TemporaryDirectory(prefix='novaext-snapshot-',
                                     dir='/var/tmp') as work:
        host = harness.RealComputeHost(
            'bench-host', instances_path=os.path.join(work, 'instances'))
        host.setUp()
        try:
            for gib in bases:
                base = os.path.join(work, f'base-{gib}.raw')
                images.make_raw_base(base, gib * 1024)
                image_id = host.upload_image(base, 'raw', by_reference=True)
                instance = host.new_instance(image_id, memory_mb=64,
                                             root_gb=gib)
                host.spawn(instance)
                dom = host.domain(instance)
                disk = os.path.join(host.instance_dir(instance), 'disk')
                for mib in overlays:
                    guest_writes(dom, mib)
                    allocated = top_layer_bytes(disk)
                    for path in paths:
                        warm_cache(disk, os.path.join(
                            host.instances_path, '_base',
                            harness.base_name(image_id)))
                        seconds, uploaded, paused = snapshot_with(
                            host, instance, path)
                        cases.append({
                            'path': path, 'base_gib': gib,
                            'overlay_mib': mib, 'seconds': round(seconds, 2),
                            'bytes_uploaded': uploaded,
                            'overlay_allocated_bytes': allocated,
                            'paused_seconds': round(paused, 2)})
                        print(json.dumps(cases[-1]), flush=True)
                    if args.quick:
                        seconds, uploaded, paused = snapshot_with(
                            host, instance, 'novaext-cold-delta')
                        cold.append({
                            'path': 'novaext-cold-delta', 'base_gib': gib,
                            'overlay_mib': mib, 'seconds': round(seconds, 2),
                            'bytes_uploaded': uploaded,
                            'overlay_allocated_bytes': allocated,
                            'paused_seconds': round(paused, 2)})
                host.destroy(instance)
                os.unlink(base)
        finally:
            host.cleanUp()

    print(f'\nsnapshot of a running guest (QEMU TCG, {os.cpu_count()} '
          f'cores); "not running" = seconds the domain was paused or off')
    print(f'{"path":>19} {"base GiB":>8} {"ovl MiB":>8} {"seconds":>8} '
          f'{"uploaded MiB":>13} {"upl/written":>11} {"not running s":>14}')
    for r in cases + cold:
        print(f'{r["path"]:>19} {r["base_gib"]:>8} {r["overlay_mib"]:>8} '
              f'{r["seconds"]:>8.2f} {r["bytes_uploaded"] / MiB:>13.1f} '
              f'{r["bytes_uploaded"] / (r["overlay_mib"] * MiB):>11.2f} '
              f'{r["paused_seconds"]:>14.2f}')
    worst = max(r['bytes_uploaded'] / (r['overlay_mib'] * MiB)
                for r in cases if r['path'] == 'novaext-delta')
    print(f'\ndelta upload / data written, worst case: {worst:.2f} '
          f'(target <= {TARGET})')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'cases': cases, 'cold_cases': cold}, f, indent=2)
    return 0 if worst <= TARGET else 1


if __name__ == '__main__':
    sys.exit(main())
