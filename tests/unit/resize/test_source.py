"""resize.source.migrate_disk_and_power_off with a stand-in driver (behind
NovaInternals) and rsync client: what is refused before the guest is
touched, what moves, how, and that every transfer is registered with
Nova's job tracker.

The data path itself (real rsync daemon, qemu-img, QEMU) is proven in
tests/real/resize/.
"""

import contextlib
import json
import os
import shutil
import types
from unittest import mock

import pytest
from nova import exception
from nova import objects
from nova.compute import power_state
from nova.virt.libvirt import instancejobtracker
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import units

from novaext.nova_internals import NovaInternals
from novaext.resize import source as resize_source
from novaext.rsync import client as rsync_client
from novaext.virt import driver as ext_driver

CONF = cfg.CONF
UUID = '0f6c4a2e-1d7b-4c1a-9a55-3a8b5c1e2d3f'


class FakeClient:
    """Records what would be pushed; each "rsync" has a PID."""

    target = 'dest:8730/nova_instances'

    def __init__(self, events=None):
        self.events = [] if events is None else events
        # (components, src) -> True: that push fails
        self.fail_on = None
        self.pushed = {}
        self.trees = {}
        self.made = []
        self.pids = iter(range(4242, 5000))

    def make_dir(self, *components):
        self.made.append(components)

    def _process(self, on_execute, on_completion, record):
        proc = types.SimpleNamespace(pid=next(self.pids))
        on_execute(proc)
        record(proc.pid)
        on_completion(proc)

    def push(self, src, *components, sparse=False,
             on_progress=None, on_execute=None, on_completion=None):
        with open(src, 'rb') as f:
            data = f.read()
        if self.fail_on is not None and self.fail_on(components, src):
            raise rsync_client.RsyncTransferError(
                target=self.target, reason='exit code 10: socket closed')

        def record(pid):
            self.pushed[components] = dict(data=data, sparse=sparse,
                                           src=src, pid=pid)
            self.events.append(('push', components[-1]))
        self._process(on_execute, on_completion, record)
        if on_progress is not None:
            on_progress(len(data), percent=100)
        return len(data)

    def push_tree(self, local_dir, *components, on_execute=None,
                  on_completion=None):
        files = {}
        for root, _dirs, names in os.walk(local_dir):
            for name in names:
                path = os.path.join(root, name)
                with open(path, 'rb') as f:
                    files[os.path.relpath(path, local_dir)] = f.read()

        def record(pid):
            self.trees[components] = dict(files=files, src=local_dir,
                                          pid=pid)
        self._process(on_execute, on_completion, record)
        return sum(len(d) for d in files.values())


class RecordingJobTracker(instancejobtracker.InstanceJobTracker):
    def __init__(self):
        super().__init__()
        self.added = []
        self.removed = []

    def add_job(self, instance, pid):
        self.added.append(pid)
        super().add_job(instance, pid)

    def remove_job(self, instance, pid):
        self.removed.append(pid)
        super().remove_job(instance, pid)


@pytest.fixture
def host(tmp_path):
    """An instances_path holding one instance's files, a stand-in driver
    whose calls are recorded in order, and the fake rsync client."""
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    CONF.set_override('instances_path', str(tmp_path / 'instances'))
    inst_dir = tmp_path / 'instances' / UUID
    inst_dir.mkdir(parents=True)
    files = {'disk': b'root overlay', 'disk.local': b'ephemeral overlay',
             'disk.swap': b'swap', 'disk.config': b'config drive',
             'disk.info': b'{}'}
    for name, data in files.items():
        (inst_dir / name).write_bytes(data)
    disk_info = [
        {'path': str(inst_dir / 'disk'), 'type': 'qcow2',
         'backing_file': 'a' * 40},
        {'path': str(inst_dir / 'disk.local'), 'type': 'qcow2',
         'backing_file': 'ephemeral_1_0706d66'},
        {'path': str(inst_dir / 'disk.swap'), 'type': 'qcow2',
         'backing_file': 'swap_64'},
        {'path': str(inst_dir / 'disk.config'), 'type': 'raw',
         'backing_file': ''},
    ]
    events = []
    drv = mock.Mock()
    drv.job_tracker = RecordingJobTracker()
    drv._is_booted_from_volume.return_value = False
    drv._is_path_shared_with.return_value = False
    drv._get_instance_disk_info.side_effect = (
        lambda *a: events.append('disk info') or disk_info)
    drv.power_off.side_effect = lambda *a: events.append('power off')
    drv._cleanup_failed_instance_base.side_effect = (
        lambda path: shutil.rmtree(path, ignore_errors=True))
    client = FakeClient(events)
    flavor = objects.Flavor(root_gb=1, ephemeral_gb=1, swap=64)
    instance = types.SimpleNamespace(uuid=UUID, flavor=flavor)

    def converted(src, dst, in_fmt, out_fmt):
        assert (in_fmt, out_fmt) == ('qcow2', 'qcow2')
        with open(src, 'rb') as f, open(dst, 'wb') as out:
            out.write(b'standalone ' + f.read())

    with mock.patch.object(rsync_client.RsyncDaemonClient, 'from_conf',
                           return_value=client), \
            mock.patch('novaext.progress.notifier', return_value=None), \
            mock.patch('nova.virt.images.convert_image',
                       side_effect=converted) as convert:
        yield types.SimpleNamespace(
            drv=drv, client=client, instance=instance, inst_dir=inst_dir,
            disk_info=disk_info, events=events, convert=convert,
            vtpm_dir=tmp_path / 'swtpm', tmp=tmp_path)
    fixture.cleanUp()


def _migrate(host, flavor=None):
    flavor = flavor or objects.Flavor(root_gb=2, ephemeral_gb=1, swap=64)
    return resize_source.migrate_disk_and_power_off(
        NovaInternals(host.drv), 'ctx', host.instance, 'dest', flavor, [])


def test_disk_info_and_every_disk_but_swap_are_moved(host):
    returned = _migrate(host)

    pushed = host.client.pushed
    assert sorted(c[1] for c in pushed) == [
        'disk', 'disk.config', 'disk.info', 'disk.local']
    assert all(c[0] == UUID for c in pushed)
    assert pushed[(UUID, 'disk')]['data'] == b'root overlay'
    assert not pushed[(UUID, 'disk')]['sparse']
    assert pushed[(UUID, 'disk.config')]['sparse']
    assert pushed[(UUID, 'disk.info')]['data'] == b'{}'
    assert json.loads(returned) == host.disk_info
    # The source keeps everything for a revert.
    assert sorted(os.listdir(str(host.inst_dir) + '_resize')) == [
        'disk', 'disk.config', 'disk.info', 'disk.local', 'disk.swap']


def test_ephemeral_overlay_moves_standalone_never_as_an_overlay(host):
    """The destination's ephemeral base of the same name is its own mkfs,
    other bytes: the ephemeral data goes merged with our base."""
    _migrate(host)

    local = host.client.pushed[(UUID, 'disk.local')]
    assert local['data'] == b'standalone ephemeral overlay'
    host.convert.assert_called_once()
    assert host.convert.call_args[0][0] == os.path.join(
        str(host.inst_dir) + '_resize', 'disk.local')
    # The standalone copy was a scratch file, gone afterwards.
    assert not os.path.exists(local['src'])


def test_same_host_copies_every_disk_as_it_is(host):
    host.drv._is_path_shared_with.return_value = True
    _migrate(host)

    assert host.client.pushed == {}
    host.convert.assert_not_called()
    assert (host.inst_dir / 'disk.local').read_bytes() == \
        b'ephemeral overlay'
    assert sorted(os.listdir(host.inst_dir)) == [
        'disk', 'disk.config', 'disk.info', 'disk.local']


def test_resize_down_is_refused_before_the_guest_is_touched(host):
    for smaller in (objects.Flavor(root_gb=0, ephemeral_gb=1, swap=64),
                    objects.Flavor(root_gb=2, ephemeral_gb=0, swap=64)):
        with pytest.raises(exception.InstanceFaultRollback,
                           match='Unable to resize disk down'):
            _migrate(host, smaller)

    host.drv.power_off.assert_not_called()
    assert host.client.made == [] and host.client.pushed == {}
    assert os.path.isdir(host.inst_dir)


def test_unknown_disk_format_is_refused_before_the_guest_is_touched(host):
    host.disk_info[0]['type'] = 'ploop'

    with pytest.raises(exception.InstanceFaultRollback,
                       match="/disk is a 'ploop' disk"):
        _migrate(host)

    assert host.events == ['disk info']
    assert host.client.pushed == {}
    # The destination directory made by the reachability check goes again.
    assert host.client.made == [(UUID,)]
    host.drv._remotefs.remove_dir.assert_called_once_with(
        'dest', str(host.inst_dir))
    assert os.path.isdir(host.inst_dir)


def test_disks_are_planned_while_the_guest_runs(host):
    _migrate(host)
    assert host.events[:2] == ['disk info', 'power off']


def test_every_transfer_is_registered_with_the_job_tracker(host):
    """Nova's delete stops what its job tracker holds."""
    _make_vtpm_state(host)
    with _vtpm_privsep(host):
        _migrate(host)

    pids = [p['pid'] for p in host.client.pushed.values()] + \
        [t['pid'] for t in host.client.trees.values()]
    assert len(pids) == 5
    assert host.drv.job_tracker.added == pids
    assert host.drv.job_tracker.removed == pids
    assert host.drv.job_tracker.jobs == {}


def _make_vtpm_state(host):
    state = host.vtpm_dir / UUID / 'tpm2'
    state.mkdir(parents=True)
    (state / 'tpm2-00.permall').write_bytes(b'tpm state')


@contextlib.contextmanager
def _vtpm_privsep(host):
    """Nova's privsep helpers, run in-process here (no daemon)."""
    with mock.patch.multiple('nova.privsep.path', move_tree=shutil.move,
                             chown=lambda *a, **k: None), \
            mock.patch.object(libvirt_utils, 'VTPM_DIR', str(host.vtpm_dir)):
        yield


def test_vtpm_state_moves_with_the_instance(host):
    """As Nova's save_and_migrate_vtpm_dir: out of the swtpm directory
    into <dir>_resize/swtpm (kept for a revert) and to the destination's
    <dir>/swtpm, where Nova's finish_migration restores it."""
    _make_vtpm_state(host)
    with _vtpm_privsep(host):
        _migrate(host)

    kept = os.path.join(str(host.inst_dir) + '_resize', 'swtpm')
    tree = host.client.trees[(UUID, 'swtpm')]
    assert tree['src'] == kept
    assert tree['files'] == {
        os.path.join(UUID, 'tpm2', 'tpm2-00.permall'): b'tpm state'}
    assert not (host.vtpm_dir / UUID).exists()


def test_no_vtpm_no_tree_pushed(host):
    with _vtpm_privsep(host):
        _migrate(host)
    assert host.client.trees == {}


@pytest.mark.parametrize('images_type, nova_moves', [
    ('lvm', True), ('rbd', True), ('ploop', True),
    ('qcow2', False), ('default', False), ('raw', False), ('flat', False)])
def test_images_types_novaext_does_not_move_go_to_nova(images_type,
                                                       nova_moves):
    """Nova refuses lvm before the guest is touched, and moves rbd (shared)
    and ploop itself; novaext only moves file disks."""
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    try:
        CONF.set_override('images_type', images_type, group='libvirt')
        drv = object.__new__(ext_driver.ExtLibvirtDriver)
        with mock.patch.object(ext_driver.NovaLibvirtDriver,
                               'migrate_disk_and_power_off',
                               return_value='nova') as nova, \
                mock.patch.object(resize_source,
                                  'migrate_disk_and_power_off',
                                  return_value='novaext') as ours:
            result = drv.migrate_disk_and_power_off(
                'ctx', 'inst', 'dest', 'flavor', [])
    finally:
        fixture.cleanUp()
    assert result == ('nova' if nova_moves else 'novaext')
    assert nova.called is nova_moves and ours.called is not nova_moves


class FakeRedirect:
    """resize.redirect.RedirectedWrites as the source sees it: records
    each step; after power-off the writes file appears (what the guest
    wrote during the pass 1), merged into the disk."""

    def __init__(self, events, inst_dir):
        self.events = events
        self.inst_dir = inst_dir
        self.fail = set()
        self.caught_up = False

    def start(self, nova, instance, guest, paths):
        self.events.append(('redirect', sorted(map(os.path.basename,
                                                   paths))))
        if 'start' in self.fail:
            raise RuntimeError('snapshot refused')
        return self

    def catch_up(self):
        self.events.append('catch up')
        if 'catch up' in self.fail:
            raise RuntimeError('domain is not running')
        (self.inst_dir / 'disk.novaext-writes').write_bytes(b'pass 1')
        self.caught_up = True
        return {'disk': 'disk.novaext-writes'}

    def last_writes_name(self, disk_name):
        return disk_name + ('.novaext-last-writes' if self.caught_up
                            else '.novaext-writes')

    def merge_live(self):
        self.events.append('merge live')

    def merge_after_power_off(self):
        self.events.append('merge after power off')
        if 'merge' in self.fail:
            raise RuntimeError('no space left on device')
        (self.inst_dir / self.last_writes_name('disk')).write_bytes(
            b'writes')

    def remove(self, directory):
        for name in ('disk.novaext-writes', 'disk.novaext-last-writes'):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                os.unlink(path)


@pytest.fixture
def redirected(host):
    fake = FakeRedirect(host.events, host.inst_dir)
    CONF.set_override('resize_precopy', True, group='novaext')
    CONF.set_override('resize_precopy_min_mib', 0, group='novaext')
    with mock.patch.object(resize_source.redirect.RedirectedWrites, 'start',
                           side_effect=fake.start), \
            mock.patch.object(resize_source.capabilities, 'destination_has',
                              return_value=True) as has:
        fake.destination_has = has
        yield fake


def _without_disk_info(events):
    return [e for e in events if e != 'disk info']


def test_precopy_pushes_the_frozen_overlay_then_what_was_written(
        host, redirected):
    _migrate(host)

    events = _without_disk_info(host.events)
    # Pass 1 from the running guest's directory under the pre-copied
    # name; after power-off and the merge, the writes file as the disk;
    # then the other files.
    assert events[:5] == [('redirect', ['disk']),
                          ('push', 'disk.novaext-precopy'), 'power off',
                          'merge after power off', ('push', 'disk')]
    assert sorted(p[1] for p in events[5:]) == [
        'disk.config', 'disk.info', 'disk.local']
    precopied = host.client.pushed[(UUID, 'disk.novaext-precopy')]
    assert precopied['src'] == str(host.inst_dir / 'disk')
    writes = host.client.pushed[(UUID, 'disk')]
    assert writes['src'] == os.path.join(str(host.inst_dir) + '_resize',
                                         'disk.novaext-writes')
    assert writes['data'] == b'writes'
    assert not os.path.exists(writes['src'])


def test_precopy_reports_its_two_passes_apart(host, redirected, caplog):
    with caplog.at_level('INFO', logger='novaext.progress'):
        _migrate(host)

    disk_events = [(r.args['event'], r.args['pass'], r.args.get('phase'))
                   for r in caplog.records
                   if r.name == 'novaext.progress' and
                   r.args.get('file') == 'disk']
    assert disk_events == [
        ('start', 'precopy', None), ('progress', 'precopy', 'precopy'),
        ('end', 'precopy', None),
        ('start', 'final', None), ('progress', 'final', 'final'),
        ('end', 'final', None)]
    config = [(r.args['pass'], r.args.get('phase'))
              for r in caplog.records if r.name == 'novaext.progress' and
              r.args.get('file') == 'disk.config' and
              r.args['event'] == 'progress']
    assert config == [('single', 'push')]


def _migrate_shutting_down_cleanly(host):
    """_migrate with a clean shutdown (Nova's default timeout): the guest
    stops at its first look after the request."""
    guest = host.drv._host.get_guest.return_value
    guest.is_active.return_value = True
    states = iter([power_state.RUNNING])
    guest.get_power_state.side_effect = \
        lambda h: next(states, power_state.SHUTDOWN)
    guest.shutdown.side_effect = lambda: host.events.append('shutdown')
    return resize_source.migrate_disk_and_power_off(
        NovaInternals(host.drv), 'ctx', host.instance, 'dest',
        objects.Flavor(root_gb=2, ephemeral_gb=1, swap=64), [],
        timeout=60, retry_interval=10)


def test_catch_up_pass_sends_pass_1_writes_while_the_guest_shuts_down(
        host, redirected):
    _migrate_shutting_down_cleanly(host)

    events = _without_disk_info(host.events)
    assert events[:8] == [
        ('redirect', ['disk']), ('push', 'disk.novaext-precopy'),
        'catch up', 'shutdown', ('push', 'disk.novaext-catchup'),
        'power off', 'merge after power off', ('push', 'disk')]
    pushed = host.client.pushed
    caught_up = pushed[(UUID, 'disk.novaext-catchup')]
    assert caught_up['src'] == str(host.inst_dir / 'disk.novaext-writes')
    assert caught_up['data'] == b'pass 1'
    last = pushed[(UUID, 'disk')]
    assert last['src'] == os.path.join(str(host.inst_dir) + '_resize',
                                       'disk.novaext-last-writes')
    assert last['data'] == b'writes'
    resized = str(host.inst_dir) + '_resize'
    assert not [n for n in os.listdir(resized) if 'writes' in n]


def test_failed_catch_up_push_sends_pass_1_writes_after_power_off(
        host, redirected):
    failures = iter([True])
    host.client.fail_on = lambda components, src: \
        components[-1] == 'disk.novaext-catchup' and next(failures, False)

    _migrate_shutting_down_cleanly(host)

    events = _without_disk_info(host.events)
    assert events[2:8] == [
        'catch up', 'shutdown', 'power off', 'merge after power off',
        ('push', 'disk.novaext-catchup'), ('push', 'disk')]
    caught_up = host.client.pushed[(UUID, 'disk.novaext-catchup')]
    assert caught_up['src'] == os.path.join(str(host.inst_dir) + '_resize',
                                            'disk.novaext-writes')


def test_refused_catch_up_leaves_pass_1_writes_to_after_power_off(
        host, redirected):
    redirected.fail.add('catch up')

    _migrate_shutting_down_cleanly(host)

    events = _without_disk_info(host.events)
    assert events[2:7] == ['catch up', 'shutdown', 'power off',
                           'merge after power off', ('push', 'disk')]
    assert host.client.pushed[(UUID, 'disk')]['src'].endswith(
        '_resize/disk.novaext-writes')
    assert (UUID, 'disk.novaext-catchup') not in host.client.pushed


def test_no_catch_up_without_a_clean_shutdown(host, redirected):
    _migrate(host)  # timeout 0: Nova destroys the guest at once

    assert 'catch up' not in host.events
    assert (UUID, 'disk.novaext-catchup') not in host.client.pushed


def test_a_destination_without_the_precopy_trait_gets_the_old_way(
        host, redirected):
    """Rolling upgrades: an older novaext on the destination would refuse
    a pre-copied disk after power-off; it gets the disk after power-off,
    as every release accepts."""
    redirected.destination_has.return_value = False
    _migrate(host)
    assert not [e for e in host.events if e[0] == 'redirect']
    assert (UUID, 'disk.novaext-precopy') not in host.client.pushed
    assert redirected.destination_has.call_args.args[-1] == \
        'CUSTOM_NOVAEXT_RESIZE_PRECOPY_V1'


def test_small_overlay_is_not_precopied(host, redirected):
    CONF.set_override('resize_precopy_min_mib', 1, group='novaext')
    _migrate(host)
    assert not [e for e in host.events if e[0] == 'redirect']
    assert host.events[:2] == ['disk info', 'power off']


def test_refused_redirect_fails_the_resize_before_anything_moves(
        host, redirected):
    redirected.fail.add('start')

    with pytest.raises(exception.InstanceFaultRollback,
                       match='cannot pre-copy: snapshot refused'):
        _migrate(host)

    host.drv.power_off.assert_not_called()
    assert host.client.pushed == {}


def test_failed_precopy_merges_the_writes_back_with_the_guest_running(
        host, redirected):
    host.client.fail_on = lambda components, src: \
        components[-1] == 'disk.novaext-precopy'

    with pytest.raises(exception.InstanceFaultRollback,
                       match='socket closed'):
        _migrate(host)

    assert _without_disk_info(host.events) == [('redirect', ['disk']),
                                               'merge live']
    host.drv.power_off.assert_not_called()
    host.drv._remotefs.remove_dir.assert_called_once_with(
        'dest', str(host.inst_dir))
    assert os.path.isdir(host.inst_dir)
    assert not os.path.exists(str(host.inst_dir) + '_resize')


def test_failed_power_off_merges_the_writes_back_as_the_guest_is(
        host, redirected):
    host.drv.power_off.side_effect = RuntimeError('libvirt went away')
    guest = host.drv._host.get_guest.return_value

    for running, merge in ((True, 'merge live'),
                           (False, 'merge after power off')):
        guest.is_active.return_value = True  # for the pre-copy
        host.events.clear()
        with mock.patch.object(resize_source, '_is_running',
                               side_effect=[True, running]):
            with pytest.raises(RuntimeError, match='libvirt went away'):
                _migrate(host)
        assert _without_disk_info(host.events)[-1] == merge


def test_failed_merge_after_power_off_keeps_the_writes_file(
        host, redirected):
    """The source's disk lacks what the guest wrote during pass 1: the
    writes file stays beside it (the definition still names it), and
    nothing is renamed or pushed after power-off."""
    redirected.fail.add('merge')

    with pytest.raises(RuntimeError, match='no space left'):
        _migrate(host)

    assert list(host.client.pushed) == [(UUID, 'disk.novaext-precopy')]
    host.drv._remotefs.remove_dir.assert_called_once_with(
        'dest', str(host.inst_dir))
    assert not os.path.exists(str(host.inst_dir) + '_resize')


def test_failed_push_of_the_writes_rolls_back_and_removes_them(
        host, redirected):
    host.client.fail_on = lambda components, src: \
        src.endswith('.novaext-writes')

    with pytest.raises(rsync_client.RsyncTransferError,
                       match='socket closed'):
        _migrate(host)

    host.drv.power_off.assert_called_once()
    host.drv._cleanup_remote_migration.assert_called_once_with(
        'dest', str(host.inst_dir), str(host.inst_dir) + '_resize', False)
    # Merged into the disk before: the writes file is only a copy.
    assert not os.path.exists(os.path.join(str(host.inst_dir) + '_resize',
                                           'disk.novaext-writes'))


def test_stopped_guest_is_not_precopied(host, redirected):
    """A stopped server's resize has no downtime to shorten."""
    host.drv._host.get_guest.return_value.is_active.return_value = False
    _migrate(host)
    assert not [e for e in host.events if e[0] == 'redirect']
    assert host.events[:2] == ['disk info', 'power off']


def test_too_little_free_space_on_the_source_moves_the_disks_after_power_off(
        host, redirected, caplog):
    """The redirect needs room Nova's in-place writes do not: below the
    reserve the guest writes in place and its disks move after
    power-off."""
    CONF.set_override('resize_precopy_min_free_mib', 1024, group='novaext')
    with mock.patch.object(resize_source.space, 'free_bytes',
                           return_value=1000 * units.Mi):
        _migrate(host)

    assert not [e for e in host.events if e[0] == 'redirect']
    assert (UUID, 'disk.novaext-precopy') not in host.client.pushed
    assert 'No pre-copy: The pre-copy needs 1024 MiB free' in caplog.text
    assert 'which has 1000 MiB' in caplog.text


def test_free_space_falling_in_pass_1_stops_it_with_the_guest_running(
        host, redirected):
    """Half the reserve left while pass 1 pushes: the push stops, the
    writes are merged back live and the resize fails before the guest
    is powered off, rather than QEMU pausing it on a full file system."""
    CONF.set_override('resize_precopy_min_free_mib', 1024, group='novaext')
    free = iter([1024 * units.Mi, 511 * units.Mi])
    with mock.patch.object(resize_source.space, 'free_bytes',
                           side_effect=lambda path: next(free)):
        with pytest.raises(exception.InstanceFaultRollback,
                           match='needs 512 MiB free .* which has 511 MiB'):
            _migrate(host)

    assert _without_disk_info(host.events) == [
        ('redirect', ['disk']), ('push', 'disk.novaext-precopy'),
        'merge live']
    host.drv.power_off.assert_not_called()
    assert os.path.isdir(host.inst_dir)
