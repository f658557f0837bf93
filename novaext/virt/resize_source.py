"""The source half of resize and cold migration: move only what must move.

Nova's own outline, with its helpers (shared-storage probe, power off,
volume disconnect, ``<dir>_resize`` rename, rollback), but the copy step
follows transfer_plan: qcow2 overlays are pushed as they are to the
destination's rsync daemon, raw disks whole and sparse, ephemeral and swap
disks not at all. On the same host or shared storage the copy is local.
Any failure puts ``<dir>_resize`` back and removes what reached the
destination, then re-raises: the guest stays bootable on the source.
"""

import os

from nova import block_device
from nova import exception
from nova.virt import driver as virt_driver
from nova.virt.libvirt import utils as libvirt_utils
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from oslo_utils import fileutils

from novaext.virt import rsync_client
from novaext.virt import transfer_plan
from novaext.virt import transfer_progress
from novaext.virt.transfer_plan import Action

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def _refuse_resize_down(instance, flavor, block_device_info,
                        booted_from_volume):
    ephemerals = virt_driver.block_device_info_get_ephemerals(
        block_device_info)
    eph_size = (block_device.get_bdm_ephemeral_disk_size(ephemerals) or
                instance.flavor.ephemeral_gb)
    root_down = flavor.root_gb < instance.flavor.root_gb
    if (root_down and not booted_from_volume) or \
            flavor.ephemeral_gb < eph_size:
        raise exception.InstanceFaultRollback(
            exception.ResizeError(reason='Unable to resize disk down.'))


def _copy_local(src, dst, sparse):
    """Same host or shared instances_path: ``<dir>_resize`` must stay
    intact for a revert, so the disk is copied, as Nova does; on a
    copy-on-write file system (XFS, btrfs) the copy shares the blocks."""
    processutils.execute(
        'cp', '--reflink=auto',
        '--sparse=always' if sparse else '--sparse=auto', src, dst)


def migrate_disk_and_power_off(drv, context, instance, dest, flavor,
                               network_info, block_device_info=None,
                               timeout=0, retry_interval=0):
    """ComputeDriver.migrate_disk_and_power_off for ExtLibvirtDriver.

    :returns: Nova's disk info JSON for finish_migration
    :raises: InstanceFaultRollback before the guest is touched (resize
        down, destination unreachable); anything raised during the copy,
        after rolling back
    """
    booted_from_volume = drv._is_booted_from_volume(block_device_info)
    _refuse_resize_down(instance, flavor, block_device_info,
                        booted_from_volume)
    inst_base = libvirt_utils.get_instance_path(instance)
    inst_base_resize = inst_base + '_resize'
    shared = drv._is_path_shared_with(dest, inst_base)
    client = None
    if not shared:
        client = rsync_client.RsyncDaemonClient.from_conf(CONF, dest)
        try:
            client.make_dir(os.path.basename(inst_base))
        except (rsync_client.RsyncTransferError,
                rsync_client.InvalidRemotePath) as e:
            raise exception.InstanceFaultRollback(
                exception.ResizeError(reason=str(e))) from e

    drv.power_off(instance, timeout, retry_interval)
    drv.unplug_vifs(instance, network_info)
    for vol in virt_driver.block_device_info_get_mapping(block_device_info):
        drv._disconnect_volume(context, vol['connection_info'], instance)
    disk_info = drv._get_instance_disk_info(instance, block_device_info)

    try:
        drv._cleanup_failed_instance_base(inst_base_resize)
        os.rename(inst_base, inst_base_resize)
        if shared:
            fileutils.ensure_tree(inst_base)
        moved = [(d.path, d.action) for d in transfer_plan.plan(disk_info)
                 if d.action is not Action.RECREATE_ON_DESTINATION]
        info_file = os.path.join(inst_base_resize, 'disk.info')
        if os.path.exists(info_file):
            moved.append((os.path.join(inst_base, 'disk.info'),
                          Action.PUSH_WHOLE_SPARSE))
        sent = 0
        for path, action in moved:
            name = os.path.basename(path)
            src = os.path.join(inst_base_resize, name)
            sparse = action is Action.PUSH_WHOLE_SPARSE
            if shared:
                _copy_local(src, os.path.join(inst_base, name), sparse)
            else:
                progress = transfer_progress.TransferProgress(
                    context, instance, 'resize.push', client.target, name)
                pushed = client.push(src, os.path.basename(inst_base), name,
                                     sparse=sparse, on_progress=progress)
                progress.end(pushed)
                sent += pushed
        LOG.info('Moved %(n)d file(s) of %(inst)s to %(dest)s, %(sent)d '
                 'bytes sent', {'n': len(moved), 'inst': instance.uuid,
                                'dest': dest, 'sent': sent},
                 instance=instance)
    except Exception:
        with excutils.save_and_reraise_exception():
            drv._cleanup_remote_migration(dest, inst_base, inst_base_resize,
                                          shared)
    return jsonutils.dumps(disk_info)
