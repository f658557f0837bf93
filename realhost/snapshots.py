"""Helpers for the snapshot tests on the real libvirtd."""

import re
import subprocess
import threading
import time

import libvirt
import libvirt_qemu

from realhost import harness


def _device_of(info, disk_name):
    """The qdev path of the drive whose file is named ``disk_name``
    (default: the first drive) in HMP ``info block`` output."""
    stanzas = re.split(r'\n(?=\S)', info.strip())
    for stanza in stanzas:
        first = stanza.splitlines()[0]
        if disk_name is None or re.search(
                rf'/{re.escape(disk_name)} \(', first):
            return stanza.split('Attached to:', 1)[1].split()[0]
    raise AssertionError(f'no drive {disk_name!r} in: {info}')


def guest_write(dom, pattern, offset, length, disk_name=None):
    """Write through the running QEMU, as the guest would (HMP qemu-io
    on the device of ``disk_name``, default the root disk)."""
    info = libvirt_qemu.qemuMonitorCommand(
        dom, 'info block', libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    device = _device_of(info, disk_name)
    cmd = f'qemu-io -d {device} "write -P {pattern} {offset} {length}"'
    out = libvirt_qemu.qemuMonitorCommand(
        dom, cmd, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    if 'error' in out.lower() or 'failed' in out.lower():
        raise AssertionError(f'{cmd}: {out}')
    # As a guest's fsync would: without it QEMU may still hold the new
    # qcow2 metadata, and qemu-img map from outside sees nothing written.
    libvirt_qemu.qemuMonitorCommand(
        dom, f'qemu-io -d {device} "flush"',
        libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    return out


def identical(a, b, fmt_a='qcow2', fmt_b='qcow2'):
    out = subprocess.run(['qemu-img', 'compare', '-U', '-f', fmt_a,
                          '-F', fmt_b, a, b], capture_output=True,
                         text=True)
    return out.returncode == 0, out.stdout + out.stderr


class StateRecorder:
    """Polls a domain's state in a thread; records every distinct state
    and for how long the domain was not running."""

    def __init__(self, instance_name, poll=0.01):
        self.name = instance_name
        self.poll = poll
        self.states = []
        self.not_running_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, conn):
        try:
            state = conn.lookupByName(self.name).state()[0]
        except libvirt.libvirtError:
            state = None
        now = time.monotonic()
        if state != libvirt.VIR_DOMAIN_RUNNING and self._last is not None:
            self.not_running_seconds += now - self._last
        self._last = now
        if not self.states or self.states[-1] != state:
            self.states.append(state)

    def _run(self):
        conn = libvirt.open(harness.LIBVIRT_URI)
        try:
            while not self._stop.wait(self.poll):
                self._sample(conn)
        finally:
            conn.close()

    def __enter__(self):
        # One sample before and one after, however short the block.
        self._conn = libvirt.open(harness.LIBVIRT_URI)
        self._last = None
        self._sample(self._conn)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample(self._conn)
        self._conn.close()
        return False
