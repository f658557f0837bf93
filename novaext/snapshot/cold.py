"""Cold snapshot: read the disk while the guest is saved or stopped.

``SavedGuest`` wraps the disk read. A running or paused guest is saved
with libvirt's managedSave (Nova's ``_suspend_guest_for_snapshot``) and
started again from its saved state afterwards (Nova's
``_resume_guest_after_snapshot``), whatever happened in between: a paused
guest comes back paused, a running one running. A stopped guest is left
alone and stays stopped.

Before the save, a record (``SAVED_RECORD``: the instance and the power
state it had) is written into the snapshot's scratch directory, so that
a nova-compute that died with the guest saved starts it again from its
saved state when it starts (snapshot.recovery), as this snapshot would
have; Nova's own start leaves such a guest off.
"""

import json
import os

from oslo_log import log as logging

from novaext.snapshot.plan import Method

LOG = logging.getLogger(__name__)


SAVED_RECORD = 'saved-guest.json'


def write_saved_record(scratch, instance_uuid, power_state):
    """Record in ``scratch`` that ``instance_uuid`` is about to be saved
    from ``power_state``; written before the save, fsync'd."""
    path = os.path.join(scratch, SAVED_RECORD)
    with open(path, 'w') as f:
        json.dump({'instance': instance_uuid, 'power_state': power_state}, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_saved_record(scratch):
    """(instance uuid, power state) recorded in ``scratch``, or None."""
    try:
        with open(os.path.join(scratch, SAVED_RECORD)) as f:
            record = json.load(f)
        return str(record['instance']), int(record['power_state'])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


class SavedGuest:
    """Context manager around reading a cold guest's disk; ``scratch`` is
    the snapshot's scratch directory, where the record of the save goes."""

    def __init__(self, internals, context, instance, guest, method,
                 original_power_state, scratch):
        self.internals = internals
        self.context = context
        self.instance = instance
        self.guest = guest
        self.method = method
        self.original = original_power_state
        self.scratch = scratch

    def __enter__(self):
        if self.method is Method.COLD_SAVED:
            write_saved_record(self.scratch, self.instance.uuid,
                               self.original)
            LOG.info('Saving the guest (managedSave) for a cold snapshot',
                     instance=self.instance)
            self.internals.save_guest_for_cold_snapshot(
                self.context, self.original, self.instance)
        return self

    def __exit__(self, *exc):
        if self.method is Method.COLD_SAVED:
            self.internals.restore_guest_after_cold_snapshot(
                self.context, self.original, self.instance, self.guest)
            LOG.info('Guest restored from its saved state after the cold '
                     'snapshot', instance=self.instance)
        return False
