"""Free space novaext's own windows need: checked before one opens, and
watched while it is open.

Nova writes a guest's disk in place. A pre-copy's redirect
(resize.redirect) puts what the guest writes meanwhile into a new layer
beside the disk, and merging that layer back (after power-off, or live
when the move fails) needs room for the layer and for the clusters it
adds to the disk: more than Nova's in-place writes. So such a window
opens only when the file system keeps a reserve free, and is closed
again, the guest running on its own disk with every write merged, once
the free space falls to half the reserve: before the file system is full,
where QEMU would pause the guest on ENOSPC and the merge would have no
room left.
"""

import dataclasses
import os

from oslo_utils import units

from novaext.exception import NotEnoughSpace


def allocated_bytes(path):
    """Bytes allocated to ``path`` on its file system, None when it
    cannot be read."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return None


def free_bytes(path):
    """Bytes an unprivileged writer can still allocate on ``path``'s file
    system (statvfs f_bavail)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@dataclasses.dataclass(frozen=True)
class Reserve:
    """What a window (``what``, e.g. 'the pre-copy') needs on the file
    system of ``path``: ``start`` bytes free to open, half of it to stay
    open. ``option`` names the setting that sets ``start``."""

    path: str
    start: int
    what: str
    option: str

    @property
    def keep(self):
        return self.start // 2

    def _error(self, needed, free):
        return NotEnoughSpace(what=self.what, path=self.path,
                              needed_mib=needed // units.Mi,
                              free_mib=free // units.Mi, option=self.option)

    def shortage_to_start(self, writes=0):
        """NotEnoughSpace when the window cannot open now, else None; the
        window itself will write ``writes`` bytes there besides."""
        free = free_bytes(self.path)
        needed = self.start + writes
        return self._error(needed, free) if free < needed else None

    def check_kept(self):
        """Raise NotEnoughSpace when the window must close now."""
        free = free_bytes(self.path)
        if free < self.keep:
            raise self._error(self.keep, free)

    def watching(self, on_progress):
        """``on_progress`` (a push's progress callback), checking the
        reserve at each report first: a shortage raises out of the
        callback, which stops the push (rsync.client)."""
        def watched(done, percent=None):
            self.check_kept()
            on_progress(done, percent=percent)
        return watched
