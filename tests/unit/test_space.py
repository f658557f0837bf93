"""novaext.space on this machine's own file system (statvfs)."""

import os

import pytest
from oslo_utils import units

from novaext import space


def _reserve(tmp_path, start):
    return space.Reserve(str(tmp_path), start, 'The pre-copy',
                         '[novaext]resize_precopy_min_free_mib')


def test_free_bytes_is_what_statvfs_says_a_user_can_allocate(tmp_path):
    st = os.statvfs(tmp_path)
    assert space.free_bytes(str(tmp_path)) == st.f_bavail * st.f_frsize


def test_a_reserve_beyond_the_free_space_cannot_start(tmp_path):
    free = space.free_bytes(str(tmp_path))
    short = _reserve(tmp_path, free + units.Gi).shortage_to_start()
    assert isinstance(short, space.NotEnoughSpace)
    assert str(short).startswith(
        f'The pre-copy needs {(free + units.Gi) // units.Mi} MiB free on '
        f'the file system of {tmp_path}, which has ')
    assert 'lower [novaext]resize_precopy_min_free_mib' in str(short)
    assert _reserve(tmp_path, units.Mi).shortage_to_start() is None


def test_the_watch_stops_a_push_below_half_the_reserve(tmp_path):
    free = space.free_bytes(str(tmp_path))
    seen = []
    kept = _reserve(tmp_path, free).watching(
        lambda done, percent=None: seen.append((done, percent)))
    kept(10, percent=1)
    assert seen == [(10, 1)]

    lost = _reserve(tmp_path, 2 * free + 4 * units.Gi).watching(
        lambda done, percent=None: seen.append((done, percent)))
    with pytest.raises(space.NotEnoughSpace, match='needs .* MiB free'):
        lost(20, percent=2)
    assert seen == [(10, 1)]
