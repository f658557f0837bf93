"""Which steps make a disk ready, as one table.

The key is (image kind, purpose, instance disk present, base present); the
value is the ordered steps the qcow2 backend runs. Normal images and full
snapshots take Nova's own path (download once per base under a lock,
overlay at the flavor's size, legacy ``<sha1>_<GB>`` backings); delta
snapshots take novaext's.

Purpose tells a boot (the disk's content comes from the image) from a
backing restore: Nova's ``_create_images_and_backing`` (pre_live_migration
of a block migration, hard reboot, resize) asks for the base a disk points
to, while the disk's data arrives another way. For a delta snapshot that
base is the delta's base, found by ``image_id_sha1``, never the delta.
"""

import enum
import itertools

from novaext.imagebackend.image_kind import ImageKind


class Purpose(enum.Enum):
    BOOT = 'boot from the image'
    BACKING = 'restore the backing file of a disk'


class Step(enum.Enum):
    NOVA_CACHE = 'Nova\'s Qcow2.cache'
    FETCH_DELTA = 'fetch the delta and check it, before any base fetch'
    FETCH_BASE = 'fetch the base under its lock'
    TOUCH_BASE = 'mark the cached base in use'
    PLACE_DELTA = 'rebase -u the delta onto the base, move it into place'
    EMPTY_OVERLAY = 'create an empty overlay on the base (Nova\'s code)'
    GROW = 'grow the disk to the flavor size'


_DELTA_STEPS = {
    # (purpose, disk present, base present)
    (Purpose.BOOT, False, False):
        (Step.FETCH_DELTA, Step.FETCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (Purpose.BOOT, False, True):
        (Step.FETCH_DELTA, Step.TOUCH_BASE, Step.PLACE_DELTA, Step.GROW),
    (Purpose.BOOT, True, False): (Step.FETCH_BASE, Step.GROW),
    (Purpose.BOOT, True, True): (Step.TOUCH_BASE, Step.GROW),
    (Purpose.BACKING, False, False): (Step.FETCH_BASE, Step.EMPTY_OVERLAY),
    (Purpose.BACKING, False, True): (Step.TOUCH_BASE, Step.EMPTY_OVERLAY),
    (Purpose.BACKING, True, False): (Step.FETCH_BASE,),
    (Purpose.BACKING, True, True): (Step.TOUCH_BASE,),
}

PLAN = {
    (kind, purpose, disk, base): (
        _DELTA_STEPS[(purpose, disk, base)]
        if kind is ImageKind.DELTA_SNAPSHOT else (Step.NOVA_CACHE,))
    for kind, purpose, disk, base in itertools.product(
        ImageKind, Purpose, (False, True), (False, True))
}


def steps_for(kind, purpose, disk_present, base_present):
    """The ordered steps for one case; every case is in PLAN."""
    return PLAN[(kind, purpose, bool(disk_present), bool(base_present))]
