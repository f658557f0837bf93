"""During a pre-copy the guest writes beside the disks being pushed.

Just before pass 1, ``RedirectedWrites.start`` takes a disk-only external
snapshot of the running guest (no libvirt metadata; one atomic step for
every pre-copied disk): each such disk ``<d>`` becomes the read-only
backing file of a new qcow2 ``<d>.novaext-writes`` (same cluster size,
the backing file recorded by its relative name, so the pair survives the
``<dir>_resize`` rename), which takes every write from then on. Pass 1
so pushes a file nothing changes, and all that must move after power-off
is the writes file: the size of what the guest wrote during pass 1 and
its shutdown, whatever the size of the overlay.

It then ends one of two ways:

- ``merge_live`` (the resize fails while the guest runs): an active
  commit of each writes file into its disk, and the guest pivots back to
  its disks as if nothing had happened;
- ``merge_after_power_off``: each writes file is committed into its disk
  here (the source is whole again, for a revert or a failed push), and
  then names ``<d>.novaext-precopy`` as its backing file: the name pass 1
  gave the disk on the destination, where resize.dest commits the writes
  the same way. A destination that does not know this refuses the
  overlay (its backing file is no image base) rather than booting
  without the writes.

The snapshot rewrites the domain's persistent definition; the one Nova
wrote is saved before and written back after either ending.
"""

import os

from nova import exception
from nova.virt.images import qemu_img_info
from nova.virt.libvirt import config as vconfig
from oslo_log import log as logging

from novaext import nova_internals
from novaext import qemu_img
from novaext.snapshot import live

LOG = logging.getLogger(__name__)

WRITES_SUFFIX = '.novaext-writes'
PRECOPIED_SUFFIX = '.novaext-precopy'


def writes_name(disk_name):
    """The file taking the writes to ``disk_name`` during a pre-copy."""
    return disk_name + WRITES_SUFFIX


def precopied_name(disk_name):
    """The name pass 1 gives ``disk_name`` on the destination."""
    return disk_name + PRECOPIED_SUFFIX


class RedirectFailed(exception.NovaException):
    msg_fmt = ('Writes of %(instance)s to %(disks)s could not be merged '
               'back (%(reason)s): the data is in the disk together with '
               'its %(suffix)s file, which must not be deleted')


class _Quiet:
    """A progress sink for BlockJobWaiter: the merge is not reported."""

    def update(self, *args, **kwargs):
        pass


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class RedirectedWrites:
    """The writes of ``guest`` to ``disks`` (target dev -> disk path),
    redirected to their writes files; see the module docstring."""

    def __init__(self, nova, instance, guest, disks, definition):
        self.nova = nova
        self.instance = instance
        self.guest = guest
        self.disks = disks
        self._definition = definition

    @classmethod
    def start(cls, nova, instance, guest, paths):
        """Redirect the running ``guest``'s writes to the disks at
        ``paths`` (files of its definition).

        :raises: ValueError when a path is not a file disk of the guest;
            libvirt's or qemu-img's error when the snapshot cannot be
            taken (nothing is left behind)
        """
        all_disks = guest.get_all_disks()
        devs = {d.source_path: d.target_dev for d in all_disks
                if d.source_type == 'file'}
        missing = [p for p in paths if p not in devs]
        if missing:
            raise ValueError(f'not file disks of the guest: {missing}')
        disks = {devs[p]: p for p in paths}
        conf = vconfig.LibvirtConfigGuestSnapshot()
        conf.name = 'novaext-precopy'
        for dev in all_disks:
            snap = vconfig.LibvirtConfigGuestSnapshotDisk()
            snap.name = dev.target_dev
            if dev.target_dev in disks:
                snap.snapshot = 'external'
                snap.source_type = 'file'
                snap.source_path = _writes_path(disks[dev.target_dev])
            else:
                snap.snapshot = 'no'
            conf.add_disk(snap)

        definition = live.KeptDefinition(nova, guest)
        definition.save()
        created = []
        try:
            for path in disks.values():
                cluster = qemu_img_info(path, format='qcow2').cluster_size
                qemu_img.create_overlay(_writes_path(path),
                                        os.path.basename(path), cluster)
                created.append(_writes_path(path))
            guest.snapshot(conf, no_metadata=True, disk_only=True,
                           reuse_ext=True)
        except Exception:
            for path in created:
                _unlink_quietly(path)
            definition.restore()
            raise
        LOG.info('Writes to %(disks)s now go to their %(suffix)s files '
                 'for the pre-copy', {'disks': sorted(disks.values()),
                                      'suffix': WRITES_SUFFIX},
                 instance=instance)
        return cls(nova, instance, guest, disks, definition)

    def _failed(self, reason):
        return RedirectFailed(instance=self.instance.uuid,
                              disks=sorted(self.disks.values()),
                              reason=reason, suffix=WRITES_SUFFIX)

    def merge_live(self):
        """Commit each writes file into its disk while the guest runs and
        pivot the guest back to its disks; remove the writes files.

        :raises: RedirectFailed (the guest keeps running on the writes
            files, whose data is not lost)
        """
        try:
            for dev, path in self.disks.items():
                block = self.guest.get_block_device(dev)
                nova_internals.start_active_commit(
                    self.guest, dev, path, _writes_path(path))
                live.BlockJobWaiter(block, path, 0, _Quiet()).wait()
                # Synchronous: returns once the guest is on its disk.
                block.abort_job(pivot=True)
        except Exception as e:
            raise self._failed(str(e)) from e
        self._definition.restore()
        for path in self.disks.values():
            _unlink_quietly(_writes_path(path))

    def merge_after_power_off(self):
        """Commit each writes file into its disk (the guest is off), put
        Nova's definition back, and point each writes file at the name
        its disk has on the destination.

        :raises: RedirectFailed (the definition still names the writes
            files, so the guest boots with its data)
        """
        try:
            for path in self.disks.values():
                qemu_img.commit(_writes_path(path))
        except Exception as e:
            raise self._failed(str(e)) from e
        self._definition.restore()
        for path in self.disks.values():
            qemu_img.rebase_unsafe(
                _writes_path(path), precopied_name(os.path.basename(path)),
                'qcow2')

    def remove(self, directory):
        """Remove the writes files from ``directory`` (the instance's, or
        ``<dir>_resize`` after the rename); only after
        merge_after_power_off, when the disks hold the writes."""
        for path in self.disks.values():
            _unlink_quietly(os.path.join(
                directory, writes_name(os.path.basename(path))))


def _writes_path(path):
    return path + WRITES_SUFFIX

