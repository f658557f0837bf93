"""Making a base at most once per host.

Every base in ``_base`` is made under an external lock named like the
base (the lock Nova's image backend takes for it, so novaext and Nova
never make the same base at once), only when no base is there yet, and
written as ``<name>.part`` renamed into place only when whole: a reader
sees the whole base or none.
"""

import contextlib
import os

from nova import utils
from oslo_utils import fileutils

from novaext.imagebackend import base_entry
from novaext.imagebackend import base_names


def make_once(path, lock_name, lock_path, make, when_present=None):
    """Under lock ``lock_name``: ``make(path)`` when no base is at
    ``path``, else ``when_present(path)`` (e.g. to check it).

    :raises UntrustedBaseEntry: ``path`` is there but not a regular file
    """
    fileutils.ensure_tree(os.path.dirname(path))

    @utils.synchronized(lock_name, external=True, lock_path=lock_path)
    def once():
        if base_entry.present(path):
            if when_present is not None:
                when_present(path)
            return
        make(path)
    once()


@contextlib.contextmanager
def written_whole(path):
    """Yield the ``.part`` path to write ``path``'s bytes to; it becomes
    ``path`` when the block ends, and is removed if the block raises."""
    part = base_names.part_of(path)
    with fileutils.remove_path_on_error(part):
        yield part
        os.rename(part, path)
