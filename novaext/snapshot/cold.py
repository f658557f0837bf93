"""Cold snapshot: read the disk while the guest is saved or stopped.

``SavedGuest`` wraps the disk read. A running or paused guest is saved
with libvirt's managedSave (Nova's ``_suspend_guest_for_snapshot``) and
started again from its saved state afterwards (Nova's
``_resume_guest_after_snapshot``), whatever happened in between: a paused
guest comes back paused, a running one running. A stopped guest is left
alone and stays stopped.
"""

from oslo_log import log as logging

from novaext.snapshot.plan import Method

LOG = logging.getLogger(__name__)


class SavedGuest:
    """Context manager around reading a cold guest's disk."""

    def __init__(self, nova, context, instance, guest, method,
                 original_power_state):
        self.nova = nova
        self.context = context
        self.instance = instance
        self.guest = guest
        self.method = method
        self.original = original_power_state

    def __enter__(self):
        if self.method is Method.COLD_SAVED:
            LOG.info('Saving the guest (managedSave) for a cold snapshot',
                     instance=self.instance)
            self.nova.save_guest_for_cold_snapshot(
                self.context, self.original, self.instance)
        return self

    def __exit__(self, *exc):
        if self.method is Method.COLD_SAVED:
            self.nova.restore_guest_after_cold_snapshot(
                self.context, self.original, self.instance, self.guest)
            LOG.info('Guest restored from its saved state after the cold '
                     'snapshot', instance=self.instance)
        return False
