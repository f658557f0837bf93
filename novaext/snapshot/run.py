"""ExtLibvirtDriver.snapshot: decide, read the disk, upload.

The steps, each in its own module:

1. decide how the disk is read and what is uploaded (plan), the base of
   a delta (base), whether to quiesce (quiesce);
2. task state IMAGE_PENDING_UPLOAD; read the disk, live (live: block
   copy into an overlay, guest never paused) or cold (cold: managedSave
   and back, or a stopped guest), and turn it into the upload file
   (extract);
3. task state IMAGE_UPLOADING; label the base image (delta) and stream
   the file with Nova's metadata (upload).

``run()`` returns a ``SnapshotOutcome``; the same facts end the
``novaext.snapshot.end`` notification (novaext.progress).

Every failure leaves the guest in the state it had (the live copy never
pivots and restores the domain definition; the cold path starts a saved
guest again), removes the temporary files and is raised to the compute
manager, which deletes the half-made image. The instance's disk is only
ever read.
"""

import dataclasses
import os

from nova import exception
from nova import utils
from nova.compute import task_states
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import utils as libvirt_utils
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils
from oslo_utils import units
from oslo_utils import uuidutils

from novaext import progress as novaext_progress
from novaext import space
from novaext.snapshot import base as snapshot_base
from novaext.snapshot import cold as snapshot_cold
from novaext.snapshot import extract as snapshot_extract
from novaext.snapshot import live as snapshot_live
from novaext.snapshot import plan as snapshot_plan
from novaext.snapshot import quiesce as snapshot_quiesce
from novaext.snapshot import recovery as snapshot_recovery
from novaext.snapshot import upload as snapshot_upload
from novaext.snapshot.plan import Method
from novaext.snapshot.plan import Upload

CONF = cfg.CONF
LOG = logging.getLogger(__name__)
# Backing layers followed when measuring a disk (a delta-booted disk has
# three: its overlay, the delta, the delta's base).
MAX_CHAIN = 8


@dataclasses.dataclass(frozen=True)
class SnapshotOutcome:
    """What one snapshot did: how the disk was read, what was uploaded
    (full or delta) and how many bytes went to the image service."""

    method: Method
    upload: Upload
    bytes_uploaded: int


class SnapshotRun:
    """One snapshot of one instance; ``run()`` does it all."""

    def __init__(self, internals, context, instance, image_id,
                 update_task_state):
        self.internals = internals
        self.context = context
        self.instance = instance
        self.image_id = image_id
        self.update_task_state = update_task_state
        self.image_api = internals.image_api
        # set by run()
        self.method = None
        self.upload_kind = None
        self.progress = None
        self.reserve = None

    # -- decisions -------------------------------------------------------
    def _guest(self):
        try:
            return self.internals.host.get_guest(self.instance)
        except exception.InstanceNotFound:
            raise exception.InstanceNotRunning(
                instance_id=self.instance.uuid) from None

    def _mode(self, snapshot_image):
        instance_image_props = utils.get_image_from_system_metadata(
            self.instance.system_metadata).get('properties', {})
        return snapshot_plan.requested_mode(
            CONF.novaext.snapshot_mode,
            snapshot_image.get('properties'), instance_image_props)

    def _live_possible(self, source_type):
        return snapshot_plan.live_possible(
            source_type, CONF.libvirt.virt_type,
            CONF.workarounds.disable_libvirt_livesnapshot,
            CONF.ephemeral_storage_encryption.enabled)

    @staticmethod
    def _root_disk(guest):
        """(path, format, type) of the guest's root disk, as Nova reads it."""
        disk_path, source_format = libvirt_utils.find_disk(guest)
        source_type = (libvirt_utils.get_disk_type_from_path(disk_path) or
                       source_format)
        return disk_path, source_format, source_type

    def is_novaext_snapshot(self):
        """False for root disks Nova snapshots itself (rbd, lvm, ploop)."""
        return snapshot_plan.novaext_takes(self._root_disk(self._guest())[2])

    def run(self):
        """Take the snapshot; return its SnapshotOutcome."""
        guest = self._guest()
        snapshot_image = self.image_api.get(self.context, self.image_id)
        disk_path, source_format, source_type = self._root_disk(guest)
        original_state = guest.get_power_state(self.internals.host)
        self.method = snapshot_plan.method_for(
            snapshot_plan.GuestState.from_power_state(original_state),
            self._live_possible(source_type))

        base = None
        mode = self._mode(snapshot_image)
        if mode == 'delta' and source_format == 'qcow2':
            backing = libvirt_utils.get_disk_backing_file(
                disk_path, basename=False, format='qcow2')
            base = snapshot_base.find(self.context, self.image_api,
                                      self.instance, backing)
            # Labelled first, so that no delta is ever uploaded whose base
            # cannot be found by others; refused -> full snapshot.
            if base is not None and not snapshot_upload.try_label_base(
                    self.image_api, self.context, base, self.instance):
                base = None
        self.upload_kind = snapshot_plan.upload_for(mode, base is not None)
        if self.upload_kind is Upload.DELTA:
            image_format = 'qcow2'
        else:
            base = None
            image_format = (CONF.libvirt.snapshot_image_format or
                            source_type)
            if image_format in ('lvm', 'rbd'):
                image_format = 'raw'
        metadata, kept = snapshot_upload.snapshot_metadata(
            self.internals, self.instance, snapshot_image, image_format, base)

        image_meta = self.instance.image_meta
        quiescer = snapshot_quiesce.Quiescer(
            self.internals, self.context, self.instance, image_meta)
        if self.method is Method.LIVE:
            quiescer.check()

        with novaext_progress.Progress(
                self.context, self.instance, 'snapshot',
                {'image_id': self.image_id}) as self.progress:
            outcome = SnapshotOutcome(
                self.method, self.upload_kind,
                self._take(guest, disk_path, source_format, source_type,
                           original_state, image_format, base, metadata,
                           kept, quiescer))
            self.progress.end(method=outcome.method.name.lower(),
                              upload=outcome.upload.value,
                              bytes_uploaded=outcome.bytes_uploaded)
        return outcome

    def _take(self, guest, disk_path, source_format, source_type,
              original_state, image_format, base, metadata, kept, quiescer):
        """Read the disk and upload it; return the bytes uploaded."""
        LOG.info('Beginning %(method)s snapshot (%(kind)s upload, '
                 '%(format)s)', {'method': self.method.name.lower(),
                                 'kind': self.upload_kind.value,
                                 'format': image_format},
                 instance=self.instance)
        snapshot_dir = CONF.libvirt.snapshots_directory
        fileutils.ensure_tree(snapshot_dir)
        self.reserve = self._room_in(snapshot_dir, disk_path, source_format)
        self.update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        with utils.tempdir(
                dir=snapshot_dir,
                prefix=snapshot_recovery.scratch_prefix(CONF.host)) as tmpdir:
            out = os.path.join(tmpdir, uuidutils.generate_uuid(dashed=False))
            try:
                self._read_disk(guest, disk_path, source_format,
                                source_type, original_state, tmpdir, out,
                                image_format, base, quiescer)
            except libvirt_driver.libvirt.libvirtError as e:
                # (Nova's libvirt module: real, or fake in Nova's fixtures)
                if e.get_error_code() == \
                        libvirt_driver.libvirt.VIR_ERR_NO_DOMAIN:
                    raise exception.InstanceNotFound(
                        instance_id=self.instance.uuid) from e
                raise
            LOG.info('Snapshot extracted, beginning image upload',
                     instance=self.instance)
            self.update_task_state(
                task_state=task_states.IMAGE_UPLOADING,
                expected_state=task_states.IMAGE_PENDING_UPLOAD)
            uploaded = snapshot_upload.upload(
                self.image_api, self.context, self.image_id, metadata, out,
                self.progress.phase('upload'), kept=kept)
        LOG.info('Snapshot image upload complete (%(bytes)d bytes)',
                 {'bytes': uploaded}, instance=self.instance)
        return uploaded

    def _room_in(self, snapshot_dir, disk_path, source_format):
        """The reserve of free space in ``snapshot_dir``: raises
        NotEnoughSpace, before the guest is touched, when there is less
        than it plus what this snapshot writes there (plan.scratch_bytes,
        from the layers' allocated bytes); returns it, for the live copy
        to watch."""
        reserve = space.Reserve(
            snapshot_dir, CONF.novaext.snapshot_min_free_mib * units.Mi,
            'The snapshot', '[novaext]snapshot_min_free_mib')
        if not reserve.start:
            return reserve
        chain, path = [], disk_path
        while path and len(chain) < MAX_CHAIN:
            chain.append(space.allocated_bytes(path) or 0)
            try:
                path = libvirt_utils.get_disk_backing_file(
                    path, basename=False,
                    format=source_format if len(chain) == 1 else None)
            except (exception.DiskNotFound, exception.InvalidDiskInfo,
                    processutils.ProcessExecutionError):
                # (An estimate: the read itself reports an unreadable disk.)
                break
        writes = snapshot_plan.scratch_bytes(self.method, self.upload_kind,
                                             chain[0], sum(chain))
        shortage = reserve.shortage_to_start(writes)
        if shortage is not None:
            raise shortage
        return reserve

    # -- reading the disk --------------------------------------------------
    def _extract(self, source, source_format, out, image_format, base,
                 root_disk=None):
        progress = self.progress.phase('extract')
        if base is not None:
            snapshot_extract.extract_delta(source, base.path, out, progress)
        elif root_disk is not None:
            snapshot_extract.extract_backend_disk(root_disk, out,
                                                  image_format, progress)
        else:
            snapshot_extract.extract_full(source, source_format, out,
                                          image_format, progress)

    def _read_disk(self, guest, disk_path, source_format, source_type,
                   original_state, tmpdir, out, image_format, base,
                   quiescer):
        if self.method is Method.LIVE:
            # libvirt (QEMU) writes the copy: it needs o+x on the dir.
            os.chmod(tmpdir, 0o701)
            delta = out + '.delta'
            snapshot_live.LiveCopy(
                self.internals, self.context, self.instance, guest, disk_path,
                source_format, delta,
                CONF.novaext.snapshot_block_job_timeout,
                self.progress.phase('block-copy'),
                check_space=self.reserve.check_kept).run(quiescer)
            try:
                self._extract(delta, 'qcow2', out, image_format, base)
            finally:
                fileutils.delete_if_exists(delta)
            return
        root_disk = self.internals.image_backend.by_libvirt_path(
            self.instance, disk_path, image_type=source_type)
        with snapshot_cold.SavedGuest(self.internals, self.context,
                                      self.instance, guest, self.method,
                                      original_state, tmpdir):
            self._extract(disk_path, source_format, out, image_format, base,
                          root_disk)
