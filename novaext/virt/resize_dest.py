"""The destination half of resize and cold migration, before Nova's own.

Overlays arrive as they were on the source, still naming the source's
base by its absolute path. Each is pointed at the base of the same name
in this host's ``_base`` with a metadata-only rebase (same name, same
image content), before Nova's finish_migration makes sure the bases
exist, grows the disks to the new flavor (qemu-img resize, no format
round trip) and recreates ephemeral and swap disks.
"""

import os
import re

from nova import exception
from nova.virt import images
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log as logging
from oslo_serialization import jsonutils

from novaext.imagebackend import qcow2 as ext_qcow2

LOG = logging.getLogger(__name__)

# The base names Nova and novaext create in _base.
_BASE_NAME = re.compile(
    r'[0-9a-f]{40}(_[0-9]+)?|ephemeral_[0-9]+_[0-9a-f]+|swap_[0-9]+')


def repoint_overlays(instance, disk_info_json):
    """Rebase (-u) each arrived overlay onto this host's ``_base``.

    :raises: InvalidDiskInfo when an overlay names a backing file that is
        not a base name of this cache
    """
    inst_dir = libvirt_utils.get_instance_path(instance)
    for info in jsonutils.loads(disk_info_json):
        if info.get('type') != 'qcow2' or not info.get('backing_file'):
            continue
        disk = os.path.join(inst_dir, os.path.basename(info['path']))
        if not os.path.exists(disk):
            continue  # not moved (ephemeral, swap): Nova recreates it
        current = images.qemu_img_info(disk, format='qcow2')
        name = os.path.basename(current.backing_file or '')
        if not _BASE_NAME.fullmatch(name):
            raise exception.InvalidDiskInfo(
                reason=f'{disk} is backed by {current.backing_file!r}, '
                       f'not by a base of the image cache')
        local_base = os.path.join(ext_qcow2.base_dir(), name)
        if current.backing_file == local_base:
            continue
        LOG.info('Pointing %(disk)s at %(base)s (was %(old)s)',
                 {'disk': disk, 'base': local_base,
                  'old': current.backing_file}, instance=instance)
        ext_qcow2.rebase_unsafe(disk, local_base,
                                current.backing_file_format or 'raw')
