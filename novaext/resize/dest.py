"""The destination half of resize and cold migration, before Nova's own.

Root overlays arrive as they were on the source, still naming the
source's base by its absolute path. Each is pointed at the base of the
same name in this host's ``_base`` with a metadata-only rebase, before
Nova's finish_migration makes sure the bases exist, grows the disks to
the new flavor (qemu-img resize, no format round trip) and recreates swap.

That rebase is safe only for image bases: ``<sha1(image id)>`` holds the
image's bytes on every host. An ephemeral or swap base
(``ephemeral_<GB>_<fs>``, ``swap_<MB>``) is made by mkfs/mkswap on each
host and differs between hosts, so an overlay of one is never re-pointed
(the source sends ephemeral disks standalone; see transfer_plan).

A pre-copied overlay arrives in two or three files (resize.redirect): the
disk as it was when the pre-copy began, ``<disk>.novaext-precopy``; when
the catch-up pass ran, what the guest wrote during pass 1,
``<disk>.novaext-catchup``; and what it wrote last, as ``<disk>``, backed
by the one before. The writes are committed into the pre-copied file in
that order, and it then takes the disk's name.
"""

import os

from nova import exception
from nova.virt import images
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils

from novaext import qemu_img
from novaext.imagebackend import base_entry
from novaext.imagebackend import base_names
from novaext.imagebackend import image_safety
from novaext.resize import plan as transfer_plan
from novaext.resize import redirect
from novaext.resize import source as resize_source

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def _backing_format(local_base, recorded):
    """The format to record for ``local_base``: its own when it is here
    (the source's base may have had another one), else the recorded one,
    else raw when Nova will fetch it as raw (force_raw_images)."""
    if base_entry.present(local_base):
        return images.qemu_img_info(local_base).file_format
    if recorded:
        return recorded
    if CONF.force_raw_images:
        return 'raw'
    raise exception.InvalidDiskInfo(
        reason=f'cannot tell the format of base {local_base}: it is not '
               f'here yet and the overlay records none')


def _check_qcow2(path):
    """Refuse ``path`` unless oslo's format inspector finds a qcow2 whose
    only failed safety check is its backing file."""
    problem = image_safety.qcow2_problem(path)
    if problem is not None:
        raise exception.InvalidDiskInfo(
            reason=f'{path} is no safe qcow2: {problem}')


def _writes_chain(disk, writes):
    """The files of writes to commit, oldest first, when ``disk`` (whose
    qemu-img info is ``writes``) arrived as the last writes of a
    pre-copy; else None."""
    name = os.path.basename(disk)
    if writes.backing_file == redirect.precopied_name(name):
        return [disk]
    if writes.backing_file == redirect.caught_up_name(name):
        return [os.path.join(os.path.dirname(disk), writes.backing_file),
                disk]
    return None


def merge_precopied(disk, instance, info=None):
    """If ``disk`` arrived as the writes over a pre-copied file (it names
    ``<disk>.novaext-precopy`` or ``<disk>.novaext-catchup`` as its
    backing file), commit the writes into that pre-copied file, which
    becomes ``disk``.

    :param info: qemu-img's info of ``disk`` when the caller has it
    :returns: qemu-img's info of the merged ``disk``, or None when
        ``disk`` is no such writes file (it is left as it is)
    :raises: InvalidDiskInfo when a file is missing or not a safe qcow2,
        or the files do not fit (sizes; the writes' clusters must cover
        whole clusters of the pre-copied file, which is opened without
        its backing file)
    """
    writes = info or images.qemu_img_info(disk, format='qcow2')
    chain = _writes_chain(disk, writes)
    if chain is None:
        return None
    precopied = os.path.join(os.path.dirname(disk), redirect.precopied_name(
        os.path.basename(disk)))
    for path in [precopied] + chain:
        if not os.path.exists(path):
            raise exception.InvalidDiskInfo(
                reason=f'{disk} is the last part of a pre-copy, but '
                       f'{path} did not arrive')
        _check_qcow2(path)
    base = images.qemu_img_info(precopied, format='qcow2')
    for path in chain:
        layer = writes if path == disk else images.qemu_img_info(
            path, format='qcow2')
        if layer.virtual_size != base.virtual_size or \
                layer.cluster_size < base.cluster_size or \
                (layer.format_specific or {}).get('data', {}).get(
                    'extended-l2'):
            raise exception.InvalidDiskInfo(
                reason=f'{path} ({layer.virtual_size} bytes, clusters of '
                       f'{layer.cluster_size}) cannot be merged into '
                       f'{precopied} ({base.virtual_size}, '
                       f'{base.cluster_size})')
    for path in chain:
        qemu_img.commit_into(path, precopied)
    os.replace(precopied, disk)
    for path in chain[:-1]:
        os.unlink(path)
    LOG.info('Merged what the guest wrote during the pre-copy into %s '
             '(%d layer(s))', disk, len(chain), instance=instance)
    return base


def finish_pending_merges(instance):
    """Finish what a destination's finish_migration left half-done when
    nova-compute died in it (Nova leaves the instance in RESIZE_FINISH;
    the operator's reset-state and hard reboot come here first): each
    disk that still arrived as writes over a pre-copied file is merged
    (merge_precopied is idempotent: the layers are only ever read), and a
    caught-up layer left after a finished merge is removed.

    :returns: the disks merged
    """
    inst_dir = libvirt_utils.get_instance_path(instance)
    try:
        names = os.listdir(inst_dir)
    except FileNotFoundError:
        return []
    merged = []
    for name in sorted(names):
        if name.endswith(redirect.PRECOPIED_SUFFIX):
            disk = os.path.join(inst_dir,
                                name[:-len(redirect.PRECOPIED_SUFFIX)])
            if os.path.exists(disk) and merge_precopied(disk, instance):
                merged.append(disk)
    for name in sorted(os.listdir(inst_dir)):
        if not name.endswith(redirect.CAUGHT_UP_SUFFIX):
            continue
        disk = os.path.join(inst_dir, name[:-len(redirect.CAUGHT_UP_SUFFIX)])
        if os.path.exists(disk) and not os.path.exists(
                disk + redirect.PRECOPIED_SUFFIX):
            os.unlink(os.path.join(inst_dir, name))
            LOG.info('Removed %s, left by a merge that finished', name,
                     instance=instance)
    return merged


def refuse_missing_disks(instance, disk_info):
    """Every disk the source moves (resize.plan: all but swap) must be
    here before Nova's finish_migration runs: Nova would make a fresh one
    from the image in the place of a missing one, and the guest would
    lose its data on this host while the source still holds it.

    :param disk_info: Nova's disk info list, from the source
    :raises: ResizeError naming the missing disks (nothing is changed;
        the source keeps them in ``<dir>_resize``)
    """
    if not resize_source.moves_images_type(CONF.libvirt.images_type):
        return  # Nova's own move (rbd, lvm, ploop): not files here
    inst_dir = libvirt_utils.get_instance_path(instance)
    missing = sorted(
        os.path.basename(d.path) for d in transfer_plan.plan(disk_info)
        if d.action is not transfer_plan.Action.RECREATE_ON_DESTINATION and
        not os.path.exists(os.path.join(inst_dir, os.path.basename(d.path))))
    if missing:
        raise exception.ResizeError(
            reason=f'disks {missing} of instance {instance.uuid} were not '
                   f'received from the source host (is instances_path the '
                   f'same for nova-compute and novaext-rsyncd on this host?);'
                   f' the source keeps them: revert the resize')


def repoint_overlays(instance, disk_info_json):
    """Rebase (-u) each arrived overlay onto this host's ``_base``, once
    a pre-copied one is merged (merge_precopied).

    :raises: ResizeError when a disk the source moves is not here
        (refuse_missing_disks); InvalidDiskInfo when an overlay names a
        backing file that is not an image base of this cache, or a
        host-made (ephemeral, swap) base of another host
    """
    disk_info = jsonutils.loads(disk_info_json)
    refuse_missing_disks(instance, disk_info)
    inst_dir = libvirt_utils.get_instance_path(instance)
    for info in disk_info:
        if info.get('type') != 'qcow2' or not info.get('backing_file'):
            continue
        disk = os.path.join(inst_dir, os.path.basename(info['path']))
        if not os.path.exists(disk):
            continue  # not moved (swap): Nova recreates it
        current = images.qemu_img_info(disk, format='qcow2')
        current = merge_precopied(disk, instance, current) or current
        if not current.backing_file:
            continue  # arrived standalone (ephemeral)
        name = os.path.basename(current.backing_file or '')
        local_base = os.path.join(base_names.base_dir(), name)
        same_path = current.backing_file == local_base
        if same_path and current.backing_file_format:
            continue
        if not same_path and not base_names.is_image_base(name):
            what = ('a base made on another host'
                    if base_names.is_host_made(name)
                    else 'not a base of the image cache')
            raise exception.InvalidDiskInfo(
                reason=f'{disk} is backed by {current.backing_file!r}, '
                       f'{what}')
        fmt = _backing_format(local_base, current.backing_file_format)
        LOG.info('Pointing %(disk)s at %(base)s (%(fmt)s; was %(old)s)',
                 {'disk': disk, 'base': local_base, 'fmt': fmt,
                  'old': current.backing_file}, instance=instance)
        qemu_img.rebase_unsafe(disk, local_base, fmt)
