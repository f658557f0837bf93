"""Making a base at most once per host (novaext.imagebackend.base_once)."""

import os
import threading

import pytest

from novaext.imagebackend import base_entry
from novaext.imagebackend import base_once


def test_a_base_is_made_once_and_checked_when_present(tmp_path):
    base = tmp_path / '_base' / 'b'
    made, checked = [], []
    barrier = threading.Barrier(4)

    def make(path):
        made.append(path)
        with base_once.written_whole(path) as part:
            with open(part, 'wb') as f:
                f.write(b'base')

    def worker():
        barrier.wait()
        base_once.make_once(str(base), 'b', str(tmp_path / 'locks'), make,
                            when_present=checked.append)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [str(base)]
    assert checked == [str(base)] * 3
    assert base.read_bytes() == b'base'


def test_a_failed_write_leaves_neither_base_nor_part(tmp_path):
    base = tmp_path / 'b'
    with pytest.raises(OSError):
        with base_once.written_whole(str(base)) as part:
            with open(part, 'wb') as f:
                f.write(b'half')
            raise OSError('disk full')
    assert os.listdir(tmp_path) == []


def test_something_that_is_not_a_base_is_refused_not_replaced(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'secret')
    os.symlink(victim, tmp_path / 'b')
    with pytest.raises(base_entry.UntrustedBaseEntry):
        base_once.make_once(str(tmp_path / 'b'), 'b', str(tmp_path),
                            make=lambda path: pytest.fail('made'))
    assert victim.read_bytes() == b'secret'
