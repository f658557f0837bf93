"""Live snapshots on the real libvirtd: block copy while the guest runs."""

import os
import pwd
import shutil
import tempfile

import libvirt
import pytest
from lxml import etree
from nova.compute import task_states

from novaext.snapshot import live as snapshot_live
from realhost import harness
from realhost import snapshots
from tests.real.imagebackend import images


def _running_guest(real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')
    instance = real_host.new_instance(image_id)
    real_host.spawn(instance)
    return instance, real_host.domain(instance)


def test_live_snapshot_never_pauses_and_uploads_disk_at_snapshot_point(
        real_host, tiny_image, monkeypatch):
    instance, dom = _running_guest(real_host, tiny_image)
    snapshots.guest_write(dom, '0x77', '2M', '1M')
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    snap_id = real_host.new_snapshot_image()
    during_job = []
    wait = snapshot_live.BlockJobWaiter.wait

    def wait_and_look(waiter):
        # The copy job exists now; the guest must be running through it.
        during_job.append((dom.blockJobInfo('vda', 0).get('type'),
                           dom.state()[0]))
        wait(waiter)
        during_job.append((dom.blockJobInfo('vda', 0).get('type'),
                           dom.state()[0]))

    monkeypatch.setattr(snapshot_live.BlockJobWaiter, 'wait', wait_and_look)
    task_updates = []
    with snapshots.StateRecorder(instance.name) as recorder:
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: task_updates.append(kw))

    copy = libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY
    running = libvirt.VIR_DOMAIN_RUNNING
    assert during_job == [(copy, running), (copy, running)]
    assert recorder.states == [running]
    assert dom.blockJobInfo('vda', 0) == {}
    assert task_updates == [
        {'task_state': task_states.IMAGE_PENDING_UPLOAD},
        {'task_state': task_states.IMAGE_UPLOADING,
         'expected_state': task_states.IMAGE_PENDING_UPLOAD}]
    uploaded = real_host.uploaded_file(snap_id)
    same, out = snapshots.identical(uploaded, disk)
    assert same, out
    info = harness.qemu_img_info(uploaded)
    assert info['format'] == 'qcow2'
    assert 'backing-filename' not in info
    images.qemu_io(uploaded, 'qcow2', 'read -P 0x5a 0 1M',
                   'read -P 0x77 2M 1M')
    # What the guest writes afterwards is not in the snapshot.
    snapshots.guest_write(dom, '0x88', '4M', '1M')
    images.qemu_io(uploaded, 'qcow2', 'read -P 0 4M 1M')
    meta = real_host.images.show(real_host.context, snap_id)
    assert meta['disk_format'] == 'qcow2'
    assert meta['container_format'] == 'bare'
    assert meta['status'] == 'active'
    assert meta['properties']['image_location'] == 'snapshot'
    assert meta['properties']['owner_id'] == instance.project_id
    assert 'base_image_id_sha1' not in meta['properties']
    # The guest still runs on its own disk.
    assert dom.state()[0] == running
    assert disk in dom.XMLDesc(0)
    real_host.destroy(instance)


@pytest.mark.parametrize('strategy', snapshot_live.STRATEGIES,
                         ids=lambda s: s.name)
def test_failure_mid_job_leaves_domain_persistent_and_definition_unchanged(
        real_host, tiny_image, monkeypatch, strategy):
    instance, dom = _running_guest(real_host, tiny_image)
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE |
                             libvirt.VIR_DOMAIN_XML_SECURE)
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    backing = harness.qemu_img_info(disk)['full-backing-filename']
    snap_id = real_host.new_snapshot_image()
    monkeypatch.setattr(snapshot_live, 'STRATEGIES', (strategy,))
    seen = {}

    def fail_mid_job(waiter):
        seen['job'] = dom.blockJobInfo('vda', 0).get('type')
        seen['persistent'] = bool(dom.isPersistent())
        raise RuntimeError('injected failure during the block copy')

    monkeypatch.setattr(snapshot_live.BlockJobWaiter, 'wait', fail_mid_job)

    with pytest.raises(RuntimeError, match='injected'):
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: None)

    assert seen['job'] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY
    # the fallback really ran the job on an undefined domain
    assert seen['persistent'] is (strategy.name == 'transient-job')
    dom = real_host.domain(instance)
    assert dom.isPersistent()
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE |
                       libvirt.VIR_DOMAIN_XML_SECURE) == definition
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.blockJobInfo('vda', 0) == {}
    assert disk in dom.XMLDesc(0)
    assert harness.qemu_img_info(disk)['full-backing-filename'] == backing
    assert real_host.uploads == {}
    snap_dir = os.path.join(real_host.instances_path, 'snapshots')
    assert os.listdir(snap_dir) == []
    real_host.destroy(instance)


def test_live_snapshot_of_paused_guest_keeps_it_paused_raw_format(
        real_host, tiny_image):
    real_host.conf_group('libvirt', snapshot_image_format='raw')
    instance, dom = _running_guest(real_host, tiny_image)
    snapshots.guest_write(dom, '0x77', '2M', '1M')
    real_host.driver.pause(instance)
    snap_id = real_host.new_snapshot_image()
    with snapshots.StateRecorder(instance.name) as recorder:
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: None)
    assert recorder.states == [libvirt.VIR_DOMAIN_PAUSED]
    assert not dom.hasManagedSaveImage(0)
    uploaded = real_host.uploaded_file(snap_id)
    assert harness.qemu_img_info(uploaded)['format'] == 'raw'
    assert real_host.images.show(
        real_host.context, snap_id)['disk_format'] == 'raw'
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    same, out = snapshots.identical(uploaded, disk, fmt_a='raw')
    assert same, out
    real_host.destroy(instance)


def test_upload_failure_leaves_guest_running_and_no_files(
        real_host, tiny_image, monkeypatch):
    instance, dom = _running_guest(real_host, tiny_image)
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    snap_id = real_host.new_snapshot_image()
    update = real_host.images.update

    def failing_update(context, image_id, metadata, data=None, **kw):
        if data is not None:
            data.read(1024 * 1024)
            raise OSError('image service connection reset')
        return update(context, image_id, metadata, data, **kw)

    monkeypatch.setattr(real_host.images, 'update', failing_update)
    with snapshots.StateRecorder(instance.name) as recorder:
        with pytest.raises(OSError, match='connection reset'):
            real_host.driver.snapshot(real_host.context, instance, snap_id,
                                      lambda **kw: None)
    assert recorder.states == [libvirt.VIR_DOMAIN_RUNNING]
    assert dom.isPersistent()
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == definition
    assert dom.blockJobInfo('vda', 0) == {}
    snap_dir = os.path.join(real_host.instances_path, 'snapshots')
    assert os.listdir(snap_dir) == []
    real_host.destroy(instance)


def test_required_quiesce_without_agent_fails_before_touching_guest(
        real_host, tiny_image):
    from nova import exception
    instance, dom = _running_guest(real_host, tiny_image)
    # What Nova keeps of an image with os_require_quiesce and no agent.
    instance.system_metadata['image_os_require_quiesce'] = 'yes'
    instance.save()
    instance.refresh()
    snap_id = real_host.new_snapshot_image()
    task_updates = []
    with snapshots.StateRecorder(instance.name) as recorder:
        with pytest.raises(exception.QemuGuestAgentNotEnabled):
            real_host.driver.snapshot(real_host.context, instance, snap_id,
                                      lambda **kw: task_updates.append(kw))
    assert task_updates == []
    assert recorder.states == [libvirt.VIR_DOMAIN_RUNNING]
    assert real_host.uploads == {}
    real_host.destroy(instance)


@pytest.mark.parametrize('required', [True, False],
                         ids=['required', 'optional'])
def test_quiesce_with_silent_agent_fails_only_when_required(
        real_host, tiny_image, required):
    """The image asks for the agent, the guest runs none: the freeze after
    the copy fails; required -> the snapshot fails, guest untouched;
    optional -> the snapshot goes on unquiesced (Nova's semantics)."""
    from nova import exception
    props = {'hw_qemu_guest_agent': 'yes'}
    if required:
        props['os_require_quiesce'] = 'yes'
    image_id = real_host.upload_image(str(tiny_image), 'qcow2',
                                      properties=props)
    instance = real_host.new_instance(image_id)
    instance.system_metadata.update(
        {f'image_{k}': v for k, v in props.items()})
    instance.save()
    real_host.spawn(instance)
    dom = real_host.domain(instance)
    assert 'org.qemu.guest_agent.0' in dom.XMLDesc(0)
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    snap_id = real_host.new_snapshot_image()

    def snapshot():
        real_host.driver.snapshot(real_host.context, instance, snap_id,
                                  lambda **kw: None)

    if required:
        with pytest.raises(exception.InstanceQuiesceFailed):
            snapshot()
        assert real_host.uploads == {}
    else:
        snapshot()
        assert snap_id in real_host.uploads
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.isPersistent()
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == definition
    assert dom.blockJobInfo('vda', 0) == {}
    real_host.destroy(instance)


def test_block_copy_timeout_aborts_job_and_guest_runs_on(
        real_host, tiny_image, monkeypatch):
    import time
    real_host.conf_group('novaext', snapshot_block_job_timeout=2)
    instance, dom = _running_guest(real_host, tiny_image)
    snapshots.guest_write(dom, '0x77', '0', '48M')
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    start_copy = snapshot_live.TransientJobCopy.start
    speeds = []

    def slow_start(strategy, driver, guest, dev, delta):
        start_copy(strategy, driver, guest, dev, delta)
        dom.blockJobSetSpeed('vda', 1, 0)  # 1 MiB/s: 48 s for the copy
        speeds.append(dom.blockJobInfo('vda', 0)['bandwidth'])

    monkeypatch.setattr(snapshot_live.TransientJobCopy, 'start', slow_start)
    snap_id = real_host.new_snapshot_image()
    began = time.monotonic()
    with snapshots.StateRecorder(instance.name) as recorder:
        with pytest.raises(snapshot_live.BlockJobTimeout):
            real_host.driver.snapshot(real_host.context, instance, snap_id,
                                      lambda **kw: None)
    assert time.monotonic() - began < 20
    assert speeds and speeds[0] > 0
    assert recorder.states == [libvirt.VIR_DOMAIN_RUNNING]
    assert dom.blockJobInfo('vda', 0) == {}
    assert dom.isPersistent()
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == definition
    assert real_host.uploads == {}
    assert os.listdir(os.path.join(real_host.instances_path,
                                   'snapshots')) == []
    real_host.destroy(instance)


QEMU_USER = 'libvirt-qemu'


def _run_qemu_as(dom, user):
    """Restart ``dom`` with QEMU running as ``user`` (a static DAC label,
    as a host whose qemu.conf names a non-root user would run it):
    libvirt hands every disk of the domain to that user."""
    entry = pwd.getpwnam(user)
    xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    seclabel = etree.SubElement(xml, 'seclabel', type='static', model='dac',
                                relabel='yes')
    etree.SubElement(seclabel, 'label').text = (
        f'+{entry.pw_uid}:+{entry.pw_gid}')
    dom.destroy()
    conn = libvirt.open(harness.LIBVIRT_URI)
    try:
        conn.defineXML(etree.tostring(xml, encoding='unicode')).create()
    finally:
        conn.close()
    return entry.pw_uid


def _qemu_uid(instance_name):
    with open(f'/run/libvirt/qemu/{instance_name}.pid') as f:
        pid = f.read().strip()
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[1])
    raise AssertionError(f'no Uid in /proc/{pid}/status')


@pytest.fixture
def host_for_non_root_qemu(tmp_path):
    """A host whose instances_path a non-root QEMU can reach (pytest's own
    temporary directories are private to root)."""
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        pytest.skip(f'no {QEMU_USER} user on this host (Debian\'s libvirt '
                    f'package creates it)')
    path = tempfile.mkdtemp(prefix='novaext-nonroot-')
    os.chmod(path, 0o755)
    # libvirt's per-domain state (master key, monitor socket) lives below
    # this directory; a host with a non-root QEMU lets it pass through.
    state_dir = '/var/lib/libvirt/qemu'
    state_mode = os.stat(state_dir).st_mode & 0o7777
    os.chmod(state_dir, state_mode | 0o001)
    host = harness.RealComputeHost(instances_path=path)
    host.setUp()
    try:
        yield host
    finally:
        host.cleanUp()
        os.chmod(state_dir, state_mode)
        shutil.rmtree(path, ignore_errors=True)


def test_live_snapshot_with_qemu_as_non_root_gives_the_copy_back(
        host_for_non_root_qemu, tiny_image, monkeypatch):
    """QEMU runs as libvirt-qemu: libvirt hands it the copy target for the
    job; the snapshot still succeeds, and the copy the compute service
    reads belongs to the compute service's user again, as Nova's own live
    snapshot leaves it.

    Measured: libvirt 9.0 (remember_owner) already gives the file back
    when the job ends, so with the compute service running as root this
    holds with or without novaext's chown; the chown (Nova's) matters for
    a compute service running as its own user."""
    real_host = host_for_non_root_qemu
    instance, dom = _running_guest(real_host, tiny_image)
    qemu_uid = _run_qemu_as(dom, QEMU_USER)
    dom = real_host.domain(instance)
    assert _qemu_uid(instance.name) == qemu_uid != os.getuid()
    snapshots.guest_write(dom, '0x66', '2M', '1M')
    disk = os.path.join(real_host.instance_dir(instance), 'disk')
    owners = []
    extract = snapshot_live.LiveCopy.run

    def run_and_look(copy, quiescer):
        extract(copy, quiescer)
        owners.append(os.stat(copy.delta).st_uid)

    monkeypatch.setattr(snapshot_live.LiveCopy, 'run', run_and_look)
    snap_id = real_host.new_snapshot_image()
    real_host.driver.snapshot(real_host.context, instance, snap_id,
                              lambda **kw: None)

    assert owners == [os.getuid()]
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert _qemu_uid(instance.name) == qemu_uid
    same, out = snapshots.identical(real_host.uploaded_file(snap_id), disk)
    assert same, out
    images.qemu_io(real_host.uploaded_file(snap_id), 'qcow2',
                   'read -P 0x66 2M 1M')
    real_host.destroy(instance)
