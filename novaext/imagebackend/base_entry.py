"""What novaext accepts as a base in ``_base``: a regular file of its own.

A base is trusted by its name, so what stands under that name must be a
file the compute service itself put there: a regular file, owned by the
user the compute service runs as, with a single link. Anything else (a
symbolic link, a device, a FIFO, a socket, a directory, a file another
user owns, a hard link to a file elsewhere) is refused by every path that
reads or touches a base, before anything is read, written, renamed or
time-stamped through it. It is left where it is, for the operator: it is
evidence, not litter.
"""

import os
import stat

from novaext.exception import UntrustedBaseEntry

# st_mode file type -> what the user is told it is.
_KINDS = (
    (stat.S_ISLNK, 'a symbolic link'),
    (stat.S_ISDIR, 'a directory'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISFIFO, 'a FIFO'),
    (stat.S_ISSOCK, 'a socket'),
)


def what_is_wrong(st, uid=None):
    """Why an entry with ``os.lstat`` result ``st`` is not a base, or None.

    :param uid: the compute service's user id (default: this process's)
    """
    uid = os.geteuid() if uid is None else uid
    for is_kind, kind in _KINDS:
        if is_kind(st.st_mode):
            return kind
    if not stat.S_ISREG(st.st_mode):
        return 'not a regular file'
    if st.st_uid != uid:
        return f'owned by uid {st.st_uid}, not the compute user (uid {uid})'
    if st.st_nlink != 1:
        return f'a hard link ({st.st_nlink} names for one file)'
    return None


def present(path):
    """Whether a trusted base stands at ``path``.

    :returns: True for a trusted base; False when nothing is there
    :raises UntrustedBaseEntry: when something else is there
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        # Nothing there. (os.path.exists, which Nova's own code asks, can
        # only disagree when it is stubbed, as in Nova's unit tests.)
        return os.path.exists(path)
    wrong = what_is_wrong(st)
    if wrong is not None:
        raise UntrustedBaseEntry(path=path, what=wrong)
    return True


def refuse_untrusted(path):
    """Raise UntrustedBaseEntry when something that is not a base stands
    at ``path``; nothing there, or a base, passes. (It asks lstat only,
    so Nova's own calls to os.path.exists stay exactly Nova's.)"""
    wrong = refusal(path)
    if wrong is not None:
        raise UntrustedBaseEntry(path=path, what=wrong)


def refusal(path):
    """Why the entry at ``path`` is not a base, or None when it is one or
    nothing is there (for scans that skip what they must not touch)."""
    try:
        return what_is_wrong(os.lstat(path))
    except FileNotFoundError:
        return None


def is_trusted(path):
    """``present(path)`` without raising: False for nothing or anything
    untrusted."""
    try:
        return present(path)
    except UntrustedBaseEntry:
        return False
