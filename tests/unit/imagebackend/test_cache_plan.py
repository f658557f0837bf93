"""The decision table, over every image kind x purpose x disk x base."""

import itertools

import pytest

from novaext.imagebackend import cache_plan
from novaext.imagebackend.cache_plan import Purpose
from novaext.imagebackend.cache_plan import Step
from novaext.imagebackend.image_kind import ImageKind

NOVA = (Step.NOVA_CACHE,)
DELTA = ImageKind.DELTA_SNAPSHOT
BOOT, BACKING = Purpose.BOOT, Purpose.BACKING

# Written out by hand, independently of the table's own construction.
EXPECTED = {
    **{(kind, purpose, disk, base): NOVA
       for kind in (ImageKind.NORMAL, ImageKind.FULL_SNAPSHOT)
       for purpose in Purpose
       for disk in (False, True) for base in (False, True)},
    (DELTA, BOOT, False, False):
        (Step.FETCH_DELTA, Step.FETCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (DELTA, BOOT, False, True):
        (Step.FETCH_DELTA, Step.TOUCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (DELTA, BOOT, True, False): (Step.FETCH_BASE, Step.GROW),
    (DELTA, BOOT, True, True): (Step.TOUCH_BASE, Step.GROW),
    (DELTA, BACKING, False, False): (Step.FETCH_BASE, Step.EMPTY_OVERLAY),
    (DELTA, BACKING, False, True): (Step.TOUCH_BASE, Step.EMPTY_OVERLAY),
    (DELTA, BACKING, True, False): (Step.FETCH_BASE,),
    (DELTA, BACKING, True, True): (Step.TOUCH_BASE,),
}

CASES = list(itertools.product(ImageKind, Purpose, (False, True),
                               (False, True)))


def test_expected_covers_all_24_combinations():
    assert len(CASES) == 24 and set(EXPECTED) == set(CASES)


@pytest.mark.parametrize('kind,purpose,disk,base', CASES)
def test_every_case_has_the_expected_steps(kind, purpose, disk, base):
    assert cache_plan.steps_for(kind, purpose, disk, base) == EXPECTED[
        (kind, purpose, disk, base)]


def test_table_has_no_case_beyond_the_combinations():
    assert set(cache_plan.PLAN) == set(CASES)


def test_a_base_that_is_present_is_never_fetched():
    for (_kind, _purpose, _disk, base), steps in cache_plan.PLAN.items():
        if base:
            assert Step.FETCH_BASE not in steps


def test_delta_is_checked_before_any_base_is_fetched():
    for steps in cache_plan.PLAN.values():
        if Step.FETCH_DELTA in steps and Step.FETCH_BASE in steps:
            assert steps.index(Step.FETCH_DELTA) < steps.index(
                Step.FETCH_BASE)


def test_an_existing_disk_is_never_replaced():
    for (_kind, _purpose, disk, _base), steps in cache_plan.PLAN.items():
        if disk:
            assert not {Step.FETCH_DELTA, Step.PLACE_DELTA,
                        Step.EMPTY_OVERLAY} & set(steps)


def test_restoring_a_backing_never_downloads_the_delta():
    for (_kind, purpose, _disk, _base), steps in cache_plan.PLAN.items():
        if purpose is BACKING:
            assert Step.FETCH_DELTA not in steps
