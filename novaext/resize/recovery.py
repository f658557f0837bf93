"""What an interrupted resize left on the source, put right when Nova
hands the instance back.

nova-compute killed (or the host losing power) while a resize moves the
disks leaves the instance in RESIZE_MIGRATING; when nova-compute starts
again Nova's ``_init_instance`` calls the driver's
``finish_revert_migration``. Nova's own revert knows its own window (the
``<dir>_resize`` rename) but not the pre-copy's (resize.redirect): the
guest may still be running on ``<disk>.novaext-writes`` (and
``<disk>.novaext-last-writes``), or be stopped with its last writes only
in those files, and the definition names them. ``RedirectLeftovers``
finds those layers from the files alone and puts every write back into
``<disk>``, idempotently:

- a running guest: one active commit of its top layer down to ``<disk>``,
  then a pivot; the guest keeps running on its own disk;
- a stopped guest: ``qemu-img commit`` of the top layer still chained to
  ``<disk>`` down to it. A top layer already rebased onto the
  destination's names (``merge_after_power_off`` ran) holds writes
  committed before the rebase: nothing to commit. Only the top of each
  chain is ever committed, with the layers below it, never a lower layer
  alone over newer writes;
- then the layer files go and the persistent definition names ``<disk>``
  again.

A crash during any of it leaves a state the next start resolves the same
way.
"""

import dataclasses
import os

from lxml import etree
from nova.virt.images import qemu_img_info
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log as logging

from novaext import nova_internals
from novaext import qemu_img
from novaext.resize import redirect
from novaext.resize import source as resize_source
from novaext.snapshot import live

LOG = logging.getLogger(__name__)

# Oldest first: the guest writes to the last one present.
LAYER_SUFFIXES = (redirect.WRITES_SUFFIX, redirect.LAST_WRITES_SUFFIX)


@dataclasses.dataclass(frozen=True)
class LayeredDisk:
    """``disk`` (a path) and the redirect layers found over it, oldest
    first."""

    disk: str
    layers: tuple

    @property
    def top(self):
        return self.layers[-1]

    def chained_to_disk(self):
        """True when the top layer still reads through ``disk`` (its
        writes may be in it alone); False once it was rebased onto the
        destination's names (they were committed before)."""
        backing = qemu_img_info(self.top, format='qcow2').backing_file
        below = self.layers[:-1] or (self.disk,)
        return backing == os.path.basename(below[-1])


def _layer_base(path):
    for suffix in LAYER_SUFFIXES:
        if path.endswith(suffix):
            return path[:-len(suffix)]
    return None


def find(directories):
    """The disks in ``directories`` that have redirect layers.

    :returns: [LayeredDisk]
    """
    found = {}
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        for name in names:
            base = _layer_base(name)
            if base is not None:
                found.setdefault(os.path.join(directory, base), [])
    result = []
    for disk, _ in sorted(found.items()):
        layers = tuple(disk + s for s in LAYER_SUFFIXES
                       if os.path.exists(disk + s))
        result.append(LayeredDisk(disk, layers))
    return result


def running_guest(internals, instance):
    """The instance's guest when it runs here, else None."""
    try:
        guest = internals.host.get_guest(instance)
    except Exception:
        return None
    return guest if guest.is_active() else None


class RedirectLeftovers:
    """The redirect layers of ``instance``'s disks (module docstring)."""

    def __init__(self, internals, instance):
        self.internals = internals
        self.instance = instance
        inst_base = libvirt_utils.get_instance_path(instance)
        self.disks = find((inst_base, inst_base + '_resize'))

    def __bool__(self):
        return bool(self.disks)

    def resolve(self):
        """Put every write back into its disk and remove the layers.

        :returns: True when the guest was running and still runs (on its
            own disks now), False when it was not running
        """
        guest = running_guest(self.internals, self.instance)
        live_sources = {}
        if guest is not None:
            live_sources = {d.source_path: d.target_dev
                            for d in guest.get_all_disks()
                            if d.source_type == 'file'}
        for layered in self.disks:
            running_on = [p for p in layered.layers if p in live_sources]
            if running_on:
                self._merge_live(guest, live_sources[running_on[-1]],
                                 layered.disk, running_on[-1])
            elif layered.chained_to_disk():
                qemu_img.commit(layered.top, base=layered.disk)
                LOG.warning('Committed the writes of an interrupted '
                            'resize, %(top)s, into %(disk)s',
                            {'top': layered.top, 'disk': layered.disk},
                            instance=self.instance)
            for layer in layered.layers:
                try:
                    os.unlink(layer)
                except FileNotFoundError:
                    pass
        self._repoint_definition(guest)
        return guest is not None

    def _merge_live(self, guest, dev, disk, top):
        block = guest.get_block_device(dev)
        if block.get_job_info() is None:
            nova_internals.start_active_commit(guest, dev, disk, top)
        live.BlockJobWaiter(block, disk, 0, None).wait()
        block.abort_job(pivot=True)
        LOG.warning('Merged the writes of an interrupted resize, %(top)s, '
                    'into %(disk)s; the guest runs on it',
                    {'top': top, 'disk': disk}, instance=self.instance)

    def _repoint_definition(self, guest):
        """The persistent definition names each disk, not its layers."""
        if guest is None:
            try:
                guest = self.internals.host.get_guest(self.instance)
            except Exception:
                return
        if not guest.has_persistent_configuration():
            return
        xml = guest.get_xml_desc(dump_inactive=True, dump_sensitive=True)
        fixed = repoint_sources(xml)
        if fixed != xml:
            self.internals.host.write_instance_config(fixed)


def repoint_sources(xml):
    """``xml`` (a domain definition) with every file disk source that is
    a redirect layer pointed at its disk, without a backing chain (libvirt
    reads it from the image)."""
    doc = etree.fromstring(xml)
    changed = False
    for disk in doc.findall('./devices/disk'):
        source = disk.find('source')
        path = source.get('file') if source is not None else None
        base = _layer_base(path) if path else None
        if base is None:
            continue
        source.set('file', base)
        for chain in disk.findall('backingStore'):
            disk.remove(chain)
        changed = True
    return etree.tostring(doc, encoding='unicode') if changed else xml


def _remove_partial_copy(internals, instance, migration):
    """What an interrupted move pushed to the destination's ``<dir>``:
    the destination never got to finish_migration, so it is only a
    partial copy (off shared storage, and never the source's own)."""
    dest = getattr(migration, 'dest_host', None)
    if not dest or migration.dest_compute == migration.source_compute:
        return
    inst_base = libvirt_utils.get_instance_path(instance)
    if not internals.is_path_shared_with(dest, inst_base):
        resize_source.remove_partial_copy(internals, dest, inst_base, instance)


def _end_migration(internals, context, instance, migration):
    """The move ended here: the source's resources (held by the migration
    since the move began) go back to the instance, and the migration is
    marked failed, so no resource tracker counts it as in progress."""
    if migration.status in ('error', 'failed', 'reverted'):
        return
    internals.revert_allocation(context, instance, migration)
    migration.status = 'error'
    migration.save()


def revert_interrupted_move(internals, context, instance, migration,
                            nova_revert):
    """ExtLibvirtDriver.finish_revert_migration when Nova's restart hands
    back a move that nova-compute did not finish (``instance.task_state``
    RESIZE_MIGRATING): novaext's recovery (recover_interrupted_move),
    then, unless the guest still runs as it was, Nova's revert
    (``nova_revert()``).

    Nova 34's revert reads ``instance.old_flavor`` for the vTPM, which
    Nova sets only once the disks have moved: in RESIZE_MIGRATING it is
    None, and the revert raises before it starts the guest (the server
    stays ACTIVE with no guest). The flavor the instance had before the
    move is still ``instance.flavor``; it stands in for the call.
    """
    if recover_interrupted_move(internals, context, instance, migration):
        return
    if instance.old_flavor is not None:
        nova_revert()
        return
    instance.old_flavor = instance.flavor
    try:
        nova_revert()
    finally:
        instance.old_flavor = None


def recover_interrupted_move(internals, context, instance, migration):
    """The first step of revert_interrupted_move.

    Every write of the guest is back in its disks (RedirectLeftovers),
    the destination's partial copy is gone, and the instance holds its
    resources on this host again (Nova's restart leaves them with the
    migration, and the new flavor's on the destination).

    :returns: True when the guest still runs on its own disks in its own
        directory: nothing is left to revert, and Nova's revert, which
        would define and start the guest again (destroying the running
        one when the start fails), must not run
    """
    leftovers = RedirectLeftovers(internals, instance)
    if leftovers:
        running = leftovers.resolve()
    else:
        running = running_guest(internals, instance) is not None
    _remove_partial_copy(internals, instance, migration)
    _end_migration(internals, context, instance, migration)
    inst_base = libvirt_utils.get_instance_path(instance)
    return running and not os.path.exists(inst_base + '_resize')
