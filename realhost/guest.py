"""A real Linux guest: its image (scripts/build-guest-image) and its agent.

``GuestImage`` builds the image once per recipe and puts its three parts
into a compute host's image service the way an operator uploads a
direct-kernel-boot image to Glance: the kernel (aki), the initrd (ari) and
the root file system (qcow2, ext4 on the whole disk) with ``kernel_id``,
``ramdisk_id``, ``os_command_line`` and ``hw_qemu_guest_agent=yes``.

``Agent`` talks to qemu-guest-agent inside a running domain through
libvirt (the virtio-serial channel Nova configures for
hw_qemu_guest_agent): commands in the guest (guest-exec), files read and
written (guest-file-*), file systems frozen and thawed.

Under this machine's nested KVM a Linux kernel does not get past its
decompressor in reasonable time (every first touch of guest memory is a
nested fault), so the real tier runs this guest under TCG (virt_type
qemu), where the agent answers 13-15 s after spawn (2 vCPUs).
"""

import base64
import json
import os
import subprocess
import time
import uuid

import libvirt
import libvirt_qemu

from realhost import runtime

IMAGE_DIR = '/var/cache/novaext-guest'
BUILD_SCRIPT = os.path.join(runtime.REPO, 'scripts', 'build-guest-image')
COMMAND_LINE = 'root=/dev/vda console=ttyS0 rw'
BOOT_TIMEOUT = 180


class GuestImage:
    """The built guest image in ``image_dir``."""

    def __init__(self, image_dir=IMAGE_DIR):
        self.image_dir = image_dir
        self.kernel = os.path.join(image_dir, 'vmlinuz')
        self.initrd = os.path.join(image_dir, 'initrd.img')
        self.root = os.path.join(image_dir, 'root.qcow2')

    def ensure(self):
        """Build the image unless it is there for the current recipe
        (the script decides); raise with its output if the build fails."""
        out = subprocess.run([BUILD_SCRIPT, self.image_dir],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f'{BUILD_SCRIPT} failed: {out.stdout}'
                               f'{out.stderr}')
        return self

    def upload(self, host, image_id=None, properties=None):
        """Put kernel, initrd and root into ``host``'s image service;
        return {'image_id', 'kernel_id', 'ramdisk_id'}.

        ``image_id`` names the root image (the same id on every host of a
        test, as one Glance would give)."""
        kernel_id = host.upload_image(self.kernel, 'aki',
                                      name='novaext-guest-kernel',
                                      image_id=_derived(image_id, 'kernel'),
                                      by_reference=True)
        ramdisk_id = host.upload_image(self.initrd, 'ari',
                                       name='novaext-guest-initrd',
                                       image_id=_derived(image_id, 'ramdisk'),
                                       by_reference=True)
        props = {'kernel_id': kernel_id, 'ramdisk_id': ramdisk_id,
                 'os_command_line': COMMAND_LINE,
                 'hw_qemu_guest_agent': 'yes', **(properties or {})}
        image_id = host.upload_image(self.root, 'qcow2',
                                     name='novaext-guest',
                                     properties=props, image_id=image_id,
                                     by_reference=True)
        return {'image_id': image_id, 'kernel_id': kernel_id,
                'ramdisk_id': ramdisk_id}


def _derived(image_id, part):
    """A stable id for the kernel or initrd of root image ``image_id``."""
    if image_id is None:
        return None
    return str(uuid.uuid5(uuid.UUID(image_id), part))


class AgentError(Exception):
    """The guest agent answered with an error or not at all."""


class Agent:
    """qemu-guest-agent of the running libvirt domain ``dom``."""

    def __init__(self, dom):
        self.dom = dom

    def command(self, execute, timeout=10, **arguments):
        """Run one agent command; return its 'return' value."""
        request = {'execute': execute}
        if arguments:
            request['arguments'] = arguments
        try:
            answer = libvirt_qemu.qemuAgentCommand(
                self.dom, json.dumps(request), timeout, 0)
        except libvirt.libvirtError as e:
            raise AgentError(f'{execute}: {e}') from e
        answer = json.loads(answer)
        if 'error' in answer:
            raise AgentError(f'{execute}: {answer["error"]}')
        return answer.get('return')

    def wait(self, timeout=BOOT_TIMEOUT):
        """Wait until the agent answers; return the seconds waited."""
        start = time.monotonic()
        while True:
            try:
                self.command('guest-ping', timeout=5)
                return time.monotonic() - start
            except AgentError as e:
                if time.monotonic() - start > timeout:
                    raise AgentError(
                        f'no answer from the guest agent in {timeout} s: '
                        f'{e}') from e
                time.sleep(0.5)

    def run(self, *argv, timeout=60):
        """Run ``argv`` in the guest; return (exit code, stdout, stderr)."""
        pid = self.command('guest-exec', path=argv[0], arg=list(argv[1:]),
                           **{'capture-output': True})['pid']
        deadline = time.monotonic() + timeout
        while True:
            status = self.command('guest-exec-status', pid=pid)
            if status['exited']:
                break
            if time.monotonic() > deadline:
                raise AgentError(f'{argv} still running after {timeout} s')
            time.sleep(0.1)

        def decoded(key):
            return base64.b64decode(status.get(key, '')).decode(
                errors='replace')
        return status.get('exitcode'), decoded('out-data'), decoded(
            'err-data')

    def sh(self, script, timeout=60):
        """Run a shell script in the guest; return its stdout; raise
        with its output if it fails."""
        code, out, err = self.run('/bin/sh', '-c', script, timeout=timeout)
        if code != 0:
            raise AgentError(f'{script!r} exited {code}: {out}{err}')
        return out

    def read_file(self, path):
        handle = self.command('guest-file-open', path=path, mode='r')
        try:
            data = b''
            while True:
                chunk = self.command('guest-file-read', handle=handle,
                                     count=1024 * 1024)
                data += base64.b64decode(chunk['buf-b64'])
                if chunk['eof']:
                    return data
        finally:
            self.command('guest-file-close', handle=handle)

    def write_file(self, path, data):
        handle = self.command('guest-file-open', path=path, mode='w')
        try:
            self.command('guest-file-write', handle=handle,
                         **{'buf-b64': base64.b64encode(data).decode()})
            self.command('guest-file-flush', handle=handle)
        finally:
            self.command('guest-file-close', handle=handle)

    def write_known_file(self, path, mib):
        """Write ``mib`` MiB of random data to ``path`` in the guest and
        sync it to disk; return its sha256 as the guest computed it."""
        return self.sh(
            f'head -c {mib}M /dev/urandom > {path} && sync {path} && sync'
            f' && sha256sum {path}', timeout=120).split()[0]

    def sha256(self, path):
        return self.sh(f'sha256sum {path}', timeout=120).split()[0]

    def block_size_bytes(self, device):
        """Size of block device ``device`` (e.g. 'vda') as the guest
        kernel sees it (/sys/block/<device>/size, 512-byte sectors)."""
        return int(self.sh(f'cat /sys/block/{device}/size')) * 512


def new_instance(host, ids, root_gb=1, memory_mb=256, instance_uuid=None,
                 vcpus=2):
    """The instance record of the guest of ``ids`` (from
    GuestImage.upload) on ``host``, as the compute API makes it."""
    return host.new_instance(
        ids['image_id'], root_gb=root_gb, memory_mb=memory_mb,
        instance_uuid=instance_uuid, vcpus=vcpus, kernel_id=ids['kernel_id'],
        ramdisk_id=ids['ramdisk_id'],
        image_meta=host.images.show(host.context, ids['image_id']))


def resizing(instance, old_gb, new_gb):
    """``instance`` with old_flavor and new_flavor, as the compute
    manager keeps them from the resize until its confirm or revert."""
    instance.old_flavor = instance.flavor.obj_clone()
    instance.old_flavor.root_gb = old_gb
    instance.new_flavor = instance.flavor.obj_clone()
    instance.new_flavor.root_gb = new_gb
    return instance


def spawn(host, ids, **kwargs):
    """Spawn the guest of ``ids`` on ``host`` through the driver and
    wait for its agent; return (instance, agent, seconds from spawn's
    return to the agent's first answer). ``kwargs`` as new_instance."""
    instance = new_instance(host, ids, **kwargs)
    host.spawn(instance)
    agent = Agent(host.domain(instance))
    return instance, agent, agent.wait()


def domain_log(instance):
    """libvirt's log of ``instance``'s QEMU (start and stop lines)."""
    path = f'/var/log/libvirt/qemu/{instance.name}.log'
    with open(path, errors='replace') as f:
        return f.read()
