"""migrate_disk_and_power_off on the real libvirtd, pushing to a real
rsync daemon that stands for the destination host's instances_path."""

import json
import os
import re

import libvirt
import pytest

from novaext.rsync import client as rsync_client
from tests.real.imagebackend import images


def _point_at(real_host, daemon, password):  # noqa: F811
    pw = daemon['tmp'] / 'client.password'
    pw.write_text(password)
    pw.chmod(0o600)
    real_host.conf_group('novaext', rsync_port=daemon['port'],
                         rsync_password_file=str(pw))


def _running_guest(real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id, ephemeral_gb=1, swap_mb=64)
    real_host.spawn(instance)
    return instance


def _bigger_flavor(instance):
    flavor = instance.flavor.obj_clone()
    flavor.root_gb += 1
    return flavor


def test_pushes_overlay_as_is_and_keeps_resize_dir(
        real_host, daemon, tiny_image):  # noqa: F811
    _point_at(real_host, daemon, 'right-secret')
    instance = _running_guest(real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)

    disk_info = json.loads(real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, '127.0.0.1', _bigger_flavor(instance),
        []))

    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_SHUTOFF
    assert not os.path.exists(inst_dir)
    source = inst_dir + '_resize'
    dest = daemon['instances'] / instance.uuid
    assert sorted(p.name for p in dest.iterdir()) == [
        'disk', 'disk.info', 'disk.local']
    with open(os.path.join(source, 'disk'), 'rb') as f:
        assert (dest / 'disk').read_bytes() == f.read()
    assert {os.path.basename(d['path']) for d in disk_info} >= {
        'disk', 'disk.local', 'disk.swap'}
    images.qemu_io(dest / 'disk', 'qcow2', 'read -P 0x5a 0 1M',
                   force_share=True)
    # Put it back so the host can tear down as usual.
    os.rename(source, inst_dir)
    real_host.destroy(instance)


@pytest.mark.parametrize('fault', ['wrong-secret', 'dead-daemon'])
def test_failure_rolls_back_and_guest_boots_on_source(
        real_host, daemon, tiny_image, fault):  # noqa: F811
    _point_at(real_host, daemon, 'right-secret')
    instance = _running_guest(real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    before = sorted(os.listdir(inst_dir))
    if fault == 'wrong-secret':
        _point_at(real_host, daemon, 'not-the-secret')
    else:
        os.kill(daemon['pid'], 15)

    with pytest.raises(exception_types()) as err:
        real_host.driver.migrate_disk_and_power_off(
            real_host.context, instance, '127.0.0.1',
            _bigger_flavor(instance), [])

    assert 'auth failed' in str(err.value) or 'refused' in str(err.value)
    assert sorted(os.listdir(inst_dir)) == before
    assert not os.path.exists(inst_dir + '_resize')
    assert not (daemon['instances'] / instance.uuid).exists()
    real_host.driver.power_on(real_host.context, instance, [])
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)


def test_daemon_dying_after_power_off_rolls_back(
        real_host, daemon, tiny_image):  # noqa: F811
    """The guest is already off and the directory renamed when the push
    fails: the rename is undone and the guest boots on the source."""
    _point_at(real_host, daemon, 'right-secret')
    instance = _running_guest(real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    before = sorted(os.listdir(inst_dir))
    real_make_dir = rsync_client.RsyncDaemonClient.make_dir

    def make_dir_then_daemon_dies(self, *components):
        real_make_dir(self, *components)
        os.kill(daemon['pid'], 15)
        import time
        time.sleep(0.5)

    real_host.stub_out(
        'novaext.rsync.client.RsyncDaemonClient.make_dir',
        make_dir_then_daemon_dies)

    with pytest.raises(rsync_client.RsyncTransferError,
                       match='Connection refused'):
        real_host.driver.migrate_disk_and_power_off(
            real_host.context, instance, '127.0.0.1',
            _bigger_flavor(instance), [])

    assert sorted(os.listdir(inst_dir)) == before
    assert not os.path.exists(inst_dir + '_resize')
    assert not [p for p in (daemon['instances'] / instance.uuid).iterdir()]
    real_host.driver.power_on(real_host.context, instance, [])
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)


def _kill_daemon_and_its_children(pid):
    """SIGKILL the daemon and the per-connection processes it forked."""
    with open(f'/proc/{pid}/task/{pid}/children') as f:
        children = [int(c) for c in f.read().split()]
    for victim in [pid, *children]:
        try:
            os.kill(victim, 9)
        except ProcessLookupError:
            pass


def _slow_guest_with_data(real_host, daemon, tiny_image):  # noqa: F811
    """A guest with 24 MiB written, pushed at 4 MiB/s: about 6 s."""
    _point_at(real_host, daemon, 'right-secret')
    real_host.conf_group('novaext', rsync_bwlimit_kib=4096,
                         progress_interval=1)
    instance = _running_guest(real_host, tiny_image)
    real_host.driver.power_off(instance)
    images.qemu_io(os.path.join(real_host.instance_dir(instance), 'disk'),
                   'qcow2', 'write -P 0x66 8M 24M')
    return instance


def test_push_reports_progress_in_the_log(
        real_host, daemon, tiny_image, caplog):  # noqa: F811
    instance = _slow_guest_with_data(real_host, daemon, tiny_image)
    caplog.set_level('INFO', logger='novaext.progress')

    real_host.driver.migrate_disk_and_power_off(
        real_host.context, instance, '127.0.0.1', _bigger_flavor(instance),
        [])

    lines = [r.getMessage() for r in caplog.records
             if r.name == 'novaext.progress']
    progress = [line for line in lines
                if line.startswith('resize.push progress: ') and
                'file=disk,' in line]
    assert len(progress) >= 3, lines
    done = [int(re.search(r'bytes_done=(\d+)', line)[1])
            for line in progress]
    assert done == sorted(done) and done[0] < done[-1]
    assert any(line.startswith('resize.push end: target=127.0.0.1:') and
               'file=disk,' in line and 'bytes_sent=' in line
               for line in lines)
    os.rename(real_host.instance_dir(instance) + '_resize',
              real_host.instance_dir(instance))
    real_host.destroy(instance)


def test_daemon_killed_mid_push_rolls_back(
        real_host, daemon, tiny_image, caplog):  # noqa: F811
    """The destination's rsync daemon dies while the overlay is on the
    wire: the push fails, the source directory is back and the guest
    boots with its data. The destination cannot be reached to remove its
    partial copy: that is logged, and the copy is left there."""
    import threading
    instance = _slow_guest_with_data(real_host, daemon, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    before = sorted(os.listdir(inst_dir))
    arrived = daemon['instances'] / instance.uuid / 'disk'
    killed = threading.Event()

    def kill_when_data_arrives():
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if arrived.exists() and arrived.stat().st_size > 2 * 1024 ** 2:
                _kill_daemon_and_its_children(daemon['pid'])
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_data_arrives)
    killer.start()
    try:
        with pytest.raises(rsync_client.RsyncTransferError) as err:
            real_host.driver.migrate_disk_and_power_off(
                real_host.context, instance, '127.0.0.1',
                _bigger_flavor(instance), [])
    finally:
        killer.join()

    assert killed.is_set()
    assert 'exit code' in str(err.value)
    assert sorted(os.listdir(inst_dir)) == before
    assert not os.path.exists(inst_dir + '_resize')
    assert arrived.exists()
    assert f'Could not remove {inst_dir} on 127.0.0.1' in caplog.text
    images.qemu_io(os.path.join(inst_dir, 'disk'), 'qcow2',
                   'read -P 0x5a 0 1M', 'read -P 0x66 8M 24M')
    real_host.driver.power_on(real_host.context, instance, [])
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)


def exception_types():
    from nova import exception
    return (exception.InstanceFaultRollback, rsync_client.RsyncTransferError)


@pytest.fixture
def full_daemon(tmp_path):
    """A destination daemon whose instances_path is a 4 MiB tmpfs."""
    import subprocess

    from realhost import rsyncd

    instances = tmp_path / 'small-instances'
    instances.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs',
                    str(instances)], check=True)
    try:
        with rsyncd.running_daemon(tmp_path, instances) as daemon:
            yield daemon
    finally:
        subprocess.run(['umount', str(instances)], check=True)


def test_destination_out_of_space_rolls_back(
        real_host, full_daemon, tiny_image):
    _point_at(real_host, full_daemon, 'right-secret')
    instance = _running_guest(real_host, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    real_host.driver.power_off(instance)
    images.qemu_io(os.path.join(inst_dir, 'disk'), 'qcow2',
                   'write -P 0x66 8M 8M')
    before = sorted(os.listdir(inst_dir))

    with pytest.raises(rsync_client.RsyncTransferError) as err:
        real_host.driver.migrate_disk_and_power_off(
            real_host.context, instance, '127.0.0.1',
            _bigger_flavor(instance), [])

    assert 'No space left' in str(err.value)
    assert sorted(os.listdir(inst_dir)) == before
    assert not os.path.exists(inst_dir + '_resize')
    assert list(full_daemon['instances'].iterdir()) == []
    images.qemu_io(os.path.join(inst_dir, 'disk'), 'qcow2',
                   'read -P 0x5a 0 1M', 'read -P 0x66 8M 8M')
    real_host.driver.power_on(real_host.context, instance, [])
    assert real_host.domain(instance).state()[0] == \
        libvirt.VIR_DOMAIN_RUNNING
    real_host.destroy(instance)


def test_delete_mid_push_stops_it_and_leaves_nothing_behind(
        real_host, daemon, tiny_image):  # noqa: F811
    """Nova's delete (destroy -> delete_instance_files) during the push:
    the job tracker kills the rsync at once, the resize fails, and neither
    host keeps a file of the instance."""
    import threading
    import time
    instance = _slow_guest_with_data(real_host, daemon, tiny_image)
    inst_dir = real_host.instance_dir(instance)
    arrived = daemon['instances'] / instance.uuid / 'disk'
    outcome = {}

    def migrate():
        try:
            real_host.driver.migrate_disk_and_power_off(
                real_host.context, instance, '127.0.0.1',
                _bigger_flavor(instance), [])
        except Exception as e:
            outcome['error'] = e
        outcome['ended'] = time.monotonic()

    mover = threading.Thread(target=migrate)
    mover.start()
    deadline = time.monotonic() + 60
    while not (arrived.exists() and arrived.stat().st_size > 2 * 1024 ** 2):
        assert time.monotonic() < deadline, 'the push never started'
        time.sleep(0.05)
    pids = set(real_host.driver.job_tracker.jobs.get(instance.uuid, []))
    assert len(pids) == 1, real_host.driver.job_tracker.jobs

    deleted = time.monotonic()
    real_host.destroy(instance)
    mover.join(60)

    assert isinstance(outcome.get('error'), rsync_client.RsyncTransferError)
    # Pushing the rest at 4 MiB/s would have taken seconds more.
    assert outcome['ended'] - deleted < 2.0
    for pid in pids:
        assert not os.path.exists(f'/proc/{pid}') or \
            open(f'/proc/{pid}/stat').read().split()[2] == 'Z'
    assert real_host.driver.job_tracker.jobs.get(instance.uuid) in (None, [])
    for leftover in (inst_dir, inst_dir + '_resize', inst_dir + '_del'):
        assert not os.path.exists(leftover)
    assert not (daemon['instances'] / instance.uuid).exists()
