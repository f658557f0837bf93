"""The decision table, over every image kind x disk present x base present."""

import itertools

import pytest

from novaext.imagebackend import cache_plan
from novaext.imagebackend.cache_plan import Step
from novaext.imagebackend.image_kind import ImageKind

NOVA = (Step.NOVA_CACHE,)

# Written out by hand, independently of the table's own construction.
EXPECTED = {
    (ImageKind.NORMAL, False, False): NOVA,
    (ImageKind.NORMAL, False, True): NOVA,
    (ImageKind.NORMAL, True, False): NOVA,
    (ImageKind.NORMAL, True, True): NOVA,
    (ImageKind.FULL_SNAPSHOT, False, False): NOVA,
    (ImageKind.FULL_SNAPSHOT, False, True): NOVA,
    (ImageKind.FULL_SNAPSHOT, True, False): NOVA,
    (ImageKind.FULL_SNAPSHOT, True, True): NOVA,
    (ImageKind.DELTA_SNAPSHOT, False, False):
        (Step.FETCH_DELTA, Step.FETCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (ImageKind.DELTA_SNAPSHOT, False, True):
        (Step.FETCH_DELTA, Step.TOUCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (ImageKind.DELTA_SNAPSHOT, True, False):
        (Step.FETCH_BASE, Step.GROW),
    (ImageKind.DELTA_SNAPSHOT, True, True):
        (Step.TOUCH_BASE, Step.GROW),
}


@pytest.mark.parametrize(
    'kind,disk,base',
    list(itertools.product(ImageKind, (False, True), (False, True))))
def test_every_case_has_the_expected_steps(kind, disk, base):
    assert cache_plan.steps_for(kind, disk, base) == EXPECTED[
        (kind, disk, base)]


def test_table_has_no_case_beyond_the_combinations():
    assert set(cache_plan.PLAN) == set(EXPECTED)


def test_a_delta_disk_never_fetches_a_base_that_is_present():
    for (kind, _disk, base), steps in cache_plan.PLAN.items():
        if base:
            assert Step.FETCH_BASE not in steps, kind


def test_delta_is_checked_before_any_base_is_fetched():
    for steps in cache_plan.PLAN.values():
        if Step.FETCH_DELTA in steps and Step.FETCH_BASE in steps:
            assert steps.index(Step.FETCH_DELTA) < steps.index(
                Step.FETCH_BASE)


def test_existing_delta_disk_is_never_downloaded_again():
    for (kind, disk, _base), steps in cache_plan.PLAN.items():
        if disk:
            assert Step.FETCH_DELTA not in steps, kind
            assert Step.PLACE_DELTA not in steps, kind
