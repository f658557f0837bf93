"""Progress of novaext's long operations: one reporter, one dialect.

Resize pushes, snapshots and base pulls report the same way: INFO lines
on the ``novaext.progress`` logger and, when Nova's unversioned
notifications are on (``[notifications]notification_format`` both or
unversioned, a notification driver configured), oslo.messaging
notifications through Nova's own notifier:

- publisher ``novaext.<host>``;
- event types ``novaext.<operation>.start``, ``.progress``, ``.end`` and
  ``.error``, where operation is ``resize.push`` (one per file pushed),
  ``snapshot`` or ``base.pull``;
- payload: ``instance_uuid``, ``operation``, the operation's own keys
  (resize.push: ``target``, ``file``, ``pass``: ``single``, or
  ``precopy``, ``catchup`` (while the guest shuts down; not always) then
  ``final`` for a pre-copied overlay; snapshot:
  ``image_id``; base.pull: ``base``, ``source``), and on .progress events
  ``phase`` (resize.push: ``push``, ``precopy``, ``catchup`` or ``final``;
  snapshot: ``block-copy``, ``extract``, ``upload``; base.pull: ``pull``),
  ``bytes_done`` (int), ``bytes_total`` (int, or
  null when unknown), ``percent`` (float 0-100 with one decimal, or null
  when unknown); every event has ``seconds`` (float, since .start); .end
  adds the operation's result (resize.push: ``bytes_sent``; snapshot:
  ``method``, ``upload``, ``bytes_uploaded``; base.pull:
  ``bytes_received``), .error adds ``error``.

A phase reports at most once per ``[novaext]progress_interval`` seconds,
and always when it finishes.
"""

import contextlib
import os
import threading
import time

from nova import rpc
from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def notifier():
    """Nova's unversioned notifier as ``novaext.<host>``, or None when it
    is not set up, its driver is noop, or the format is versioned."""
    legacy = rpc.LEGACY_NOTIFIER
    if legacy is None or not legacy.is_enabled():
        return None
    if CONF.notifications.notification_format not in ('both',
                                                      'unversioned'):
        return None
    return legacy.prepare(publisher_id=f'novaext.{CONF.host}')


class Progress:
    """Reports one operation on one instance: ``start()``, then
    ``phase(name).update(...)`` as work is done, then ``end(**result)``
    or ``error(exc)``. As a context manager it starts on entry and
    reports an exception leaving the block as the error.

    :param details: the operation's own payload keys (see the module)
    :param interval: seconds between a phase's reports; default
        ``[novaext]progress_interval``
    """

    def __init__(self, context, instance, operation, details,
                 interval=None, clock=time.monotonic):
        self.context = context
        self.instance = instance
        self.operation = operation
        self.details = dict(details)
        self.interval = (CONF.novaext.progress_interval
                         if interval is None else interval)
        self._clock = clock
        self._started = clock()
        self._notifier = notifier()
        self.events = []

    def seconds(self):
        return round(self._clock() - self._started, 3)

    def start(self):
        self._emit('start', {})
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.error(exc)
        return False

    def phase(self, name):
        return PhaseProgress(self, name)

    def end(self, **result):
        self._emit('end', result)

    def error(self, exc):
        self._emit('error', {'error': str(exc)})

    def _emit(self, event, extra):
        payload = {'instance_uuid': self.instance.uuid,
                   'operation': self.operation, **self.details, **extra,
                   'seconds': self.seconds()}
        self.events.append((event, payload))
        # The record's args carry the payload too, for log handlers.
        LOG.info('%(operation)s %(event)s: %(readable)s',
                 dict(payload, event=event, readable=_readable(payload)),
                 instance=self.instance)
        if self._notifier is not None:
            self._notifier.info(self.context,
                                f'novaext.{self.operation}.{event}', payload)


class PhaseProgress:
    """One phase of an operation; ``update`` is rate-limited."""

    def __init__(self, operation, name):
        self.operation = operation
        self.name = name
        self._last = None

    def update(self, done, total=None, percent=None, final=False):
        """Report ``done`` bytes of ``total`` (or of an unknown total at
        ``percent``); skipped when the last report is younger than the
        interval, unless ``final``."""
        now = self.operation._clock()
        if (not final and self._last is not None and
                now - self._last < self.operation.interval):
            return
        self._last = now
        if total:
            percent = 100.0 * done / total
        self.operation._emit('progress', {
            'phase': self.name, 'bytes_done': int(done),
            'bytes_total': int(total) if total else None,
            'percent': None if percent is None else round(float(percent),
                                                          1)})


def _readable(payload):
    return ', '.join(f'{k}={v}' for k, v in payload.items()
                     if k not in ('instance_uuid', 'operation'))


@contextlib.contextmanager
def watch_file(path, phase, total=None, poll=0.5):
    """Report the allocated size of ``path`` to ``phase`` while the block
    runs (a command writing the file), and once more at its end."""
    stop = threading.Event()

    def allocated():
        try:
            return os.stat(path).st_blocks * 512
        except FileNotFoundError:
            return 0

    def watch():
        while not stop.wait(poll):
            phase.update(allocated(), total)

    thread = threading.Thread(target=watch, daemon=True,
                              name=f'progress-{phase.name}')
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    phase.update(allocated(), total, final=True)
