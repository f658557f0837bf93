"""The demo's steps, run by scripts/demo in the project's virtualenv.

Boots a guest through ExtLibvirtDriver.spawn on the real libvirtd (QEMU,
software emulation) from an image served by an in-process image service,
shows what it built, and destroys it. Exits non-zero if any step fails.
"""

import logging
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from tests.real import runtime  # noqa: E402

PROBLEM = runtime.prepare()

import libvirt  # noqa: E402

from tests.real import harness  # noqa: E402

STATES = {libvirt.VIR_DOMAIN_RUNNING: 'running',
          libvirt.VIR_DOMAIN_PAUSED: 'paused',
          libvirt.VIR_DOMAIN_SHUTOFF: 'shut off'}


class Steps:
    def __init__(self):
        self.number = 0

    def __call__(self, title):
        self.number += 1
        return _Step(self.number, title)


class _Step:
    def __init__(self, number, title):
        self.number, self.title = number, title

    def __enter__(self):
        print(f'[{self.number}] {self.title} ...', flush=True)
        self.start = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        took = time.monotonic() - self.start
        status = 'ok' if exc is None else f'FAILED: {exc}'
        print(f'    {status} ({took:.2f} s)', flush=True)
        return False


def main():
    logging.basicConfig(level=logging.WARNING)
    if PROBLEM:
        print(f'cannot run the demo here: {PROBLEM}', file=sys.stderr)
        return 2
    step = Steps()
    with tempfile.TemporaryDirectory(prefix='novaext-demo-') as work:
        image = os.path.join(work, 'demo.qcow2')
        with step('make a 64 MiB qcow2 image with 1 MiB written'):
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image,
                            '64M'], check=True)
            subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                            'write -P 0x5a 0 1M', image], check=True,
                           capture_output=True)
        host = harness.RealComputeHost(
            'demo-host', instances_path=os.path.join(work, 'instances'))
        with step('load novaext.ExtLibvirtDriver through Nova and '
                  'init_host on the real libvirtd'):
            host.setUp()
        try:
            with step('upload the image to the in-process image service'):
                image_id = host.upload_image(image, 'qcow2')
                print(f'    image {image_id}, '
                      f'{os.path.getsize(image)} bytes')
            instance = host.new_instance(image_id)
            with step(f'spawn instance {instance.uuid}'):
                host.spawn(instance)
            dom = host.domain(instance)
            disk = os.path.join(host.instance_dir(instance), 'disk')
            info = harness.qemu_img_info(disk)
            print(f'    domain {dom.name()}: '
                  f'{STATES.get(dom.state()[0], dom.state()[0])}')
            print(f'    root disk {disk}: {info["format"]}, '
                  f'{info["virtual-size"] // 2**20} MiB virtual, '
                  f'{info["actual-size"] // 2**10} KiB allocated')
            print(f'    backing file {info.get("full-backing-filename")}')
            with step('destroy the instance'):
                host.destroy(instance)
            gone = (host.domain(instance) is None
                    and not os.path.exists(host.instance_dir(instance)))
            print(f'    domain and instance directory gone: {gone}')
            if not gone:
                return 1
        finally:
            host.cleanUp()
    print('demo finished')
    return 0


if __name__ == '__main__':
    sys.exit(main())
