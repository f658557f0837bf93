"""resize.precopy.PrecopyPolicy: which disks are pushed while the guest
runs. (What the pre-copy does in a resize: test_source.py; that the
destination ends byte-identical with a guest writing: tests/real.)"""

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from novaext.resize import precopy
from novaext.resize.plan import Action
from novaext.resize.plan import DiskRole
from novaext.resize.plan import PlannedDisk

CONF = cfg.CONF
MiB = 1024 ** 2


@pytest.fixture
def overlay(tmp_path):
    path = tmp_path / 'disk'
    with open(path, 'wb') as f:
        f.write(b'\1' * (2 * MiB))
    return str(path)


@pytest.mark.parametrize('enabled, min_mib, action, wanted', [
    (True, 1, Action.PUSH_OVERLAY, True),
    (True, 2, Action.PUSH_OVERLAY, True),
    (True, 3, Action.PUSH_OVERLAY, False),
    (False, 0, Action.PUSH_OVERLAY, False),
    (True, 0, Action.PUSH_WHOLE_SPARSE, False),
    (True, 0, Action.PUSH_STANDALONE, False),
    (True, 0, Action.RECREATE_ON_DESTINATION, False),
])
def test_only_enabled_overlays_over_the_threshold(overlay, enabled, min_mib,
                                                   action, wanted):
    policy = precopy.PrecopyPolicy(enabled, min_mib * MiB)
    assert policy.wants(PlannedDisk(overlay, DiskRole.ROOT, action)) is wanted


def test_allocation_not_apparent_size_counts(tmp_path):
    sparse = tmp_path / 'disk'
    with open(sparse, 'wb') as f:
        f.truncate(512 * MiB)
    policy = precopy.PrecopyPolicy(True, 1 * MiB)
    assert not policy.wants(PlannedDisk(str(sparse), DiskRole.ROOT,
                                        Action.PUSH_OVERLAY))


def test_unreadable_disk_is_left_to_the_push_after_power_off(tmp_path):
    policy = precopy.PrecopyPolicy(True, 0)
    assert not policy.wants(PlannedDisk(str(tmp_path / 'gone'),
                                        DiskRole.ROOT, Action.PUSH_OVERLAY))


def test_policy_from_options_is_on_by_default():
    """On since the fault tier proves each window of the pre-copy
    (issue 30): overlays of 128 MiB or more go before power-off."""
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    try:
        assert precopy.PrecopyPolicy.from_conf(CONF) == \
            precopy.PrecopyPolicy(True, 128 * MiB)
        CONF.set_override('resize_precopy', False, group='novaext')
        CONF.set_override('resize_precopy_min_mib', 5, group='novaext')
        assert precopy.PrecopyPolicy.from_conf(CONF) == \
            precopy.PrecopyPolicy(False, 5 * MiB)
    finally:
        fixture.cleanUp()
