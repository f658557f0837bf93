"""Snapshots of a real Linux guest, checked from inside guests.

A file of random data is written and synced inside the guest; the
snapshot is booted on another host (its own instances_path, an empty
_base, the same image service) and the file's sha256 is computed again
inside the new guest.
"""

import os
import subprocess

import libvirt

from realhost import guest
from realhost import harness
from realhost import snapshots

RUNNING = libvirt.VIR_DOMAIN_RUNNING
PAUSED = libvirt.VIR_DOMAIN_PAUSED
SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
MiB = 1024 ** 2
DATA = '/root/novaext-data'


def _snapshot(host, instance):
    snap_id = host.new_snapshot_image(instance=instance)
    with snapshots.StateRecorder(instance.name) as recorder:
        host.driver.snapshot(host.context, instance, snap_id,
                             lambda **kw: None)
    return snap_id, recorder


def _boot_elsewhere(tmp_path, exported, snap_ids, ids):
    """Boot each of ``snap_ids`` on a new host with an empty _base, one
    after the other; return {snapshot id: sha256 of DATA inside its
    guest} and what the host downloaded."""
    other_path = str(tmp_path / 'other-host')
    digests = {}
    with harness.RealComputeHost('other-host',
                                 instances_path=other_path) as other:
        other.import_images(exported)
        for snap_id in snap_ids:
            meta = other.images.show(other.context, snap_id)
            # Nova records the kernel and initrd with the snapshot, so
            # the compute API boots it the same way.
            assert meta['properties']['kernel_id'] == ids['kernel_id']
            assert meta['properties']['ramdisk_id'] == ids['ramdisk_id']
            instance, agent, seconds = guest.spawn(
                other, dict(ids, image_id=snap_id))
            print(f'snapshot {snap_id} booted elsewhere: agent after '
                  f'{seconds:.1f} s')
            digests[snap_id] = agent.sha256(DATA)
            other.destroy(instance)
        return digests, dict(other.downloads)


def test_live_delta_and_cold_paused_snapshots_keep_data_in_guest(
        guest_image, tmp_path):
    """One guest, two snapshots: a live delta of it running, then a cold
    full one of it paused; each booted elsewhere holds the file."""
    with harness.RealComputeHost(
            'real-host', instances_path=str(tmp_path / 'host')) as host:
        host.conf_group('novaext', snapshot_mode='delta')
        ids = guest_image.upload(host)
        instance, agent, _ = guest.spawn(host, ids)
        written = agent.write_known_file(DATA, 16)

        live_id, recorder = _snapshot(host, instance)

        assert recorder.states == [RUNNING]
        assert agent.sha256(DATA) == written
        meta = host.images.show(host.context, live_id)
        assert meta['properties']['base_image_id_sha1'] == \
            harness.base_name(ids['image_id'])
        # Only what the guest wrote since boot: the 16 MiB file, the
        # journal, logs; not the 1 GiB root file system.
        print(f'delta uploaded: {host.uploads[live_id] / MiB:.1f} MiB')
        assert 16 * MiB < host.uploads[live_id] < 64 * MiB

        host.conf_group('novaext', snapshot_mode='full')
        host.conf_group('workarounds', disable_libvirt_livesnapshot=True)
        host.driver.pause(instance)

        cold_id, recorder = _snapshot(host, instance)

        assert recorder.states == [PAUSED, SHUTOFF, PAUSED]
        assert 'base_image_id_sha1' not in host.images.show(
            host.context, cold_id)['properties']
        host.driver.unpause(instance)
        assert agent.sha256(DATA) == written
        exported = host.export_images(str(tmp_path))
        host.destroy(instance)

    digests, downloads = _boot_elsewhere(tmp_path, exported,
                                         [live_id, cold_id], ids)

    assert digests == {live_id: written, cold_id: written}
    # The delta and, by its base's sha1, the base image, once; the full
    # snapshot on its own.
    assert downloads[live_id] == 1
    assert downloads[ids['image_id']] == 1
    assert downloads[cold_id] == 1


def _superblock(raw_path):
    out = subprocess.run(['dumpe2fs', '-h', raw_path], capture_output=True,
                         text=True, check=True).stdout
    return dict(line.split(':', 1) for line in out.splitlines()
                if ':' in line)


def test_quiesced_snapshot_freezes_guest_and_is_clean_in_guest(
        guest_image, tmp_path):
    with harness.RealComputeHost(
            'real-host', instances_path=str(tmp_path / 'host')) as host:
        ids = guest_image.upload(
            host, properties={'os_require_quiesce': 'yes'})
        instance, agent, _ = guest.spawn(host, ids)
        agent.write_known_file(DATA, 4)
        # The guest keeps writing while the snapshot runs.
        agent.run('/bin/sh', '-c',
                  'while :; do date >> /root/clock; sync; sleep 0.2; done '
                  '> /dev/null 2>&1 &')
        seen = []
        quiesce, unquiesce = host.driver.quiesce, host.driver.unquiesce

        def observed(call, name):
            def wrapper(*args, **kwargs):
                call(*args, **kwargs)
                seen.append((name, agent.command('guest-fsfreeze-status')))
            return wrapper
        host.driver.quiesce = observed(quiesce, 'quiesce')
        host.driver.unquiesce = observed(unquiesce, 'unquiesce')

        snap_id, recorder = _snapshot(host, instance)

        assert seen == [('quiesce', 'frozen'), ('unquiesce', 'thawed')]
        assert recorder.states == [RUNNING]
        before = agent.sh('wc -l < /root/clock')
        agent.sh('sleep 1')
        assert int(agent.sh('wc -l < /root/clock')) > int(before)
        raw = _raw(host, snap_id, tmp_path / 'quiesced.raw')
        # Control: the same guest snapshotted without the freeze.
        host.driver.quiesce = host.driver.unquiesce = lambda *a: None
        unfrozen_id, _ = _snapshot(host, instance)
        unfrozen = _raw(host, unfrozen_id, tmp_path / 'unfrozen.raw')
        host.destroy(instance)

    superblock = _superblock(raw)
    assert superblock['Filesystem state'].strip() == 'clean'
    # Frozen, ext4 flushed its journal: nothing to replay.
    assert 'needs_recovery' not in superblock['Filesystem features']
    fsck = subprocess.run(['e2fsck', '-fn', raw], capture_output=True,
                          text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert os.path.getsize(raw) == 1024 ** 3
    # Not frozen, the file system was caught mounted: a journal to replay.
    assert 'needs_recovery' in _superblock(unfrozen)['Filesystem features']


def _raw(host, image_id, path):
    subprocess.run(['qemu-img', 'convert', '-O', 'raw',
                    host.uploaded_file(image_id), str(path)], check=True)
    return str(path)
