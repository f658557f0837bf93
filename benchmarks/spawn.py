"""Spawn time with the base cached and not cached, and concurrent downloads.

Run from the repo root in the project's environment:

    python benchmarks/spawn.py [--sizes 256,1024,4096] [--repeat 3]
                               [--json FILE]

Each case spawns a guest on the real libvirtd (QEMU, software emulation)
through novaext's driver, and then through Nova 34's own
libvirt.LibvirtDriver on an instances_path of its own, from a raw image
of the given size, full of data, served by the in-process image service
(a stream of 64 KiB chunks, as Nova's Glance client delivers it, with
Glance's sha512 multihash recorded and checked on the stream by
glanceclient's own serious_integrity_iter, as Nova's downloads are).
novaext runs with verify_bases on and off: the cost of verifying bases
(the size check, the record, and with --image-format qcow2 the sha256 of
each converted base) is the one beside the other.
"not cached" starts with an empty _base (the image is downloaded);
"cached" finds the base in _base,
so the time is the overlay and the domain start, and must not grow with
the base. Beside them, the copy floor: cp of the same image file, what
any download costs at least. Last, 8 concurrent spawns of one uncached
image, counting downloads. Needs root; starts libvirtd and friends
through scripts/start-services when they are not running.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from realhost import runtime  # noqa: E402

PROBLEM = runtime.prepare()

from realhost import harness  # noqa: E402
from realhost import images  # noqa: E402
from realhost.timing import timed  # noqa: E402

MiB = 1024 ** 2
CONCURRENT = 8
# (path label, compute_driver, [novaext] verify_bases): this project,
# with and without verified bases, then Nova 34's own driver.
NOVAEXT = 'novaext.ExtLibvirtDriver'
DRIVERS = [('novaext', NOVAEXT, True),
           ('noverify', NOVAEXT, False),
           ('nova34', 'libvirt.LibvirtDriver', None)]
# (verifying path, the same path with verify_bases off)
HASHING_COST = [('novaext', 'noverify')]


def root_gb(size_mib):
    return max(1, -(-size_mib // 1024))


def spawn_case(host, image_id, size_mib, cached):
    base = os.path.join(host.instances_path, '_base',
                        harness.base_name(image_id))
    if not cached and os.path.exists(base):
        os.unlink(base)
    instance = host.new_instance(image_id, memory_mb=64,
                                 root_gb=root_gb(size_mib))
    # Each spawn starts with no dirty pages of an earlier case to write
    # back: otherwise the kernel's writeback throttling, not the path,
    # decides a 4 GiB download's time (+-30% between runs).
    os.sync()
    seconds, _ = timed(host.spawn, instance)
    host.destroy(instance)
    return seconds


def copy_floor(path, workdir):
    target = os.path.join(workdir, 'floor.copy')
    seconds, _ = timed(shutil.copyfile, path, target)
    os.unlink(target)
    return seconds


def concurrent_downloads(host, image_id):
    instances = [host.new_instance(image_id, memory_mb=64)
                 for _ in range(CONCURRENT)]
    host.downloads.clear()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        list(pool.map(host.spawn, instances))
    downloads = host.downloads.get(image_id, 0)
    for instance in instances:
        host.destroy(instance)
    return downloads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='256,1024,4096',
                        help='base sizes in MiB (default 256,1024,4096)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='spawns per case; the median is reported')
    parser.add_argument('--image-format', choices=('raw', 'qcow2'),
                        default='raw',
                        help='format of the image in the image service '
                             '(qcow2: Nova converts each base to raw, and '
                             'novaext records the converted base\'s own '
                             'sha256 as well)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the results as JSON to FILE')
    args = parser.parse_args()
    if PROBLEM:
        print(f'cannot run: {PROBLEM}', file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(',')]
    cases, floors = [], []
    with tempfile.TemporaryDirectory(prefix='novaext-bench-',
                                     dir='/var/tmp') as work:
        for size in sizes:
            image = os.path.join(work, f'base-{size}.raw')
            images.make_raw_base(image, size)
            if args.image_format == 'qcow2':
                subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O',
                                'qcow2', image, image + '.qcow2'],
                               check=True)
                os.replace(image + '.qcow2', image)
            floors.append({'base_mib': size, 'seconds': statistics.median(
                copy_floor(image, work) for _ in range(args.repeat))})
        for path, driver, verify in DRIVERS:
            host = harness.RealComputeHost(
                'bench-host', instances_path=os.path.join(work, path),
                compute_driver=driver)
            host.setUp()
            try:
                if verify is not None:
                    host.conf_group('novaext', verify_bases=verify)
                for size in sizes:
                    image_id = host.upload_image(
                        os.path.join(work, f'base-{size}.raw'),
                        args.image_format, by_reference=True)
                    for cached in (False, True):
                        if cached:
                            spawn_case(host, image_id, size, cached=False)
                        runs = [spawn_case(host, image_id, size, cached)
                                for _ in range(args.repeat)]
                        cases.append({'path': path, 'base_mib': size,
                                      'cached': cached,
                                      'seconds': statistics.median(runs)})
                if path == 'novaext':
                    image = os.path.join(work, 'concurrent.raw')
                    images.make_raw_base(image, sizes[0])
                    downloads = concurrent_downloads(
                        host, host.upload_image(image, 'raw',
                                                by_reference=True))
            finally:
                host.cleanUp()

    floor_by_size = {f['base_mib']: f['seconds'] for f in floors}
    print(f'\nspawn of a {args.image_format} image, median of '
          f'{args.repeat} (QEMU TCG, '
          f'{os.cpu_count()} cores): novaext.ExtLibvirtDriver beside '
          f"Nova 34's libvirt.LibvirtDriver")
    print(f'{"path":>19} {"base MiB":>9} {"not cached s":>13} '
          f'{"cached s":>9} {"copy floor s":>13} {"uncached/floor":>15}')
    for path, *_ in DRIVERS:
        for size in sizes:
            seconds = {c['cached']: c['seconds'] for c in cases
                       if c['path'] == path and c['base_mib'] == size}
            floor = floor_by_size[size]
            ratio = seconds[False] / floor if floor else float('nan')
            print(f'{path:>19} {size:>9} {seconds[False]:>13.2f} '
                  f'{seconds[True]:>9.2f} {floor:>13.2f} {ratio:>15.1f}')
    print('\ncost of verifying bases (uncached spawn):')
    for size in sizes:
        uncached = {c['path']: c['seconds'] for c in cases
                    if c['base_mib'] == size and not c['cached']}
        for path, reference in HASHING_COST:
            extra = uncached[path] / uncached[reference] - 1
            print(f'{path:>19} {size:>6} MiB: {extra:+.1%} '
                  f'(beside {reference})')
    print(f'\n{CONCURRENT} concurrent spawns of one uncached image: '
          f'{downloads} download(s)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'image_format': args.image_format,
                       'hashing_cost': HASHING_COST,
                       'cases': cases, 'concurrent_spawns': CONCURRENT,
                       'downloads': downloads, 'copy_floor': floors},
                      f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
