"""novaext.progress: one reporter and one notification dialect for resize
pushes, snapshots and base pulls."""

import oslo_messaging as messaging
import pytest
from nova import context as nova_context
from nova import objects
from nova import rpc
from oslo_config import cfg
from oslo_messaging.notify import _impl_test

from novaext import conf as novaext_conf
from novaext import progress as novaext_progress

CONF = cfg.CONF
novaext_conf.register_opts(CONF)

UUID = '7c1a3e0e-5b2e-4d8c-9d6b-0f3c2a1b4e5d'


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _nova_legacy_notifier(driver):
    """Nova's unversioned notifier as rpc.init builds it, on ``driver``."""
    transport = messaging.get_notification_transport(CONF, url='fake:/')
    return messaging.Notifier(
        transport, driver=driver,
        serializer=rpc.RequestContextSerializer(rpc.JsonPayloadSerializer()))


@pytest.fixture
def sent_notifications(monkeypatch):
    """Nova's unversioned notifier on oslo.messaging's test driver."""
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER',
                        _nova_legacy_notifier('test'))
    _impl_test.reset()
    # reset() rebinds the module's list: read it when asked, not now.
    yield lambda: [message for _ctxt, message, _prio, _retry
                   in _impl_test.NOTIFICATIONS]
    _impl_test.reset()


def _push(clock, interval=None):
    return novaext_progress.Progress(
        nova_context.get_admin_context(), objects.Instance(uuid=UUID),
        'resize.push', {'target': '10.0.0.2:873/nova_instances',
                        'file': 'disk'}, interval=interval, clock=clock)


def test_an_operation_starts_reports_at_most_once_per_interval_and_ends(
        sent_notifications):
    clock = _Clock()
    progress = _push(clock, interval=5).start()
    phase = progress.phase('push')
    for second, done in ((1, 10), (4, 40), (6, 60), (9, 90), (12, 99)):
        clock.now = 100.0 + second
        phase.update(done * 1024, percent=done)
    progress.end(bytes_sent=99 * 1024)

    sent = sent_notifications()
    events = [(n['event_type'], n['payload'].get('percent'),
               n['payload'].get('bytes_done')) for n in sent]
    # the first update reports at once, the next ones once per 5 s
    assert events == [('novaext.resize.push.start', None, None),
                      ('novaext.resize.push.progress', 10.0, 10 * 1024),
                      ('novaext.resize.push.progress', 60.0, 60 * 1024),
                      ('novaext.resize.push.progress', 99.0, 99 * 1024),
                      ('novaext.resize.push.end', None, None)]
    end = sent[-1]['payload']
    assert end == {'instance_uuid': UUID, 'operation': 'resize.push',
                   'target': '10.0.0.2:873/nova_instances', 'file': 'disk',
                   'bytes_sent': 99 * 1024, 'seconds': 12.0}
    assert sent[1]['payload']['phase'] == 'push'
    assert sent[1]['payload']['bytes_total'] is None
    assert {n['priority'] for n in sent} == {'INFO'}
    assert {n['publisher_id'] for n in sent} == {f'novaext.{CONF.host}'}


def test_a_known_total_gives_the_percent_and_final_always_reports(
        sent_notifications):
    clock = _Clock()
    phase = novaext_progress.Progress(
        nova_context.get_admin_context(), objects.Instance(uuid=UUID),
        'snapshot', {'image_id': 'i'},
        interval=60, clock=clock).phase('upload')
    phase.update(1, 3)
    phase.update(2, 3)
    phase.update(3, 3, final=True)
    payloads = [n['payload'] for n in sent_notifications()]
    assert [(p['bytes_done'], p['bytes_total'], p['percent'])
            for p in payloads] == [(1, 3, 33.3), (3, 3, 100.0)]
    assert {p['image_id'] for p in payloads} == {'i'}
    assert {p['phase'] for p in payloads} == {'upload'}


def test_a_failure_is_an_error_event(sent_notifications):
    progress = _push(_Clock()).start()
    progress.error(OSError('link down'))
    sent = sent_notifications()
    assert sent[-1]['event_type'] == 'novaext.resize.push.error'
    assert sent[-1]['payload']['error'] == 'link down'


def test_as_a_context_manager_it_starts_and_reports_what_escapes(
        sent_notifications):
    with pytest.raises(OSError):
        with _push(_Clock()) as progress:
            progress.phase('push').update(1, percent=1)
            raise OSError('link down')
    assert [n['event_type'] for n in sent_notifications()] == [
        'novaext.resize.push.start', 'novaext.resize.push.progress',
        'novaext.resize.push.error']


def test_no_notification_without_a_transport_but_still_logged(
        monkeypatch, caplog):
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER', None)
    caplog.set_level('INFO', logger='novaext.progress')
    clock = _Clock()
    progress = _push(clock)
    clock.now += 6
    progress.phase('push').update(512, percent=50)
    progress.end(bytes_sent=1024)
    assert [event for event, _ in progress.events] == ['progress', 'end']
    assert 'resize.push progress: target=10.0.0.2:873/nova_instances, ' \
        'file=disk, phase=push, bytes_done=512, bytes_total=None, ' \
        'percent=50.0, seconds=6.0' in caplog.text


@pytest.mark.parametrize('enabled, notification_format, notifies', [
    (False, 'unversioned', False),
    (True, 'versioned', False),
    (True, 'both', True),
    (True, 'unversioned', True),
])
def test_notifications_follow_nova_s_unversioned_notifications(
        monkeypatch, enabled, notification_format, notifies):
    from unittest import mock
    legacy = mock.Mock()
    legacy.is_enabled.return_value = enabled
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER', legacy)
    CONF.set_override('notification_format', notification_format,
                      group='notifications')
    try:
        assert (novaext_progress.notifier() is not None) is notifies
    finally:
        CONF.clear_override('notification_format', group='notifications')


def test_noop_driver_means_no_notifier(monkeypatch):
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER',
                        _nova_legacy_notifier('noop'))
    assert novaext_progress.notifier() is None


def test_the_old_interval_options_still_set_the_interval(tmp_path):
    conf = cfg.ConfigOpts()
    novaext_conf.register_opts(conf)
    for old in ('transfer_progress_interval', 'snapshot_progress_interval'):
        path = tmp_path / f'{old}.conf'
        path.write_text(f'[novaext]\n{old} = 2.5\n')
        conf(['--config-file', str(path)])
        assert conf.novaext.progress_interval == 2.5
