"""novaext.snapshot.live: the block-job waiter, the ways to start a
copy, the kept definition, the copy handed back to the compute user."""

from unittest import mock

import pytest
from nova.virt.libvirt import guest as libvirt_guest

from novaext import progress as novaext_progress
from novaext import space
from novaext.nova_internals import NovaInternals
from novaext.snapshot import live as snapshot_live


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


def test_waiter_stops_the_copy_once_free_space_falls_below_half_the_reserve(
        tmp_path, monkeypatch):
    clock = FakeClock()
    free = iter([600, 550, 499, 400])
    monkeypatch.setattr(space, 'free_bytes', lambda path: next(free))
    reserve = space.Reserve(str(tmp_path), 1000, 'The snapshot',
                            '[novaext]snapshot_min_free_mib')
    dev = FakeDev([_info(i, 100) for i in range(0, 100, 10)])
    waiter = snapshot_live.BlockJobWaiter(
        dev, 'vda', 0, _progress(clock), poll=1, clock=clock,
        sleep=clock.sleep, check_space=reserve.check_kept)
    with pytest.raises(space.NotEnoughSpace, match='needs 0 MiB'):
        waiter.wait()
    assert clock.now == 2  # the third check, at 499 of 500 bytes kept


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
