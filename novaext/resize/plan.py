"""What a resize or cold migration does with each file of an instance.

One table: (disk role, format, has a backing file) -> action. The roles
come from Nova's disk names. qcow2 overlays move as they are (never merged
with their base: the destination has or fetches the base); raw disks and
backing-less qcow2 move whole and sparse. Ephemeral disks keep their data,
as in Nova, but an ephemeral overlay is never moved as an overlay: its base
(``ephemeral_<GB>_<fs>``) is made by mkfs on each host, so the peer's base
of the same name holds other bytes (file-system UUIDs, checksums seeded by
them); the overlay goes as a standalone qcow2 instead. Swap is not moved:
the destination recreates it, as Nova does.
"""

import dataclasses
import enum
import itertools
import os
import re

from novaext.exception import UnmovableDisk


class DiskRole(enum.Enum):
    ROOT = 'root'
    EPHEMERAL = 'ephemeral'
    SWAP = 'swap'
    CONFIG_DRIVE = 'config drive'
    OTHER = 'other local disk'


class Action(enum.Enum):
    PUSH_OVERLAY = 'push the qcow2 overlay as it is'
    PUSH_WHOLE_SPARSE = 'push the whole file, keeping holes'
    PUSH_STANDALONE = ('push a standalone copy (overlay merged with its '
                       'base): the peer\'s base of that name is not ours')
    RECREATE_ON_DESTINATION = 'do not copy; the destination recreates it'


_ROLE_BY_NAME = (
    (re.compile(r'disk'), DiskRole.ROOT),
    (re.compile(r'disk\.(local|eph[0-9]+)'), DiskRole.EPHEMERAL),
    (re.compile(r'disk\.swap'), DiskRole.SWAP),
    (re.compile(r'disk\.config'), DiskRole.CONFIG_DRIVE),
)

FORMATS = ('qcow2', 'raw')


def role_of(path):
    """The role of the instance file at ``path``, from its name."""
    name = os.path.basename(path)
    for pattern, role in _ROLE_BY_NAME:
        if pattern.fullmatch(name):
            return role
    return DiskRole.OTHER


def _action(role, fmt, has_backing):
    if role is DiskRole.SWAP:
        return Action.RECREATE_ON_DESTINATION
    if fmt == 'qcow2' and has_backing:
        if role is DiskRole.EPHEMERAL:
            return Action.PUSH_STANDALONE
        return Action.PUSH_OVERLAY
    return Action.PUSH_WHOLE_SPARSE


TABLE = {
    (role, fmt, backing): _action(role, fmt, backing)
    for role, fmt, backing in itertools.product(
        DiskRole, FORMATS, (False, True))
}


@dataclasses.dataclass(frozen=True)
class PlannedDisk:
    path: str
    role: DiskRole
    action: Action


def plan(disk_info):
    """Plan each disk of Nova's disk info list.

    :param disk_info: dicts with at least 'path', 'type' (qcow2 or raw)
        and 'backing_file', as ``_get_instance_disk_info_from_config``
        returns them
    :raises UnmovableDisk: for a format this plan does not know
    """
    planned = []
    for disk in disk_info:
        fmt = disk['type']
        if fmt not in FORMATS:
            raise UnmovableDisk(path=disk['path'], format=fmt)
        role = role_of(disk['path'])
        planned.append(PlannedDisk(
            disk['path'], role,
            TABLE[(role, fmt, bool(disk.get('backing_file')))]))
    return planned
