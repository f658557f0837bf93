"""Where novaext's progress notifications go.

Through Nova's own unversioned notifier (``nova.rpc.LEGACY_NOTIFIER``,
set up by nova-compute from ``[oslo_messaging_notifications]`` and
``[notifications]notification_format``), so they follow the operator's
choice for Nova's: none when Nova's unversioned notifications are off.
"""

from nova import rpc
from oslo_config import cfg

CONF = cfg.CONF


def notifier(publisher_id):
    """Nova's unversioned notifier for ``publisher_id``, or None when
    it is not set up, its driver is noop, or the format is versioned."""
    legacy = rpc.LEGACY_NOTIFIER
    if legacy is None or not legacy.is_enabled():
        return None
    if CONF.notifications.notification_format not in ('both',
                                                      'unversioned'):
        return None
    return legacy.prepare(publisher_id=publisher_id)
