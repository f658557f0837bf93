"""Which steps make a disk ready, as one table.

The key is (image kind, instance disk present, base present); the value is
the ordered steps the qcow2 backend runs. Normal images and full snapshots
take Nova's own path (download once per base under a lock, overlay at the
flavor's size, legacy ``<sha1>_<GB>`` backings); delta snapshots take
novaext's.
"""

import enum
import itertools

from novaext.imagebackend.image_kind import ImageKind


class Step(enum.Enum):
    NOVA_CACHE = 'Nova\'s Qcow2.cache'
    FETCH_BASE = 'fetch the base under its lock'
    TOUCH_BASE = 'mark the cached base in use'
    FETCH_DELTA = 'fetch the delta and check it, before any base fetch'
    PLACE_DELTA = 'rebase -u the delta onto the base, move it into place'
    GROW = 'grow the disk to the flavor size'


_DELTA_STEPS = {
    # (disk present, base present)
    (False, False): (Step.FETCH_DELTA, Step.FETCH_BASE, Step.PLACE_DELTA,
                     Step.GROW),
    (False, True): (Step.FETCH_DELTA, Step.TOUCH_BASE, Step.PLACE_DELTA,
                    Step.GROW),
    (True, False): (Step.FETCH_BASE, Step.GROW),
    (True, True): (Step.TOUCH_BASE, Step.GROW),
}

PLAN = {
    (kind, disk, base): (
        _DELTA_STEPS[(disk, base)] if kind is ImageKind.DELTA_SNAPSHOT
        else (Step.NOVA_CACHE,))
    for kind, disk, base in itertools.product(
        ImageKind, (False, True), (False, True))
}


def steps_for(kind, disk_present, base_present):
    """The ordered steps for one case; every case is in PLAN."""
    return PLAN[(kind, bool(disk_present), bool(base_present))]
