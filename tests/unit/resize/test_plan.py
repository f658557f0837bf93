"""The resize transfer table over every role x format x backing."""

import itertools

import pytest

from novaext.exception import UnmovableDisk
from novaext.resize import plan as tp
from novaext.resize.plan import Action
from novaext.resize.plan import DiskRole

OVERLAY, WHOLE, RECREATE, STANDALONE = (
    Action.PUSH_OVERLAY, Action.PUSH_WHOLE_SPARSE,
    Action.RECREATE_ON_DESTINATION, Action.PUSH_STANDALONE)

EXPECTED = {}
for role in (DiskRole.ROOT, DiskRole.CONFIG_DRIVE, DiskRole.OTHER):
    EXPECTED.update({
        (role, 'qcow2', True): OVERLAY, (role, 'qcow2', False): WHOLE,
        (role, 'raw', True): WHOLE, (role, 'raw', False): WHOLE})
# Ephemeral data moves, but never as an overlay of the peer's own
# (mkfs-made, different) base of the same name.
EXPECTED.update({
    (DiskRole.EPHEMERAL, 'qcow2', True): STANDALONE,
    (DiskRole.EPHEMERAL, 'qcow2', False): WHOLE,
    (DiskRole.EPHEMERAL, 'raw', True): WHOLE,
    (DiskRole.EPHEMERAL, 'raw', False): WHOLE})
EXPECTED.update({(DiskRole.SWAP, fmt, b): RECREATE
                 for fmt in ('qcow2', 'raw') for b in (False, True)})


@pytest.mark.parametrize('key', list(itertools.product(
    DiskRole, ('qcow2', 'raw'), (False, True))))
def test_every_case(key):
    assert tp.TABLE[key] == EXPECTED[key]


def test_table_covers_exactly_the_combinations():
    assert set(tp.TABLE) == set(EXPECTED) and len(EXPECTED) == 20


@pytest.mark.parametrize('name,role', [
    ('disk', DiskRole.ROOT), ('disk.local', DiskRole.EPHEMERAL),
    ('disk.eph0', DiskRole.EPHEMERAL), ('disk.eph12', DiskRole.EPHEMERAL),
    ('disk.swap', DiskRole.SWAP), ('disk.config', DiskRole.CONFIG_DRIVE),
    ('disk.rescue', DiskRole.OTHER), ('disk.local.bak', DiskRole.OTHER)])
def test_roles_from_names(name, role):
    assert tp.role_of('/var/lib/nova/instances/u/' + name) is role


def test_plan_of_a_typical_instance():
    info = [
        {'path': '/i/u/disk', 'type': 'qcow2', 'backing_file': 'a' * 40},
        {'path': '/i/u/disk.local', 'type': 'qcow2',
         'backing_file': 'ephemeral_1_0706d66'},
        {'path': '/i/u/disk.swap', 'type': 'qcow2',
         'backing_file': 'swap_64'},
        {'path': '/i/u/disk.config', 'type': 'raw', 'backing_file': ''},
    ]
    assert [(p.role, p.action) for p in tp.plan(info)] == [
        (DiskRole.ROOT, OVERLAY), (DiskRole.EPHEMERAL, STANDALONE),
        (DiskRole.SWAP, RECREATE), (DiskRole.CONFIG_DRIVE, WHOLE)]


def test_unknown_format_is_refused():
    with pytest.raises(UnmovableDisk, match="is a 'ploop' disk; novaext "
                       "moves qcow2 and raw file disks only"):
        tp.plan([{'path': '/i/u/disk', 'type': 'ploop',
                  'backing_file': None}])
