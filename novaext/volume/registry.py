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

