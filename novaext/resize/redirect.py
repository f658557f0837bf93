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

Before power-off, ``catch_up`` may redirect the writes once more, to
``<d>.novaext-last-writes`` over the writes file: the writes of pass 1
then no longer change and are pushed while the guest shuts down (as
``<d>.novaext-catchup``), and after power-off only what the guest wrote
during its shutdown is left to send. The last writes then name
``<d>.novaext-catchup`` as their backing file, and the destination
commits both, in order.

The snapshots rewrite the domain's persistent definition; the one Nova
wrote is saved before and written back after either ending.
"""

import os

from nova.virt.images import qemu_img_info
from nova.virt.libvirt import config as vconfig
from oslo_log import log as logging

from novaext import nova_internals
from novaext import qemu_img
from novaext.exception import RedirectFailed
from novaext.snapshot import live

LOG = logging.getLogger(__name__)

WRITES_SUFFIX = '.novaext-writes'
LAST_WRITES_SUFFIX = '.novaext-last-writes'
PRECOPIED_SUFFIX = '.novaext-precopy'
CAUGHT_UP_SUFFIX = '.novaext-catchup'


def writes_name(disk_name):
    """The file taking the writes to ``disk_name`` during a pre-copy."""
    return disk_name + WRITES_SUFFIX


def precopied_name(disk_name):
    """The name pass 1 gives ``disk_name`` on the destination."""
    return disk_name + PRECOPIED_SUFFIX


def caught_up_name(disk_name):
    """The name the catch-up pass gives the writes of pass 1 to
    ``disk_name`` on the destination."""
    return disk_name + CAUGHT_UP_SUFFIX


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class RedirectedWrites:
    """The writes of ``guest`` to ``disks`` (target dev -> disk path),
    redirected to their writes files; see the module docstring.
    ``all_devs``: the target devs of all the guest's disks."""

    def __init__(self, internals, instance, disks, all_devs, definition):
        self.internals = internals
        self.instance = instance
        self.disks = disks
        self.all_devs = all_devs
        self._definition = definition
        # The files each disk's writes went to, oldest first; the guest
        # writes to the last.
        self._layers = [WRITES_SUFFIX]

    @property
    def guest(self):
        """The guest as libvirt sees it now: a pre-copy lasts long enough
        for libvirtd to be restarted, and a Guest kept from before holds
        a dead connection (Nova's Host reconnects)."""
        return self.internals.host.get_guest(self.instance)

    @classmethod
    def start(cls, internals, instance, guest, paths):
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
        all_devs = [d.target_dev for d in all_disks]
        definition = live.KeptDefinition(
            internals, guest,
            current_guest=lambda: internals.host.get_guest(instance))
        definition.save()
        try:
            _snapshot(guest, instance, disks, all_devs, '', WRITES_SUFFIX)
        except Exception:
            definition.restore()
            raise
        return cls(internals, instance, disks, all_devs, definition)

    def catch_up(self):
        """Redirect the running guest's writes once more (module
        docstring), so that the writes files stop changing.

        :returns: {disk name: name of its writes file}, the files to push
            as caught_up_name while the guest shuts down
        :raises: libvirt's or qemu-img's error (nothing changed)
        """
        if len(self._layers) > 1:
            raise RuntimeError('the writes were caught up already')
        _snapshot(self.guest, self.instance, self.disks, self.all_devs,
                  WRITES_SUFFIX, LAST_WRITES_SUFFIX)
        self._layers.append(LAST_WRITES_SUFFIX)
        return {os.path.basename(p): writes_name(os.path.basename(p))
                for p in self.disks.values()}

    def last_writes_name(self, disk_name):
        """The file holding what the guest wrote to ``disk_name`` last:
        what is pushed as the disk after power-off."""
        return disk_name + self._layers[-1]

    def _failed(self, reason):
        return RedirectFailed(instance=self.instance.uuid,
                              disks=sorted(self.disks.values()),
                              reason=reason, suffix=WRITES_SUFFIX)

    def merge_live(self):
        """Commit the writes files into their disks while the guest runs
        and pivot the guest back to its disks; remove the writes files.

        :raises: RedirectFailed (the guest keeps running on the writes
            files, whose data is not lost)
        """
        try:
            guest = self.guest
            for dev, path in self.disks.items():
                block = guest.get_block_device(dev)
                nova_internals.start_active_commit(
                    guest, dev, path, path + self._layers[-1])
                live.BlockJobWaiter(block, path, 0, None).wait()
                # Synchronous: returns once the guest is on its disk.
                block.abort_job(pivot=True)
        except Exception as e:
            raise self._failed(str(e)) from e
        self._definition.restore()
        self.remove(None)

    def merge_after_power_off(self):
        """Commit the writes files into their disks (the guest is off),
        put Nova's definition back, and point each disk's last writes at
        the name of the layer below them on the destination.

        :raises: RedirectFailed (the definition still names the writes
            files, so the guest boots with its data)
        """
        caught_up = len(self._layers) > 1
        try:
            for path in self.disks.values():
                qemu_img.commit(path + self._layers[-1],
                                base=path if caught_up else None)
        except Exception as e:
            raise self._failed(str(e)) from e
        self._definition.restore()
        below = caught_up_name if caught_up else precopied_name
        for path in self.disks.values():
            qemu_img.rebase_unsafe(path + self._layers[-1],
                                   below(os.path.basename(path)), 'qcow2')

    def remove(self, directory):
        """Remove the writes files from ``directory`` (None: the disks'
        own, or ``<dir>_resize`` after the rename); only once the disks
        hold the writes."""
        for path in self.disks.values():
            if directory is not None:
                path = os.path.join(directory, os.path.basename(path))
            for suffix in self._layers:
                _unlink_quietly(path + suffix)


def _snapshot(guest, instance, disks, devs, below, suffix):
    """One disk-only snapshot of ``guest``: the writes to each of
    ``disks`` (target dev -> path) go to ``<path><suffix>``, a new qcow2
    over ``<path><below>``; ``devs``: all the guest's target devs.
    Nothing is left behind when it fails."""
    conf = vconfig.LibvirtConfigGuestSnapshot()
    conf.name = 'novaext-precopy'
    for dev in devs:
        snap = vconfig.LibvirtConfigGuestSnapshotDisk()
        snap.name = dev
        if dev in disks:
            snap.snapshot = 'external'
            snap.source_type = 'file'
            snap.source_path = disks[dev] + suffix
        else:
            snap.snapshot = 'no'
        conf.add_disk(snap)
    created = []
    try:
        for path in disks.values():
            cluster = qemu_img_info(path + below,
                                    format='qcow2').cluster_size
            qemu_img.create_overlay(
                path + suffix, os.path.basename(path + below), cluster)
            created.append(path + suffix)
        guest.snapshot(conf, no_metadata=True, disk_only=True,
                       reuse_ext=True)
    except Exception:
        for path in created:
            _unlink_quietly(path)
        raise
    LOG.info('Writes to %(disks)s now go to their %(suffix)s files for '
             'the pre-copy', {'disks': sorted(disks.values()),
                              'suffix': suffix}, instance=instance)
