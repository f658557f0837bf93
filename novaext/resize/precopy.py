"""Which disks a resize pre-copies while the guest still runs.

A resize or cold migration's downtime is the guest's shutdown, the copy,
and the destination's start. The pre-copy ([novaext]resize_precopy) takes
most of the copy out of it: a qcow2 root overlay large enough to matter
is pushed to the destination while the guest runs and writes elsewhere
(pass 1, ``precopy``; resize.redirect). What the guest wrote during pass 1
is sent while it shuts down (``catchup``), and after power-off only what
it wrote since (``final``).

Only overlays qualify: raw disks move sparse and whole; ephemeral
overlays are converted to standalone copies after power-off; the rest is
small.
"""

import dataclasses

from oslo_utils import units

from novaext import space
from novaext.resize.plan import Action

# The pushes of one file, as progress reports name them
# (novaext.resize.push events: the ``pass`` key and the phase).
SINGLE = 'single'
PRECOPY = 'precopy'
CATCHUP = 'catchup'
FINAL = 'final'
PHASE_OF_PASS = {SINGLE: 'push', PRECOPY: 'precopy', CATCHUP: 'catchup',
                 FINAL: 'final'}


@dataclasses.dataclass(frozen=True)
class PrecopyPolicy:
    """``enabled``: [novaext]resize_precopy; ``min_bytes``: the smallest
    allocation pre-copied."""

    enabled: bool
    min_bytes: int

    @classmethod
    def from_conf(cls, conf):
        return cls(conf.novaext.resize_precopy,
                   conf.novaext.resize_precopy_min_mib * units.Mi)

    def wants(self, disk):
        """True when the PlannedDisk ``disk`` is pre-copied: an overlay
        pushed as it is, readable, holding at least ``min_bytes``. (A
        disk that cannot be read is left to the push after power-off,
        which reports why.)"""
        if not self.enabled or disk.action is not Action.PUSH_OVERLAY:
            return False
        allocated = space.allocated_bytes(disk.path)
        return allocated is not None and allocated >= self.min_bytes
