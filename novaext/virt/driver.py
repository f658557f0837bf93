"""ExtLibvirtDriver: Nova's libvirt driver with novaext's pieces wired in.

This module only wires Nova's hooks to the modules that do the work; every
behaviour not overridden here is Nova's own.
"""

import functools
import os

from nova.compute import task_states
from nova.virt.libvirt import driver as libvirt_driver
from oslo_config import cfg
from oslo_log import log as logging

from novaext import conf as novaext_conf
from novaext import nova_internals
from novaext.imagebackend import base_from_host
from novaext.imagebackend import base_names
from novaext.imagebackend import image_cache
from novaext.imagebackend import qcow2 as ext_qcow2
from novaext.resize import capabilities as resize_capabilities
from novaext.resize import dest as resize_dest
from novaext.resize import orphans as resize_orphans
from novaext.resize import recovery as resize_recovery
from novaext.resize import source as resize_source
from novaext.rsync import remotefs as daemon_remotefs
from novaext.snapshot import recovery as snapshot_recovery
from novaext.snapshot import run as ext_snapshot
from novaext.volume import leftover_secrets
from novaext.volume import registry as volume_registry

CONF = cfg.CONF
novaext_conf.register_opts(CONF)
LOG = logging.getLogger(__name__)

# Nova's own class, held here: Nova's parity tests (tests/conformance.py)
# point the name nova.virt.libvirt.driver.LibvirtDriver at ExtLibvirtDriver.
NovaLibvirtDriver = libvirt_driver.LibvirtDriver


class ExtLibvirtDriver(NovaLibvirtDriver):
    """Nova's LibvirtDriver with novaext's cache, resize, snapshot, volumes.

    Loaded by nova-compute with ``compute_driver = novaext.ExtLibvirtDriver``.
    """

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        ext_qcow2.register(self.image_backend, CONF.use_cow_images)
        self.image_cache_manager = image_cache.ExtImageCacheManager()
        self._remotefs = daemon_remotefs.DaemonRemoteFilesystem(CONF)
        self._ext_volume_drivers = volume_registry.VolumeDriverTable()

    def init_host(self, host):
        """Nova's; then what snapshots nova-compute did not finish left
        (snapshot.recovery) and the partial files of its interrupted
        downloads (image_cache), the cloud-disk secrets its unfinished
        attaches left (volume.leftover_secrets), and the sweep of partial
        copies other hosts' failed moves left here (resize.orphans), every
        [novaext]orphan_sweep_interval seconds."""
        super().init_host(host)
        leftover_secrets.remove_unused_at_start(self._host.get_connection())
        snapshot_recovery.recover(nova_internals.NovaInternals(self), host,
                                  CONF.libvirt.snapshots_directory)
        image_cache.remove_interrupted_partials(
            base_names.base_dir(), os.path.join(CONF.instances_path, 'locks'))
        self._orphan_sweeper = resize_orphans.OrphanSweeper(
            nova_internals.NovaInternals(self), host,
            CONF.instances_path).start(CONF.novaext.orphan_sweep_interval)

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        """Nova's; then the traits of what this novaext accepts from its
        peers' moves (resize.capabilities), for rolling upgrades."""
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        resize_capabilities.advertise(provider_tree, nodename)

    def _get_volume_driver(self, connection_info):
        """Return the volume driver for ``connection_info``.

        Types registered in the ``novaext.libvirt.volume_drivers`` entry
        point group win over Nova's built-in table; any other type goes to
        Nova, which raises VolumeDriverNotFound for unknown types.
        """
        return (self._ext_volume_drivers.driver_for(
            connection_info, self._host, self.volume_drivers) or
            super()._get_volume_driver(connection_info))

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        """Nova's; for a mapping without connection_info (an attach
        nova-compute did not finish) also the cloud disk's secret
        (volume.leftover_secrets), where Nova would stop at
        VolumeDriverNotFound and the volume could never be detached."""
        nova_detach = functools.partial(
            super().detach_volume, context, connection_info, instance,
            mountpoint, encryption=encryption)
        if connection_info:
            return nova_detach()
        leftover_secrets.detach_unrecorded(self._host, instance, mountpoint,
                                           nova_detach)

    def _disconnect_volume(self, context, connection_info, instance,
                           encryption=None, destroy_secrets=True,
                           force=False):
        """Nova's; nothing to disconnect where no connection was ever
        recorded (see detach_volume)."""
        if not connection_info:
            return
        return super()._disconnect_volume(
            context, connection_info, instance, encryption=encryption,
            destroy_secrets=destroy_secrets, force=force)

    def migrate_disk_and_power_off(self, context, instance, dest,
                                   flavor, network_info,
                                   block_device_info=None,
                                   timeout=0, retry_interval=0):
        """novaext's move (resize_source) of file disks; Nova's own for
        images_type rbd, lvm and ploop (Nova refuses lvm before the guest
        is touched)."""
        if not resize_source.moves_images_type(CONF.libvirt.images_type):
            return super().migrate_disk_and_power_off(
                context, instance, dest, flavor, network_info,
                block_device_info, timeout, retry_interval)
        return resize_source.migrate_disk_and_power_off(
            nova_internals.NovaInternals(self), context, instance, dest,
            flavor, network_info, block_device_info, timeout,
            retry_interval)

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None,
                         power_on=True, share_info=None):
        resize_dest.repoint_overlays(instance, disk_info)
        return super().finish_migration(
            context, migration, instance, disk_info, network_info,
            image_meta, resize_instance, allocations,
            block_device_info=block_device_info, power_on=power_on,
            share_info=share_info)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        """Nova's revert; for a move nova-compute did not finish (Nova's
        restart hands it back in RESIZE_MIGRATING), novaext's recovery
        first (resize.recovery): the guest's writes back in its disks,
        the partial copy gone, the allocation back, and a guest still
        running left running."""
        nova_revert = functools.partial(
            super().finish_revert_migration, context, instance,
            network_info, migration, block_device_info=block_device_info,
            power_on=power_on, share_info=share_info)
        if instance.task_state != task_states.RESIZE_MIGRATING:
            return nova_revert()
        resize_recovery.revert_interrupted_move(
            nova_internals.NovaInternals(self), context, instance,
            migration, nova_revert)

    def _hard_reboot(self, context, instance, network_info, share_info,
                     block_device_info=None, accel_info=None):
        """Nova's hard reboot (also behind power_on and resume), which
        rebuilds the domain from the disks: first, any write a failed
        pre-copy left in its layers goes back into them
        (resize.recovery.RedirectLeftovers), and a destination's merge
        that nova-compute did not finish is finished
        (resize.dest.finish_pending_merges), so that none is lost."""
        leftovers = resize_recovery.RedirectLeftovers(
            nova_internals.NovaInternals(self), instance)
        if leftovers:
            leftovers.resolve()
        resize_dest.finish_pending_merges(instance)
        return super()._hard_reboot(
            context, instance, network_info, share_info,
            block_device_info=block_device_info, accel_info=accel_info)

    def snapshot(self, context, instance, image_id, update_task_state):
        """Live or cold snapshot, full or delta upload (novaext.snapshot.run)
        of a file root disk; Nova's own for rbd, lvm and ploop disks.

        Nova's own implementation stays reachable as
        ``NovaLibvirtDriver.snapshot(driver, ...)``.
        """
        run = ext_snapshot.SnapshotRun(
            nova_internals.NovaInternals(self), context, instance, image_id,
            update_task_state)
        if not run.is_novaext_snapshot():
            return super().snapshot(context, instance, image_id,
                                    update_task_state)
        run.run()

    def _try_fetch_image_cache(self, image, fetch_func, context, filename,
                               image_id, instance, size,
                               fallback_from_host=None):
        """Nova's, but the fallback pulls the base over the rsync daemon.

        Nova's own fallback copies from the other host over ssh, and only
        when the image is gone; this one also when the image service is
        unreachable, since the peer holds the same bytes.
        """
        return base_from_host.fetch_else_pull(
            functools.partial(
                super()._try_fetch_image_cache, image, fetch_func, context,
                filename, image_id, instance, size, fallback_from_host=None),
            context, instance, image, image_id, filename, fallback_from_host)
