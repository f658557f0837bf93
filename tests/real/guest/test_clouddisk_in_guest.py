"""A cloud disk on a real Linux guest: found by serial, written, grown
online and unplugged, as the guest sees it. (The guest's own basics,
kernel command line, root file system, the agent's file and command
calls, are checked first; its clean ACPI shutdown is seen in the resize
test, tests/real/guest/test_resize_in_guest.py.)

The disk is virtio-blk, attached in qemu mode (QEMU's initiator logs in
to tgt with CHAP). Host mode needs the host kernel's iSCSI initiator
(iscsi_tcp), which this machine's kernel does not have: not tested here.
"""

import hashlib
import time

import libvirt
import pytest
from lxml import etree

from realhost import guest
from realhost import harness
from realhost.tgt import Lun

MiB = 1024 ** 2


def _wait_in_guest(agent, script, timeout):
    """Run ``script`` in the guest until it succeeds; return the seconds
    it took (raise after ``timeout``)."""
    start = time.monotonic()
    while True:
        code, out, err = agent.run('/bin/sh', '-c', script)
        if code == 0:
            return time.monotonic() - start, out
        if time.monotonic() - start > timeout:
            raise AssertionError(f'{script!r} still fails after '
                                 f'{timeout} s: {out}{err}')
        time.sleep(0.1)


def _disks(host, instance):
    root = etree.fromstring(host.domain(instance).XMLDesc(0))
    return [d.findtext('serial') for d in root.findall('./devices/disk')]


def _lun_bytes(lun, offset, length):
    with open(lun.backing, 'rb') as f:
        f.seek(offset)
        return f.read(length)


def _assert_guest_runs_as_built(agent):
    """The guest booted its own kernel command line on an ext4 root, and
    the agent reads and writes files and runs commands in it."""
    assert agent.sh('cat /proc/cmdline').strip().endswith(
        guest.COMMAND_LINE)
    assert '/dev/vda / ext4 rw' in agent.sh('cat /proc/mounts')
    agent.write_file('/root/hello', b'novaext\n')
    assert agent.read_file('/root/hello') == b'novaext\n'
    assert agent.sh('cat /root/hello') == 'novaext\n'
    code, _out, err = agent.run('/bin/false')
    assert code == 1, err


@pytest.fixture
def lun(tmp_path):
    lun = Lun(tmp_path, 960, chap=('novaext-user', 'Chap-Secret-16'))
    yield lun
    lun.remove()


def test_cloud_disk_by_serial_extend_and_unplug_in_guest(
        guest_image, tmp_path, lun):
    with harness.RealComputeHost(
            'real-host', instances_path=str(tmp_path / 'host')) as host:
        host.conf_group('novaext', clouddisk_attach_mode='qemu')
        ids = guest_image.upload(host)
        instance, agent, seconds = guest.spawn(host, ids)
        print(f'guest agent answered {seconds:.1f} s after spawn returned')
        _assert_guest_runs_as_built(agent)
        info = lun.connection_info()

        host.driver.attach_volume(host.context, info, instance, '/dev/vdb',
                                  disk_bus='virtio', device_type='disk')

        # The device novaext records is the disk inside the guest.
        device = info['data']['guest_device']
        assert device == f'/dev/disk/by-id/virtio-{lun.volume_id[:20]}'
        _seconds, name = _wait_in_guest(
            agent, f'test -b {device} && readlink -f {device}', 10)
        kernel_name = name.strip().rsplit('/', 1)[1]
        assert agent.block_size_bytes(kernel_name) == 64 * MiB
        block = agent.sh(
            f'head -c 1M /dev/urandom > /root/block && dd if=/root/block '
            f'of={device} bs=1M seek=8 oflag=direct conv=fsync 2>/dev/null'
            ' && sha256sum /root/block').split()[0]
        assert hashlib.sha256(_lun_bytes(lun, 8 * MiB, MiB)).hexdigest() \
            == block

        # Grown online: the guest kernel sees it without a reboot.
        lun.grow(96)
        host.driver.extend_volume(host.context, info, instance, 96 * MiB)
        seconds, _ = _wait_in_guest(
            agent, f'test $(cat /sys/block/{kernel_name}/size) = '
            f'{96 * MiB // 512}', 2)
        print(f'guest saw {kernel_name} at 96 MiB {seconds:.2f} s after '
              f'extend_volume returned')
        agent.sh(f'dd if=/root/block of={device} bs=1M seek=90 '
                 'oflag=direct conv=fsync 2>/dev/null')
        assert hashlib.sha256(_lun_bytes(lun, 90 * MiB, MiB)).hexdigest() \
            == block

        # virtio-blk is a PCI device: it goes only when the guest agrees,
        # within Nova's detach retries.
        start = time.monotonic()
        host.driver.detach_volume(host.context, info, instance, '/dev/vdb')
        seconds = time.monotonic() - start
        print(f'virtio-blk detach took {seconds:.1f} s')
        window = (host.conf_group('libvirt').device_detach_attempts *
                  host.conf_group('libvirt').device_detach_timeout)
        assert seconds < window
        assert lun.volume_id not in _disks(host, instance)
        _wait_in_guest(agent, f'! test -e /sys/block/{kernel_name}', 5)
        assert agent.sh(f'test -e {device} || echo gone').strip() == 'gone'
        assert lun.sessions() == ''
        assert host.domain(instance).state()[0] == libvirt.VIR_DOMAIN_RUNNING
        host.destroy(instance)
