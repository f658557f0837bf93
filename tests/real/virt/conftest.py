"""Fixtures shared by the copy-channel tests."""

import pytest

from realhost import tls


@pytest.fixture
def pki(tmp_path):
    """A compute CA with a host certificate, and an intruder's CA."""
    return tls.TlsPki(tmp_path / 'pki')


@pytest.fixture
def tls_daemon(tmp_path, pki):
    """A daemon on ``tmp_path/instances`` behind stunnel (TLS)."""
    instances = tmp_path / 'instances'
    instances.mkdir()
    daemon = tls.start_tls_daemon(tmp_path, instances, pki)
    try:
        yield daemon
    finally:
        tls.stop_tls_daemon(daemon)
