"""resize.shutdown: Nova's clean shutdown, looked at every 0.1 s.

A stand-in libvirt Host and Guest whose power state follows a fake clock;
Nova's power_off is a mock (what it does is Nova's)."""

from unittest import mock

import pytest
from nova import exception
from nova.compute import power_state
from nova.virt.libvirt import driver as libvirt_driver

from novaext.resize import shutdown


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now = round(self.now + seconds, 6)  # no drift in the sum


class Guest:
    """Shuts down ``stops_after`` seconds after the ``answers``-th
    shutdown request (None: never)."""

    def __init__(self, clock, stops_after=None, answers=1, refuse=False):
        self.clock = clock
        self.stops_after = stops_after
        self.answers = answers
        self.refuse = refuse
        self.asked_at = []
        self.stops_at = None

    def shutdown(self):
        self.asked_at.append(self.clock())
        if self.refuse:
            raise libvirt_driver.libvirt.libvirtError('not now')
        if (self.stops_after is not None and
                len(self.asked_at) == self.answers):
            self.stops_at = self.clock() + self.stops_after

    def get_power_state(self, host):
        if self.stops_at is not None and self.clock() >= self.stops_at:
            return power_state.SHUTDOWN
        return power_state.RUNNING


class Host:
    def __init__(self, guest, gone_at=None):
        self.guest = guest
        self.gone_at = gone_at

    def get_guest(self, instance):
        if self.gone_at is not None and self.guest.clock() >= self.gone_at:
            raise exception.InstanceNotFound(instance_id='i')
        return self.guest


def _nova(guest, **host):
    return mock.Mock(host=Host(guest, **host))


def _power_off(nova, clock, timeout=60, retry_interval=10):
    shutdown.power_off_for_move(nova, 'inst', timeout, retry_interval,
                                clock=clock, sleep=clock.sleep)


def test_a_stopped_guest_is_seen_within_a_tenth_of_a_second():
    clock = Clock()
    guest = Guest(clock, stops_after=1.23)
    nova = _nova(guest)
    _power_off(nova, clock)
    assert guest.asked_at == [100.0]
    assert 1.23 <= clock.now - 100.0 <= 1.23 + shutdown.POLL_INTERVAL
    # Nova's power_off, as the driver was called: it finds the guest shut
    # down at its first look and destroys the domain.
    nova.power_off.assert_called_once_with('inst', 60, 10)


def test_the_request_is_repeated_every_retry_interval():
    clock = Clock()
    guest = Guest(clock, stops_after=0.5, answers=3)
    nova = _nova(guest)
    _power_off(nova, clock, timeout=60, retry_interval=10)
    assert [round(t - 100.0, 1) for t in guest.asked_at] == [0, 10, 20]
    assert clock.now - 100.0 == pytest.approx(20.5, abs=0.15)
    nova.power_off.assert_called_once_with('inst', 60, 10)


def test_a_guest_that_does_not_stop_is_destroyed_after_timeout_not_later():
    clock = Clock()
    guest = Guest(clock)
    nova = _nova(guest)
    _power_off(nova, clock, timeout=5, retry_interval=0)
    assert len(guest.asked_at) == 1
    assert clock.now - 100.0 == pytest.approx(5, abs=0.15)
    # Nova's own wait would take another ``timeout``: destroy only.
    nova.power_off.assert_called_once_with('inst', 0, 0)


def test_no_timeout_is_nova_power_off_as_called():
    clock = Clock()
    guest = Guest(clock, stops_after=0)
    nova = _nova(guest)
    _power_off(nova, clock, timeout=0, retry_interval=0)
    assert guest.asked_at == []
    nova.power_off.assert_called_once_with('inst', 0, 0)


def test_an_already_stopped_guest_is_not_asked():
    clock = Clock()
    guest = Guest(clock, stops_after=0)
    guest.stops_at = 0
    nova = _nova(guest)
    _power_off(nova, clock)
    assert guest.asked_at == [] and clock.now == 100.0
    nova.power_off.assert_called_once_with('inst', 60, 10)


def test_a_domain_that_disappears_counts_as_stopped():
    clock = Clock()
    guest = Guest(clock)
    nova = _nova(guest, gone_at=102.0)
    _power_off(nova, clock)
    assert 2.0 <= clock.now - 100.0 <= 2.0 + shutdown.POLL_INTERVAL
    nova.power_off.assert_called_once_with('inst', 60, 10)


def test_a_refused_request_is_not_an_error():
    clock = Clock()
    guest = Guest(clock, refuse=True)
    nova = _nova(guest)
    _power_off(nova, clock, timeout=3, retry_interval=1)
    assert len(guest.asked_at) == 3
    nova.power_off.assert_called_once_with('inst', 0, 0)


def test_work_while_stopping_runs_once_after_the_first_request():
    clock = Clock()
    guest = Guest(clock, stops_after=2.0)
    nova = _nova(guest)
    calls = []

    def work():
        calls.append((len(guest.asked_at), clock()))
        clock.sleep(0.5)

    shutdown.power_off_for_move(nova, 'inst', 60, 10, clock=clock,
                                sleep=clock.sleep, while_stopping=work)

    assert calls == [(1, 100.0)]
    assert guest.asked_at == [100.0]
    nova.power_off.assert_called_once_with('inst', 60, 10)


def test_no_work_while_stopping_for_a_guest_already_stopped():
    clock = Clock()
    guest = Guest(clock, stops_after=0)
    guest.stops_at = clock()
    work = mock.Mock()

    shutdown.power_off_for_move(_nova(guest), 'inst', 60, 10, clock=clock,
                                sleep=clock.sleep, while_stopping=work)

    work.assert_not_called()
