"""Progress of a disk transfer: log lines and oslo.messaging notifications.

A ``TransferProgress`` is handed to a copy (rsync's progress updates)
and reports at most every ``[novaext]transfer_progress_interval`` seconds,
plus once at the end, as a log line and, when Nova's unversioned
notifications are on (novaext.notifications), as a notification
``novaext.<operation>.progress`` (then ``.end``) published as
``novaext.<host>``, with payload::

    {"instance_uuid": ..., "operation": "resize.push", "target": ...,
     "file": "disk", "bytes_done": int, "percent": int, "elapsed_s": float}
"""

import time

from oslo_config import cfg
from oslo_log import log as logging

from novaext import notifications

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


class TransferProgress:
    """Reports the progress of copying one file for one instance.

    Call the object with ``(bytes_done, percent)`` for each update, then
    ``end(bytes_sent)`` once the copy succeeded.
    """

    def __init__(self, context, instance, operation, target, filename,
                 clock=time.monotonic):
        self._context = context
        self._instance = instance
        self._clock = clock
        self._start = self._last_report = clock()
        self._interval = CONF.novaext.transfer_progress_interval
        self._payload = {'instance_uuid': instance.uuid,
                         'operation': operation, 'target': target,
                         'file': filename, 'bytes_done': 0, 'percent': 0,
                         'elapsed_s': 0.0}
        self._notifier = notifications.notifier(f'novaext.{CONF.host}')
        self.reports = 0

    def __call__(self, bytes_done, percent):
        self._payload.update(bytes_done=bytes_done, percent=percent)
        now = self._clock()
        if now - self._last_report >= self._interval:
            self._last_report = now
            self._report('progress')

    def end(self, bytes_sent):
        self._payload.update(bytes_sent=bytes_sent, percent=100)
        self._report('end')

    def _report(self, phase):
        self._payload['elapsed_s'] = round(self._clock() - self._start, 3)
        self.reports += 1
        LOG.info('%(operation)s of %(file)s to %(target)s: %(phase)s, '
                 '%(bytes_done)d bytes (%(percent)d%%) in %(elapsed_s)ss',
                 dict(self._payload, phase=phase), instance=self._instance)
        if self._notifier is not None:
            self._notifier.info(
                self._context,
                f'novaext.{self._payload["operation"]}.{phase}',
                dict(self._payload))
