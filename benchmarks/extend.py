"""Cloud disk attach, online extend and detach latency on a real guest.

Run from the repo root in the project's environment:

    python benchmarks/extend.py [--repeat 5] [--json FILE]

A tgt LUN on 127.0.0.1 (64 MiB, grown by 64 MiB each round) is attached
to a running QEMU guest through novaext.ExtLibvirtDriver.attach_volume in
QEMU mode, extended with extend_volume after the LUN grew, and detached
with detach_volume; each is timed (min and median of --repeat rounds).
Needs root; starts libvirtd and tgtd through scripts/start-services when
they are not running.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from realhost import runtime  # noqa: E402

PROBLEM = runtime.prepare()

from realhost import harness  # noqa: E402
from realhost.tgt import Lun  # noqa: E402
from realhost.timing import timed  # noqa: E402

MiB = 1024 ** 2
TID = 960


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--json', metavar='FILE')
    args = parser.parse_args()
    if PROBLEM:
        print(f'cannot run: {PROBLEM}', file=sys.stderr)
        return 2
    times = {'attach': [], 'extend': [], 'detach': []}
    with tempfile.TemporaryDirectory(prefix='novaext-extend-',
                                     dir='/var/tmp') as work:
        image = os.path.join(work, 'guest.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image,
                        '64M'], check=True)
        host = harness.RealComputeHost(
            'bench-host', instances_path=os.path.join(work, 'instances'))
        host.setUp()
        try:
            host.conf_group('novaext', clouddisk_attach_mode='qemu')
            instance = host.new_instance(host.upload_image(
                image, 'qcow2', properties={'hw_scsi_model': 'virtio-scsi'}))
            host.spawn(instance)
            dom = host.domain(instance)
            for _ in range(args.repeat):
                lun = Lun(pathlib.Path(work), TID)
                try:
                    info = lun.connection_info()
                    seconds, _ = timed(
                        host.driver.attach_volume, host.context, info,
                        instance, '/dev/sdb', disk_bus='scsi',
                        device_type='disk')
                    times['attach'].append(seconds)
                    size_before = dom.blockInfo('sdb')[0]
                    lun.grow(128)
                    seconds, _ = timed(
                        host.driver.extend_volume, host.context, info,
                        instance, 128 * MiB)
                    times['extend'].append(seconds)
                    size_after = dom.blockInfo('sdb')[0]
                    seconds, _ = timed(
                        host.driver.detach_volume, host.context, info,
                        instance, '/dev/sdb')
                    times['detach'].append(seconds)
                finally:
                    lun.remove()
            host.destroy(instance)
        finally:
            host.cleanUp()

    print(f'\ncloud disk on a running QEMU guest (QEMU initiator, tgt on '
          f'loopback), {args.repeat} rounds')
    for name, runs in times.items():
        print(f'  {name:>7}: min {min(runs):.3f} s, median '
              f'{statistics.median(runs):.3f} s')
    print(f'  size the guest sees: {size_before} -> {size_after} bytes')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'attach_s': statistics.median(times['attach']),
                       'extend_s': statistics.median(times['extend']),
                       'detach_s': statistics.median(times['detach']),
                       'size_before': size_before,
                       'size_after': size_after}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
