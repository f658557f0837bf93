"""Small pieces of the snapshot: the block-job waiter, the quiescer, the
upload metadata and the progress reader."""

import io
from unittest import mock

import pytest
from nova import exception
from nova.virt.libvirt import guest as libvirt_guest

from novaext import progress as novaext_progress
from novaext.nova_internals import NovaInternals
from novaext.snapshot import base as snapshot_base
from novaext.snapshot import live as snapshot_live
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
    return novaext_progress.Progress(
        None, instance, 'snapshot', {'image_id': 'img'}, interval=1.0,
        clock=clock).phase('block-copy')


def _reports(phase):
    return [payload for event, payload in phase.operation.events
            if event == 'progress']


def test_waiter_returns_when_mirror_ready_and_reports_progress():
    clock = FakeClock()
    progress = _progress(clock)
    dev = FakeDev([_info(0, 100), _info(50, 100), _info(100, 100)])
    snapshot_live.BlockJobWaiter(dev, 'vda', 10, progress, poll=1,
                                 clock=clock, sleep=clock.sleep).wait()
    assert [r['bytes_done'] for r in _reports(progress)] == [0, 50, 100,
                                                             100]
    assert _reports(progress)[-1]['percent'] == 100.0


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
    assert _reports(progress)[-1]['bytes_done'] == 200000


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
