"""TransferProgress: throttled log lines and oslo.messaging notifications."""

import oslo_messaging as messaging
import pytest
from nova import context as nova_context
from nova import objects
from nova import rpc
from oslo_config import cfg
from oslo_messaging.notify import _impl_test

from novaext import conf as novaext_conf
from novaext import notifications
from novaext.resize import progress as transfer_progress

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


def _progress(clock):
    CONF.set_override('transfer_progress_interval', 5, group='novaext')
    return transfer_progress.TransferProgress(
        nova_context.get_admin_context(), objects.Instance(uuid=UUID),
        'resize.push', '10.0.0.2:873/nova_instances',
        'disk', clock=clock)


def test_reports_at_most_once_per_interval_and_at_the_end(
        sent_notifications):
    clock = _Clock()
    progress = _progress(clock)
    for second, done in ((1, 10), (4, 40), (6, 60), (9, 90), (12, 99)):
        clock.now = 100.0 + second
        progress(done * 1024, done)
    progress.end(99 * 1024)

    sent = sent_notifications()
    events = [(n['event_type'], n['payload']['percent'],
               n['payload']['bytes_done']) for n in sent]
    assert events == [('novaext.resize.push.progress', 60, 60 * 1024),
                      ('novaext.resize.push.progress', 99, 99 * 1024),
                      ('novaext.resize.push.end', 100, 99 * 1024)]
    assert sent[-1]['payload']['bytes_sent'] == 99 * 1024
    assert sent[-1]['payload']['instance_uuid'] == UUID
    assert sent[-1]['payload']['elapsed_s'] == 12.0
    assert {n['priority'] for n in sent} == {'INFO'}
    assert {n['publisher_id'] for n in sent} == {f'novaext.{CONF.host}'}


def test_no_notification_without_a_transport_but_still_logged(
        monkeypatch, caplog):
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER', None)
    clock = _Clock()
    progress = _progress(clock)
    clock.now += 6
    progress(512, 50)
    progress.end(1024)
    assert progress.reports == 2
    assert 'resize.push of disk to 10.0.0.2:873/nova_instances: progress, ' \
        '512 bytes (50%) in 6.0s' in caplog.text


def test_noop_driver_means_no_notifier(monkeypatch):
    monkeypatch.setattr(rpc, 'LEGACY_NOTIFIER',
                        _nova_legacy_notifier('noop'))
    assert notifications.notifier('novaext.h') is None
