"""The source half of resize and cold migration: move only what must move.

Nova's own outline, with its helpers (shared-storage probe, power off,
volume disconnect, ``<dir>_resize`` rename, rollback), but the copy step
follows transfer_plan: qcow2 root overlays are pushed as they are to the
destination's rsync daemon, raw disks whole and sparse, ephemeral overlays
as standalone qcow2 copies, swap not at all; vTPM state goes as Nova sends
it (``<dir>/swtpm``). A large overlay is pre-copied while the guest still
runs, and after power-off only what the guest wrote since
(resize.precopy, resize.redirect).
On the same host or shared storage the copy is local and every file is
copied as it is. Everything that can be refused is refused before the
guest is touched; any failure later puts ``<dir>_resize`` back and
removes what reached the destination, then re-raises: the guest stays
bootable on the source. Every transfer is registered with Nova's job
tracker, so deleting the instance stops it.
"""

import os
import tempfile

from nova import block_device
from nova import exception
from nova.virt import driver as virt_driver
from nova.virt import images
from nova.virt.libvirt import utils as libvirt_utils
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from oslo_utils import fileutils
from oslo_utils import units

from novaext import exception as novaext_exception
from novaext import progress as novaext_progress
from novaext import space
from novaext.resize import capabilities
from novaext.resize import plan as transfer_plan
from novaext.resize import precopy
from novaext.resize import redirect
from novaext.resize import shutdown as resize_shutdown
from novaext.resize.plan import Action
from novaext.rsync import client as rsync_client

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

# The images_type values whose disks are files novaext knows how to move;
# the others (rbd, lvm, ploop) go to Nova's own migrate_disk_and_power_off.
MOVED_IMAGES_TYPES = ('default', 'qcow2', 'raw', 'flat')


def moves_images_type(images_type):
    """True when novaext (not Nova) moves disks of ``images_type``."""
    return images_type in MOVED_IMAGES_TYPES


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


def _plan_or_refuse(disk_info):
    try:
        return transfer_plan.plan(disk_info)
    except novaext_exception.UnmovableDisk as e:
        raise exception.InstanceFaultRollback(e) from e


def _copy_local(src, dst, sparse):
    """Same host or shared instances_path: ``<dir>_resize`` must stay
    intact for a revert, so the disk is copied, as Nova does; on a
    copy-on-write file system (XFS, btrfs) the copy shares the blocks."""
    processutils.execute(
        'cp', '--reflink=auto',
        '--sparse=always' if sparse else '--sparse=auto', src, dst)


def remove_partial_copy(internals, dest, inst_base, instance):
    """Remove what reached ``dest`` of the move of ``instance``; a failure
    is logged and left (the orphan sweep of ``dest`` removes it later)."""
    try:
        internals.remotefs.remove_dir(dest, inst_base)
    except Exception as e:
        LOG.warning('Could not remove what reached %(dest)s of instance '
                    '%(inst)s: %(err)s',
                    {'inst': instance.uuid, 'dest': dest, 'err': e},
                    instance=instance)


def _is_running(internals, instance):
    try:
        return internals.host.get_guest(instance).is_active()
    except exception.InstanceNotFound:
        return False


def _precopy_or_refuse(internals, context, instance, mover, planned):
    """Pass 1 of each overlay the pre-copy policy wants, while the guest
    runs and writes beside it (resize.redirect).

    :returns: the RedirectedWrites, or None when nothing is pre-copied (a
        guest that is not running has no downtime to shorten: its disks
        only move once; a destination that does not advertise the
        pre-copy, resize.capabilities, gets them after power-off)
    :raises: InstanceFaultRollback, the guest running on its disks
    """
    policy = precopy.PrecopyPolicy.from_conf(CONF)
    wanted = [disk.path for disk in planned if policy.wants(disk)]
    if not wanted or not _is_running(internals, instance):
        return None
    if not capabilities.destination_has(internals, context, instance,
                                        capabilities.RESIZE_PRECOPY):
        return None
    reserve = space.Reserve(
        os.path.dirname(wanted[0]),
        CONF.novaext.resize_precopy_min_free_mib * units.Mi,
        'The pre-copy', '[novaext]resize_precopy_min_free_mib')
    short = reserve.shortage_to_start()
    if short is not None:
        LOG.warning('No pre-copy: %s. The disks move after power-off.',
                    short, instance=instance)
        return None
    mover.reserve = reserve
    try:
        redirected = redirect.RedirectedWrites.start(
            internals, instance, internals.host.get_guest(instance), wanted)
    except Exception as e:
        raise exception.InstanceFaultRollback(exception.ResizeError(
            reason=f'cannot pre-copy: {e}')) from e
    mover.redirected = redirected
    try:
        for path in wanted:
            mover.precopy(os.path.basename(path))
    except Exception as e:
        redirected.merge_live()
        if isinstance(e, (rsync_client.RsyncTransferError,
                          space.NotEnoughSpace)):
            raise exception.InstanceFaultRollback(
                exception.ResizeError(reason=str(e))) from e
        raise
    return redirected


def _start_catch_up(redirected, mover, instance):
    """Freeze what the guest wrote during pass 1 (RedirectedWrites
    .catch_up) and return the push of it, to run while the guest shuts
    down; None when it cannot be frozen (it then moves after power-off,
    as the last writes do)."""
    try:
        mover.catch_up_pending.update(redirected.catch_up())
    except Exception as e:
        LOG.warning('No catch-up pass (%s): what the guest wrote during '
                    'the pre-copy moves after power-off', e,
                    instance=instance)
        return None
    return mover.push_caught_up


def _power_off(internals, instance, redirected, mover, timeout,
               retry_interval):
    """Shut the guest down for the move, and merge what it wrote during
    the pre-copy into its disks. A clean shutdown (``timeout``) overlaps
    the catch-up pass. A failed power-off leaves the guest's writes
    merged the way its state allows."""
    while_stopping = None
    if redirected is not None and timeout:
        while_stopping = _start_catch_up(redirected, mover, instance)
    try:
        resize_shutdown.power_off_for_move(internals, instance, timeout,
                                           retry_interval,
                                           while_stopping=while_stopping)
    except Exception:
        with excutils.save_and_reraise_exception():
            if redirected is not None:
                if _is_running(internals, instance):
                    redirected.merge_live()
                else:
                    redirected.merge_after_power_off()
    if redirected is not None:
        redirected.merge_after_power_off()


class _Mover:
    """Moves one instance's files from ``<dir>_resize`` to the
    destination's ``<dir>``: a local copy on shared storage, else pushes
    to the destination's rsync daemon, each registered with Nova's job
    tracker."""

    def __init__(self, internals, context, instance, client, inst_base,
                 inst_base_resize):
        self.internals = internals
        self.context = context
        self.instance = instance
        self.client = client
        self.inst_base = inst_base
        self.inst_base_resize = inst_base_resize
        self.dir_name = os.path.basename(inst_base)
        self.sent = 0
        self.precopy_sent = 0
        self.catch_up_sent = 0
        self.files = 0
        self.precopied = set()
        self.redirected = None
        # space.Reserve of the source while pass 1 runs
        self.reserve = None
        # disk name -> its frozen writes file, until the catch-up pass
        # has pushed it
        self.catch_up_pending = {}

    def _on_execute(self, process):
        self.internals.job_tracker.add_job(self.instance, process.pid)

    def _on_completion(self, process):
        self.internals.job_tracker.remove_job(self.instance, process.pid)

    def move(self, name, action):
        src = os.path.join(self.inst_base_resize, name)
        sparse = action is not Action.PUSH_OVERLAY
        self.files += 1
        if self.client is None:
            # Same base files here: every disk is copied as it is.
            _copy_local(src, os.path.join(self.inst_base, name), sparse)
        elif action is Action.PUSH_STANDALONE:
            with tempfile.TemporaryDirectory(
                    dir=self.inst_base_resize,
                    prefix='.novaext-standalone-') as scratch:
                standalone = os.path.join(scratch, name)
                images.convert_image(src, standalone, 'qcow2', 'qcow2')
                self.sent += self._push(standalone, name, True,
                                        precopy.SINGLE)
        elif name in self.precopied:
            if name in self.catch_up_pending:
                # Not pushed while the guest shut down: now, before the
                # last writes that name it as their backing file.
                self.sent += self._push(
                    os.path.join(self.inst_base_resize,
                                 self.catch_up_pending.pop(name)),
                    name, False, precopy.CATCHUP,
                    remote_name=redirect.caught_up_name(name))
            # What the guest wrote last, over the layer pushed before.
            writes = os.path.join(self.inst_base_resize,
                                  self.redirected.last_writes_name(name))
            self.sent += self._push(writes, name, sparse, precopy.FINAL)
        else:
            self.sent += self._push(src, name, sparse, precopy.SINGLE)

    def precopy(self, name):
        """Pass 1 of the pre-copy of overlay ``name``, read from the
        running guest's ``<dir>`` (which no longer writes to it) and
        pushed as ``<name>.novaext-precopy``; ``move`` then sends the
        writes file as ``name``."""
        self.precopy_sent += self._push(
            os.path.join(self.inst_base, name), name, False,
            precopy.PRECOPY, remote_name=redirect.precopied_name(name),
            reserve=self.reserve)
        self.precopied.add(name)

    def push_caught_up(self):
        """The catch-up pass, while the guest shuts down: each frozen
        writes file of pass 1, from the instance's directory, as
        ``caught_up_name``. A push that fails leaves the rest to ``move``
        after power-off, where a failure fails the resize."""
        for name, writes in sorted(self.catch_up_pending.items()):
            try:
                self.catch_up_sent += self._push(
                    os.path.join(self.inst_base, writes), name, False,
                    precopy.CATCHUP,
                    remote_name=redirect.caught_up_name(name))
            except Exception as e:
                LOG.warning('Catch-up pass of %(disk)s failed (%(err)s); '
                            'it moves after power-off',
                            {'disk': name, 'err': e},
                            instance=self.instance)
                return
            del self.catch_up_pending[name]

    def _push(self, src, name, sparse, push_pass, remote_name=None,
              reserve=None):
        """Push ``src`` as ``remote_name`` (default ``name``); with a
        space.Reserve, stopped by NotEnoughSpace once it is not kept."""
        with novaext_progress.Progress(
                self.context, self.instance, 'resize.push',
                {'target': self.client.target, 'file': name,
                 'pass': push_pass}) as progress:
            on_progress = progress.phase(
                precopy.PHASE_OF_PASS[push_pass]).update
            if reserve is not None:
                on_progress = reserve.watching(on_progress)
            pushed = self.client.push(
                src, self.dir_name, remote_name or name, sparse=sparse,
                on_progress=on_progress,
                on_execute=self._on_execute,
                on_completion=self._on_completion)
            progress.end(bytes_sent=pushed)
        return pushed

    def move_vtpm_state(self):
        """Nova's save_and_migrate_vtpm_dir: the swtpm state moves into
        ``<dir>_resize/swtpm`` (kept there for a revert) and is copied to
        the destination's ``<dir>/swtpm``, where Nova's finish_migration
        restores it. Off shared storage Nova's copy would go over ssh, so
        it copies into a scratch directory here and the tree is pushed."""
        if self.client is None:
            libvirt_utils.save_and_migrate_vtpm_dir(
                self.instance.uuid, self.inst_base_resize, self.inst_base,
                None, self._on_execute, self._on_completion)
            return
        with tempfile.TemporaryDirectory() as scratch:
            libvirt_utils.save_and_migrate_vtpm_dir(
                self.instance.uuid, self.inst_base_resize, scratch, None)
        swtpm = os.path.join(self.inst_base_resize, 'swtpm')
        if os.path.isdir(swtpm):
            self.files += 1
            self.sent += self.client.push_tree(
                swtpm, self.dir_name, 'swtpm',
                on_execute=self._on_execute,
                on_completion=self._on_completion)


def migrate_disk_and_power_off(internals, context, instance, dest, flavor,
                               network_info, block_device_info=None,
                               timeout=0, retry_interval=0):
    """ComputeDriver.migrate_disk_and_power_off for ExtLibvirtDriver.

    :returns: Nova's disk info JSON for finish_migration
    :raises: InstanceFaultRollback before the guest is touched (resize
        down, destination unreachable); anything raised during the copy,
        after rolling back
    """
    booted_from_volume = internals.is_booted_from_volume(block_device_info)
    _refuse_resize_down(instance, flavor, block_device_info,
                        booted_from_volume)
    inst_base = libvirt_utils.get_instance_path(instance)
    inst_base_resize = inst_base + '_resize'
    shared = internals.is_path_shared_with(dest, inst_base)
    client = None
    if not shared:
        client = rsync_client.RsyncDaemonClient.from_conf(CONF, dest)
        try:
            client.make_dir(os.path.basename(inst_base))
        except (rsync_client.RsyncTransferError,
                rsync_client.InvalidRemotePath) as e:
            raise exception.InstanceFaultRollback(
                exception.ResizeError(reason=str(e))) from e
    mover = _Mover(internals, context, instance, client, inst_base,
                   inst_base_resize)
    # Read from the running guest's definition (Nova reads it after power
    # off; it is the same): a disk this plan cannot move is refused, and
    # a failed pre-copy fails the resize, while the guest still runs.
    redirected = None
    try:
        planned = _plan_or_refuse(
            internals.instance_disk_info(instance, block_device_info))
        if not shared:
            redirected = _precopy_or_refuse(internals, context, instance,
                                            mover, planned)
        _power_off(internals, instance, redirected, mover, timeout,
                   retry_interval)
    except Exception:
        with excutils.save_and_reraise_exception():
            if not shared:
                remove_partial_copy(internals, dest, inst_base, instance)

    internals.unplug_vifs(instance, network_info)
    for vol in virt_driver.block_device_info_get_mapping(block_device_info):
        internals.disconnect_volume(context, vol['connection_info'], instance)
    disk_info = internals.instance_disk_info(instance, block_device_info)

    try:
        internals.remove_resize_dir(inst_base_resize)
        os.rename(inst_base, inst_base_resize)
        if shared:
            fileutils.ensure_tree(inst_base)
        for disk in planned:
            if disk.action is not Action.RECREATE_ON_DESTINATION:
                mover.move(os.path.basename(disk.path), disk.action)
        if os.path.exists(os.path.join(inst_base_resize, 'disk.info')):
            # Nova's: so the destination does not re-inspect formats.
            mover.move('disk.info', Action.PUSH_WHOLE_SPARSE)
        mover.move_vtpm_state()
        LOG.info('Moved %(n)d file(s) of %(inst)s to %(dest)s, %(sent)d '
                 'bytes sent after power-off, %(pre)d before (pre-copy), '
                 '%(catch)d while it shut down (catch-up)',
                 {'n': mover.files, 'inst': instance.uuid, 'dest': dest,
                  'sent': mover.sent, 'pre': mover.precopy_sent,
                  'catch': mover.catch_up_sent}, instance=instance)
    except Exception:
        with excutils.save_and_reraise_exception():
            internals.roll_back_move(dest, inst_base, inst_base_resize, shared)
            if not shared and not os.path.exists(inst_base_resize) and \
                    not os.path.exists(inst_base):
                # Deleted mid-move (Nova's delete stopped the push through
                # the job tracker): nothing to roll back to, and Nova's
                # cleanup leaves the partial copy on the destination.
                remove_partial_copy(internals, dest, inst_base, instance)
    finally:
        if redirected is not None:
            # Merged into the disks after power-off: only sent.
            redirected.remove(inst_base)
            redirected.remove(inst_base_resize)
    return jsonutils.dumps(disk_info)
