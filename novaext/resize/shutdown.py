"""The guest's power-off before its disks move, watched closely.

Nova's power_off asks the guest to shut down (ACPI) and looks at its state
once a second, so a guest that has already stopped waits up to a second
more before anything moves: downtime added to every resize and cold
migration. power_off_for_move asks and re-asks as Nova does (again every
``retry_interval`` seconds, for at most ``timeout`` seconds) but looks
every POLL_INTERVAL seconds; then it hands over to Nova's own power_off,
which finds the guest shut down at its first look and destroys the domain
as always. A guest still running after ``timeout`` is destroyed at once,
which is what Nova does after its own wait.

``while_stopping`` is work that overlaps the guest's shutdown (the
pre-copy's catch-up pass): it runs once, right after the first request,
and its time counts against ``timeout``.
"""

import time

from nova import exception
from nova.compute import power_state
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
SHUTDOWN_STATES = (power_state.SHUTDOWN, power_state.CRASHED)


def power_off_for_move(internals, instance, timeout, retry_interval,
                       clock=time.monotonic, sleep=time.sleep,
                       while_stopping=None):
    """Shut ``instance``'s guest down cleanly within ``timeout`` seconds
    (0: not at all), then Nova's power_off; returns when the domain is
    destroyed. ``internals``: NovaInternals."""
    if not timeout:
        internals.power_off(instance, timeout, retry_interval)
    elif wait_for_clean_shutdown(internals.host, instance, timeout,
                                 retry_interval, clock, sleep,
                                 while_stopping):
        internals.power_off(instance, timeout, retry_interval)
    else:
        LOG.warning('Instance did not shut down in %d seconds; destroying '
                    'it', timeout, instance=instance)
        internals.power_off(instance, 0, 0)


def wait_for_clean_shutdown(host, instance, timeout, retry_interval,
                            clock=time.monotonic, sleep=time.sleep,
                            while_stopping=None):
    """Ask the guest to shut down and wait for it; True when it has (or
    its domain is gone), False after ``timeout`` seconds. ``host``: Nova's
    libvirt Host; ``while_stopping``: called once after the first request
    (not when the guest was stopped already)."""
    guest = _guest(host, instance)
    if guest is None or guest.get_power_state(host) in SHUTDOWN_STATES:
        return True
    started = clock()
    _ask(guest, instance)
    if while_stopping is not None:
        while_stopping()
    next_ask = started + retry_interval if retry_interval else None
    while True:
        sleep(POLL_INTERVAL)
        guest = _guest(host, instance)
        if guest is None or guest.get_power_state(host) in SHUTDOWN_STATES:
            LOG.info('Instance shut down after %.1f seconds',
                     clock() - started, instance=instance)
            return True
        if clock() - started >= timeout:
            return False
        if next_ask is not None and clock() >= next_ask:
            # As Nova: the guest may have missed the first request (it
            # was still booting, say).
            _ask(guest, instance)
            next_ask += retry_interval


def _guest(host, instance):
    try:
        return host.get_guest(instance)
    except exception.InstanceNotFound:
        return None


def _ask(guest, instance):
    try:
        guest.shutdown()
    except libvirt_driver.libvirt.libvirtError as e:
        # The guest may be stopping already; its state will tell.
        LOG.debug('Ignoring libvirt error from shutdown request: %s', e,
                  instance=instance)
