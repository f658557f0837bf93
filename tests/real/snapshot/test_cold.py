"""Cold snapshots on the real libvirtd: the guest comes back as it was."""

import json
import os
import subprocess

import libvirt
import pytest

from novaext.imagebackend import image_safety
from novaext.snapshot import extract as snapshot_extract
from realhost import harness
from realhost import snapshots
from tests.real.imagebackend import images

RUNNING = libvirt.VIR_DOMAIN_RUNNING
PAUSED = libvirt.VIR_DOMAIN_PAUSED
SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF


@pytest.fixture
def guest(real_host, tiny_image):
    """A running guest with 0x77 written at 2M; cold snapshots forced."""
    real_host.conf_group('workarounds', disable_libvirt_livesnapshot=True)
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    dom = real_host.domain(instance)
    snapshots.guest_write(dom, '0x77', '2M', '1M')
    yield instance, dom
    real_host.destroy(instance)


def _snapshot(real_host, instance):
    snap_id = real_host.new_snapshot_image()
    with snapshots.StateRecorder(instance.name) as recorder:
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: None)
    return snap_id, recorder


def _check_upload(real_host, instance, snap_id):
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    uploaded = real_host.uploaded_file(snap_id)
    same, out = snapshots.identical(uploaded, disk)
    assert same, out
    images.qemu_io(uploaded, 'qcow2', 'read -P 0x5a 0 1M',
                   'read -P 0x77 2M 1M')


def test_cold_snapshot_of_running_guest_saves_it_and_starts_it_again(
        real_host, guest):
    instance, dom = guest
    snap_id, recorder = _snapshot(real_host, instance)
    # managedSave stopped it for the extraction (libvirt pauses it while
    # it saves and restores the memory), then it ran again
    assert recorder.states[0] == RUNNING
    assert recorder.states[-1] == RUNNING
    assert [s for s in recorder.states if s != PAUSED] == [
        RUNNING, SHUTOFF, RUNNING]
    assert dom.state()[0] == RUNNING
    assert not dom.hasManagedSaveImage(0)
    _check_upload(real_host, instance, snap_id)


def test_cold_snapshot_of_paused_guest_leaves_it_paused(real_host, guest):
    instance, dom = guest
    real_host.driver.pause(instance)
    assert dom.state()[0] == PAUSED
    snap_id, recorder = _snapshot(real_host, instance)
    assert recorder.states == [PAUSED, SHUTOFF, PAUSED]
    assert dom.state()[0] == PAUSED
    assert not dom.hasManagedSaveImage(0)
    _check_upload(real_host, instance, snap_id)


def test_cold_snapshot_of_stopped_guest_leaves_it_stopped(real_host, guest):
    instance, dom = guest
    real_host.driver.power_off(instance)
    assert dom.state()[0] == SHUTOFF
    snap_id, recorder = _snapshot(real_host, instance)
    assert recorder.states == [SHUTOFF]
    assert dom.state()[0] == SHUTOFF
    assert not dom.hasManagedSaveImage(0)
    _check_upload(real_host, instance, snap_id)


def test_failed_cold_extraction_still_restarts_the_guest(
        real_host, guest, monkeypatch):
    instance, dom = guest

    def fail(*args, **kwargs):
        assert dom.state()[0] == SHUTOFF  # saved at this point
        raise RuntimeError('injected extraction failure')

    monkeypatch.setattr(snapshot_extract, 'extract_backend_disk', fail)
    snap_id = real_host.new_snapshot_image()
    with pytest.raises(RuntimeError, match='injected'):
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: None)
    assert dom.state()[0] == RUNNING
    assert not dom.hasManagedSaveImage(0)
    assert real_host.uploads == {}


def test_cold_delta_of_stopped_guest_is_compressed_overlay(
        real_host, guest):
    instance, dom = guest
    real_host.conf_group('novaext', snapshot_mode='delta')
    real_host.conf_group('libvirt', snapshot_compression=True)
    real_host.driver.power_off(instance)
    snap_id, recorder = _snapshot(real_host, instance)
    assert recorder.states == [SHUTOFF]
    uploaded = real_host.uploaded_file(snap_id)
    meta = real_host.images.show(real_host.context, snap_id)
    base_sha1 = meta['properties']['base_image_id_sha1']
    assert base_sha1 == os.path.basename(
        harness.qemu_img_info(os.path.join(
            real_host.instance_dir(instance), 'disk'))['backing-filename'])
    image_safety.check_delta_snapshot(uploaded, snap_id, 'qcow2', base_sha1)
    # Pointed at its base, as the image backend does on boot, the delta
    # reads as the disk.
    base = os.path.join(real_host.instances_path, '_base', base_sha1)
    subprocess.run(['qemu-img', 'rebase', '-u', '-f', 'qcow2', '-b', base,
                    '-F', 'raw', uploaded], check=True)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    same, out = snapshots.identical(uploaded, disk)
    assert same, out
    check = json.loads(subprocess.run(
        ['qemu-img', 'check', '--output=json', uploaded],
        capture_output=True, text=True).stdout)
    assert check['compressed-clusters'] > 0, check
