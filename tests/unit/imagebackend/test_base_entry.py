"""Only regular files of the compute user, with one link, are bases."""

import os

import pytest

from novaext.imagebackend import base_entry


@pytest.fixture
def victim(tmp_path):
    """A file outside ``_base`` that no base path may reach."""
    path = tmp_path / 'victim'
    path.write_bytes(b'secret')
    os.utime(path, (1000, 1000))
    return path


def _make(kind, path, victim):
    if kind == 'symlink':
        os.symlink(victim, path)
    elif kind == 'hard link':
        os.link(victim, path)
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        os.mkdir(path)
    elif kind == 'device':
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null
    elif kind == 'foreign owner':
        path.write_bytes(b'x')
        os.chown(path, 65534, 65534)


REFUSED = {
    'symlink': 'a symbolic link',
    'hard link': 'a hard link (2 names for one file)',
    'fifo': 'a FIFO',
    'directory': 'a directory',
    'device': 'a character device',
    'foreign owner': 'owned by uid 65534',
}


def test_a_regular_file_of_ours_is_a_base(tmp_path):
    base = tmp_path / ('a' * 40)
    base.write_bytes(b'x')
    assert base_entry.present(str(base)) is True
    assert base_entry.is_trusted(str(base)) is True


def test_nothing_there_is_no_base(tmp_path):
    assert base_entry.present(str(tmp_path / ('a' * 40))) is False


@pytest.mark.parametrize('kind', sorted(REFUSED))
def test_anything_else_is_refused_and_nothing_is_touched(tmp_path, victim,
                                                         kind):
    if kind in ('device', 'foreign owner') and os.geteuid() != 0:
        pytest.skip('making a device or another user\'s file needs root')
    path = tmp_path / ('a' * 40)
    _make(kind, path, victim)

    with pytest.raises(base_entry.UntrustedBaseEntry) as e:
        base_entry.present(str(path))

    assert REFUSED[kind] in str(e.value)
    assert str(path) in str(e.value)
    assert base_entry.is_trusted(str(path)) is False
    assert os.path.lexists(path)
    assert victim.read_bytes() == b'secret'
    assert os.stat(victim).st_mtime == 1000
