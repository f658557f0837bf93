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

A pre-copied overlay arrives in two files (resize.redirect): the disk as
it was when the pre-copy began, ``<disk>.novaext-precopy``, and what the
guest wrote since, as ``<disk>``, backed by the first. The writes are
committed into the pre-copied file, which then takes the disk's name.
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
from novaext.resize import redirect

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


def merge_precopied(disk, instance, info=None):
    """If ``disk`` arrived as the writes over a pre-copied file (it names
    ``<disk>.novaext-precopy`` as its backing file), commit it into that
    file, which becomes ``disk``.

    :param info: qemu-img's info of ``disk`` when the caller has it
    :returns: qemu-img's info of the merged ``disk``, or None when
        ``disk`` is no such writes file (it is left as it is)
    :raises: InvalidDiskInfo when either file is not a safe qcow2 or they
        do not fit (sizes; the writes' clusters must cover whole clusters
        of the pre-copied file, which is opened without its backing file)
    """
    writes = info or images.qemu_img_info(disk, format='qcow2')
    name = redirect.precopied_name(os.path.basename(disk))
    if writes.backing_file != name:
        return None
    precopied = os.path.join(os.path.dirname(disk), name)
    _check_qcow2(disk)
    _check_qcow2(precopied)
    base = images.qemu_img_info(precopied, format='qcow2')
    if writes.virtual_size != base.virtual_size or \
            writes.cluster_size < base.cluster_size or \
            (writes.format_specific or {}).get('data', {}).get(
                'extended-l2'):
        raise exception.InvalidDiskInfo(
            reason=f'{disk} ({writes.virtual_size} bytes, clusters of '
                   f'{writes.cluster_size}) cannot be merged into '
                   f'{precopied} ({base.virtual_size}, {base.cluster_size})')
    qemu_img.commit_into(disk, precopied)
    os.replace(precopied, disk)
    LOG.info('Merged what the guest wrote during the pre-copy into %s',
             disk, instance=instance)
    return base


def repoint_overlays(instance, disk_info_json):
    """Rebase (-u) each arrived overlay onto this host's ``_base``, once
    a pre-copied one is merged (merge_precopied).

    :raises: InvalidDiskInfo when an overlay names a backing file that is
        not an image base of this cache, or a host-made (ephemeral, swap)
        base of another host
    """
    inst_dir = libvirt_utils.get_instance_path(instance)
    for info in jsonutils.loads(disk_info_json):
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
