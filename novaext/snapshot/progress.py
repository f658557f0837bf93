"""Progress of a snapshot's phases: a log line, and a notification.

``Progress.update(done, total)`` reports at most once per interval (and
always at the end of a phase) as an INFO log line and, when Nova's
unversioned notifications are enabled, as a ``novaext.snapshot.progress``
notification through oslo.messaging. ``watch_file`` reports a file's
growth while a command writes it.
"""

import contextlib
import os
import threading
import time

from oslo_config import cfg
from oslo_log import log as logging

from novaext import notifications

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

EVENT_TYPE = 'novaext.snapshot.progress'


class Progress:
    """Reports one phase ('block-copy', 'extract', 'upload') of a snapshot."""

    def __init__(self, context, instance, image_id, phase, interval,
                 clock=time.monotonic):
        self.context = context
        self.instance = instance
        self.image_id = image_id
        self.phase = phase
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._last = None
        self.reports = []

    def update(self, done, total=None, final=False):
        now = self._clock()
        if (not final and self._last is not None and
                now - self._last < self.interval):
            return
        self._last = now
        percent = (round(100.0 * done / total, 1) if total else None)
        payload = {'instance_uuid': self.instance.uuid,
                   'image_id': self.image_id, 'phase': self.phase,
                   'bytes_done': int(done),
                   'bytes_total': int(total) if total else None,
                   'percent': percent,
                   'seconds': round(now - self._started, 2)}
        self.reports.append(payload)
        LOG.info('Snapshot %(image_id)s %(phase)s: %(bytes_done)d of '
                 '%(bytes_total)s bytes (%(percent)s%%) after %(seconds)ss',
                 payload, instance=self.instance)
        notifier = notifications.notifier(f'compute.{CONF.host}')
        if notifier is not None:
            notifier.info(self.context, EVENT_TYPE, payload)

    def child(self, phase):
        return Progress(self.context, self.instance, self.image_id, phase,
                        self.interval, self._clock)


@contextlib.contextmanager
def watch_file(path, progress, total=None, poll=0.5):
    """Report the allocated size of ``path`` while the block runs."""
    stop = threading.Event()

    def allocated():
        try:
            return os.stat(path).st_blocks * 512
        except FileNotFoundError:
            return 0

    def watch():
        while not stop.wait(poll):
            progress.update(allocated(), total)

    thread = threading.Thread(target=watch, daemon=True,
                              name=f'snapshot-{progress.phase}')
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    progress.update(allocated(), total, final=True)
