"""Libvirt volume drivers registered through entry points.

Another package adds a ``driver_volume_type`` by declaring, in its own
metadata::

    [options.entry_points]
    novaext.libvirt.volume_drivers =
        mytype = mypackage.volume:MyLibvirtVolumeDriver

The class is built like Nova's own libvirt volume drivers, with the
driver's ``nova.virt.libvirt.host.Host`` as its only argument. Entries here
are consulted before Nova's built-in table, so a package may also replace
a built-in type.
"""

import threading

from oslo_log import log as logging
from stevedore import extension

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = 'novaext.libvirt.volume_drivers'


def load_volume_driver_classes(group=ENTRY_POINT_GROUP):
    """Return ``{driver_volume_type: class}`` for every entry point.

    An entry point that fails to import is logged and left out; it never
    stops the compute service from starting.
    """
    def _on_load_failure(manager, entrypoint, exc):
        LOG.error('Volume driver entry point %(ep)s in %(group)s failed to '
                  'load: %(exc)s',
                  {'ep': entrypoint, 'group': group, 'exc': exc})

    manager = extension.ExtensionManager(
        namespace=group, invoke_on_load=False,
        on_load_failure_callback=_on_load_failure)
    return {ext.name: ext.plugin for ext in manager}


class VolumeDriverTable:
    """novaext's volume driver types for one compute driver: each type's
    driver built once, on first use."""

    def __init__(self, classes=None):
        self.classes = (load_volume_driver_classes() if classes is None
                        else classes)
        self._lock = threading.Lock()

    def driver_for(self, connection_info, host, built):
        """The driver for ``connection_info``'s driver_volume_type, built
        with ``host`` and kept in ``built`` (Nova's ``volume_drivers``);
        None for a type not registered here (Nova's own table decides).
        """
        driver_type = connection_info.get('driver_volume_type')
        driver_cls = self.classes.get(driver_type)
        if driver_cls is None:
            return None
        with self._lock:
            driver = built.get(driver_type)
            if not isinstance(driver, driver_cls):
                driver = driver_cls(host)
                built[driver_type] = driver
        return driver
