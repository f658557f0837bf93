"""Small pieces of the snapshot: the block-job waiter, the quiescer, the
upload metadata and the progress reader."""

import io
from unittest import mock

import pytest
from nova import exception
from nova.virt.libvirt import guest as libvirt_guest

from novaext.nova_internals import NovaInternals
from novaext.snapshot import base as snapshot_base
from novaext.snapshot import live as snapshot_live
from novaext.snapshot import progress as snapshot_progress
from novaext.snapshot import quiesce as snapshot_quiesce
from novaext.snapshot import upload as snapshot_upload

SHA1 = 'a' * 40


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeDev:
    def __init__(self, infos, complete=True):
        self.infos = list(infos)
        self.complete = complete

    def get_job_info(self):
        return self.infos.pop(0) if len(self.infos) > 1 else self.infos[0]

    def is_job_complete(self):
        return self.complete


def _info(cur, end):
    return libvirt_guest.BlockDeviceJobInfo(job=2, bandwidth=0, cur=cur,
                                            end=end)


def _progress(clock):
    instance = mock.Mock(uuid='u')
    return snapshot_progress.Progress(None, instance, 'img', 'block-copy',
                                      interval=1.0, clock=clock)


def test_waiter_returns_when_mirror_ready_and_reports_progress():
    clock = FakeClock()
    progress = _progress(clock)
    dev = FakeDev([_info(0, 100), _info(50, 100), _info(100, 100)])
    snapshot_live.BlockJobWaiter(dev, 'vda', 10, progress, poll=1,
                                 clock=clock, sleep=clock.sleep).wait()
    assert [r['bytes_done'] for r in progress.reports] == [0, 50, 100, 100]
    assert progress.reports[-1]['percent'] == 100.0


def test_waiter_times_out_on_a_job_that_never_gets_ready():
    clock = FakeClock()
    dev = FakeDev([_info(10, 100)])
    waiter = snapshot_live.BlockJobWaiter(dev, 'vda', 5, _progress(clock),
                                          poll=1, clock=clock,
                                          sleep=clock.sleep)
    with pytest.raises(snapshot_live.BlockJobTimeout):
        waiter.wait()
    assert 5 < clock.now <= 7


def test_default_timeout_never_fails_a_long_healthy_copy():
    """A 10-hour copy that keeps progressing completes with the default
    [novaext]snapshot_block_job_timeout, as Nova's live snapshot would."""
    from oslo_config import cfg
    from oslo_config import fixture as config_fixture

    from novaext import conf as novaext_conf
    conf = cfg.ConfigOpts()
    novaext_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    try:
        default = conf.novaext.snapshot_block_job_timeout
    finally:
        fixture.cleanUp()
    clock = FakeClock()
    steps = 600
    dev = FakeDev([_info(i, steps) for i in range(steps + 1)])
    snapshot_live.BlockJobWaiter(dev, 'vda', default, _progress(clock),
                                 poll=60, clock=clock,
                                 sleep=clock.sleep).wait()
    assert clock.now >= 10 * 3600


def test_waiter_fails_when_the_copy_job_disappears():
    clock = FakeClock()
    dev = FakeDev([_info(10, 100), None])
    with pytest.raises(snapshot_live.LiveSnapshotFailed,
                       match='disappeared'):
        snapshot_live.BlockJobWaiter(dev, 'vda', 0, _progress(clock),
                                     clock=clock, sleep=clock.sleep).wait()


def _driver(can_quiesce=True, required=False, freeze_error=None):
    driver = mock.Mock()
    driver._requires_quiesce.return_value = required
    if not can_quiesce:
        driver._can_quiesce.side_effect = exception.QemuGuestAgentNotEnabled
    if freeze_error:
        driver.quiesce.side_effect = freeze_error
    return driver


def test_quiesce_required_but_impossible_fails_before_anything():
    driver = _driver(can_quiesce=False, required=True)
    with pytest.raises(exception.QemuGuestAgentNotEnabled):
        snapshot_quiesce.Quiescer(NovaInternals(driver), None, None,
                                  None).check()


def test_quiesce_impossible_not_required_goes_on_unfrozen():
    driver = _driver(can_quiesce=False)
    with snapshot_quiesce.Quiescer(NovaInternals(driver), None, None,
                                   None).check():
        pass
    driver.quiesce.assert_not_called()
    driver.unquiesce.assert_not_called()


def test_quiesce_freezes_around_the_block_and_thaws_after_failure():
    driver = _driver()
    with pytest.raises(RuntimeError):
        with snapshot_quiesce.Quiescer(NovaInternals(driver), 'ctx', 'inst',
                                       'meta').check():
            driver.quiesce.assert_called_once_with('ctx', 'inst', 'meta')
            driver.unquiesce.assert_not_called()
            raise RuntimeError('abort failed')
    driver.unquiesce.assert_called_once_with('ctx', 'inst', 'meta')


def test_failed_freeze_is_fatal_only_when_required():
    error = exception.InstanceQuiesceFailed(reason='agent gone')
    with snapshot_quiesce.Quiescer(NovaInternals(_driver(freeze_error=error)),
                                   None, None, None).check():
        pass
    q = snapshot_quiesce.Quiescer(
        NovaInternals(_driver(required=True, freeze_error=error)),
        None, None, None)
    with pytest.raises(exception.InstanceQuiesceFailed):
        with q.check():
            pass


def _metadata_driver():
    driver = mock.Mock()
    driver._create_snapshot_metadata.side_effect = (
        lambda meta, inst, fmt, name: {
            'name': name, 'disk_format': fmt, 'container_format': 'bare',
            'properties': {'kernel_id': None, 'ramdisk_id': None}})
    return driver


def test_full_snapshot_drops_inherited_delta_properties():
    snapshot = {'name': 's', 'properties': {
        'base_image_id_sha1': SHA1, 'image_id_sha1': SHA1,
        'hw_qemu_guest_agent': 'yes'}}
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(), snapshot, 'raw')
    assert kept == {'hw_qemu_guest_agent': 'yes'}
    assert metadata['disk_format'] == 'raw'
    assert metadata['properties'] == {
        'hw_qemu_guest_agent': 'yes', 'kernel_id': None, 'ramdisk_id': None}


def test_inherited_labels_are_dropped_in_an_update_before_the_upload(
        tmp_path):
    """A delta of a server booted from a labelled base inherits
    image_id_sha1=X and gets base_image_id_sha1=X: the removal goes in an
    update of its own (in one, glanceclient sends a JSON-patch "move",
    which Glance refuses)."""
    base = snapshot_base.DeltaBase(path='/b/' + SHA1, sha1=SHA1,
                                   image_id='base-id', image={})
    snapshot = {'name': 's', 'properties': {'image_id_sha1': SHA1,
                                            'os_distro': 'debian'}}
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(), snapshot, 'qcow2',
        base)
    path = tmp_path / 'delta'
    path.write_bytes(b'x' * 10)
    api = mock.Mock()
    snapshot_upload.upload(api, 'ctx', 'snap', metadata, str(path),
                           mock.Mock(), kept=kept)
    first, second = api.update.call_args_list
    assert first == mock.call('ctx', 'snap',
                              {'properties': {'os_distro': 'debian'}},
                              purge_props=True)
    assert second.kwargs == {'purge_props': False}
    assert isinstance(second.args[3], snapshot_upload.ProgressReader)
    assert second.args[2]['properties']['base_image_id_sha1'] == SHA1
    assert 'image_id_sha1' not in second.args[2]['properties']


def test_delta_snapshot_names_its_base_and_merges_properties():
    base = snapshot_base.DeltaBase(path='/b/' + SHA1, sha1=SHA1,
                                   image_id='base-id', image={})
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(),
        {'name': 's', 'properties': {}}, 'qcow2', base)
    assert kept is None
    assert metadata['disk_format'] == 'qcow2'
    assert metadata['properties']['base_image_id_sha1'] == SHA1


def test_base_is_labelled_once():
    api = mock.Mock()
    base = snapshot_base.DeltaBase(path='p', sha1=SHA1, image_id='b',
                                   image={'properties': {}})
    snapshot_upload.label_base(api, 'ctx', base, mock.Mock())
    api.update.assert_called_once_with(
        'ctx', 'b', {'properties': {'image_id_sha1': SHA1}},
        purge_props=False)
    api.reset_mock()
    labelled = snapshot_base.DeltaBase(
        path='p', sha1=SHA1, image_id='b',
        image={'properties': {'image_id_sha1': SHA1}})
    snapshot_upload.label_base(api, 'ctx', labelled, mock.Mock())
    api.update.assert_not_called()


def test_progress_reader_counts_every_byte():
    clock = FakeClock()
    progress = _progress(clock)
    reader = snapshot_upload.ProgressReader(io.BytesIO(b'x' * 200000),
                                            200000, progress)
    assert sum(len(c) for c in reader) == 200000
    assert reader.bytes_read == 200000
    assert progress.reports[-1]['bytes_done'] == 200000


def test_only_sha1_named_bases_in_base_dir_can_carry_a_delta(tmp_path):
    from nova.tests import fixtures as nova_fixtures
    from oslo_config import cfg
    fx = nova_fixtures.ConfFixture(cfg.CONF)
    fx.setUp()
    try:
        cfg.CONF.set_override('instances_path', str(tmp_path))
        base_dir = str(tmp_path / '_base')
        assert snapshot_base.base_sha1_of(f'{base_dir}/{SHA1}') == SHA1
        assert snapshot_base.base_sha1_of(f'{base_dir}/{SHA1}_20') == SHA1
        assert snapshot_base.base_sha1_of(f'{base_dir}/ephemeral_1_0706d66'
                                          ) is None
        assert snapshot_base.base_sha1_of(f'/elsewhere/{SHA1}') is None
        assert snapshot_base.base_sha1_of(
            f'{base_dir}/../_base/{SHA1}') is None
        assert snapshot_base.base_sha1_of(None) is None
    finally:
        fx.cleanUp()


def test_progress_is_notified_only_when_notifications_are_enabled(
        monkeypatch):
    from nova import rpc
    from oslo_config import cfg
    notifier = mock.Mock()
    prepared = notifier.prepare.return_value
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER', notifier)
    monkeypatch.setattr(cfg.CONF, 'host', 'h1', raising=False)

    notifier.is_enabled.return_value = False
    _progress(FakeClock()).update(1, 2, final=True)
    prepared.info.assert_not_called()

    notifier.is_enabled.return_value = True
    progress = _progress(FakeClock())
    progress.update(1, 2, final=True)
    prepared.info.assert_called_once()
    _, event, payload = prepared.info.call_args[0]
    assert event == 'novaext.snapshot.progress'
    assert payload['phase'] == 'block-copy'
    assert payload['percent'] == 50.0


class _Refused(Exception):
    def __init__(self, code):
        super().__init__(f'libvirt error {code}')
        self.code = code

    def get_error_code(self):
        return self.code


def _live_copy_with(strategies, monkeypatch):
    import libvirt
    from nova.virt.libvirt import driver as libvirt_driver
    monkeypatch.setattr(libvirt_driver, 'libvirt', libvirt)
    monkeypatch.setattr(snapshot_live, 'STRATEGIES', strategies)
    return snapshot_live.LiveCopy(mock.Mock(), None, mock.Mock(), mock.Mock(),
                                  'vda', 'qcow2', '/d', 0, None)


def test_copy_falls_back_only_when_libvirt_refuses_the_way(monkeypatch):
    import libvirt
    first, second = mock.Mock(), mock.Mock()
    first.start.side_effect = _Refused(libvirt.VIR_ERR_OPERATION_INVALID)
    copy = _live_copy_with((first, second), monkeypatch)
    copy._start('dev')
    assert copy.strategy is second

    first.start.side_effect = _Refused(libvirt.VIR_ERR_INTERNAL_ERROR)
    copy = _live_copy_with((first, second), monkeypatch)
    with pytest.raises(_Refused):
        copy._start('dev')
    assert copy.strategy is None


def test_kept_definition_rewrites_a_lost_or_changed_definition():
    driver, guest = mock.Mock(), mock.Mock()
    guest.has_persistent_configuration.side_effect = [True, False]
    guest.get_xml_desc.return_value = '<domain/>'
    with pytest.raises(RuntimeError):
        with snapshot_live.KeptDefinition(NovaInternals(driver), guest):
            raise RuntimeError('copy failed')
    driver._host.write_instance_config.assert_called_once_with('<domain/>')

    driver, guest = mock.Mock(), mock.Mock()
    guest.has_persistent_configuration.return_value = True
    guest.get_xml_desc.return_value = '<domain/>'
    with snapshot_live.KeptDefinition(NovaInternals(driver), guest):
        pass
    driver._host.write_instance_config.assert_not_called()


def test_base_that_may_not_be_labelled_turns_the_snapshot_full():
    api = mock.Mock()
    api.update.side_effect = exception.ImageNotAuthorized(image_id='b')
    base = snapshot_base.DeltaBase(path='p', sha1=SHA1, image_id='b',
                                   image={'properties': {}})
    assert not snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())
    api.update.side_effect = None
    assert snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())
    api.update.side_effect = exception.ImageNotFound(image_id='b')
    with pytest.raises(exception.ImageNotFound):
        snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())


def test_live_copy_gives_the_delta_back_to_the_compute_user(monkeypatch):
    """As Nova after its live copy: libvirt handed the target to QEMU's
    user; it is chowned back once the job has ended, before it is read."""
    import contextlib
    import os
    events = []
    strategy = mock.Mock()
    copy = _live_copy_with((strategy,), monkeypatch)
    copy.progress = mock.Mock()
    dev = mock.Mock()
    dev.get_job_info.return_value = _info(100, 100)
    dev.is_job_complete.return_value = True
    dev.abort_job.side_effect = lambda: events.append('abort')
    copy.guest.get_block_device.return_value = dev
    copy.guest.has_persistent_configuration.return_value = False
    monkeypatch.setattr(copy, '_create_delta', lambda: None)
    monkeypatch.setattr(
        'nova.privsep.path.chown',
        lambda path, uid=-1, gid=-1, recursive=False:
        events.append(('chown', path, uid)))

    copy.run(contextlib.nullcontext())

    assert events == ['abort', 'abort', ('chown', '/d', os.getuid())]
