"""Quiescing a guest for a snapshot, with Nova's semantics.

Nova's ``_can_quiesce`` says whether the guest agent can freeze the
guest's filesystems (virt type kvm/qemu and image property
``hw_qemu_guest_agent``). When the image also sets ``os_require_quiesce``
a snapshot that cannot quiesce fails before anything is touched;
otherwise it goes on unquiesced, logged. The freeze itself (Nova's
``quiesce``) is held only around the end of the block copy; a freeze that
fails is fatal only when quiescing is required (Nova 34 logs and goes on
in that case too: novaext is stricter on purpose).
"""

from nova import exception
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class Quiescer:
    """Context manager freezing the guest's filesystems, if it can."""

    def __init__(self, internals, context, instance, image_meta):
        self.internals = internals
        self.context = context
        self.instance = instance
        self.image_meta = image_meta
        self.required = bool(internals.requires_quiesce(image_meta))
        self.available = False
        self.frozen = False

    def check(self):
        """Raise now if quiescing is required but impossible."""
        try:
            self.internals.check_can_quiesce(self.instance, self.image_meta)
            self.available = True
        except exception.NovaException as e:
            if self.required:
                LOG.error('Quiescing instance failed but image property '
                          '"os_require_quiesce" is set: %s', e,
                          instance=self.instance)
                raise
            LOG.info('Quiescing instance not available: %s', e,
                     instance=self.instance)
        return self

    def __enter__(self):
        if not self.available:
            return self
        try:
            self.internals.quiesce(self.context, self.instance,
                                   self.image_meta)
            self.frozen = True
        except exception.NovaException as e:
            if self.required:
                raise
            LOG.info('Skipping quiescing instance: %s', e,
                     instance=self.instance)
        return self

    def __exit__(self, *exc):
        if self.frozen:
            self.frozen = False
            self.internals.unquiesce(self.context, self.instance,
                                     self.image_meta)
        return False
