"""The TLS transport on a real rsync daemon behind a real stunnel:
certificates verified both ways, nothing in the clear."""

import subprocess

import pytest

from novaext.rsync import client as rsync_client
from novaext.rsync import tls as rsync_tls
from realhost import tls

INSTANCE = '11111111-2222-3333-4444-555555555555'


def _client(daemon, pki, host='127.0.0.1', **conf):
    pw = daemon['tmp'] / 'tls-client.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    opts = pki.client_conf(daemon['tls_port'], **conf)
    return rsync_client.RsyncDaemonClient(
        host, daemon['port'], 'nova_instances', 'nova', str(pw),
        io_timeout=10, connect_timeout=3,
        tls_client_config=rsync_tls.client_config(
            host, opts['rsync_tls_port'], opts['rsync_tls_cert_file'],
            opts['rsync_tls_key_file'], opts['rsync_tls_ca_file']))


def _payload(daemon):
    src = daemon['tmp'] / 'payload'
    src.write_bytes(b'novaext' * 1000)
    return src


def test_push_over_tls_with_certificates_both_ways(tls_daemon, pki):
    client = _client(tls_daemon, pki)
    client.make_dir(INSTANCE)
    client.push(str(_payload(tls_daemon)), INSTANCE, 'disk')
    assert (tls_daemon['instances'] / INSTANCE / 'disk').read_bytes() == \
        b'novaext' * 1000


def test_client_with_a_certificate_of_another_ca_is_refused(tls_daemon,
                                                             pki):
    client = _client(tls_daemon, pki, cert=pki.intruder)
    with pytest.raises(rsync_client.RsyncTransferError) as err:
        client.make_dir(INSTANCE)
    assert not (tls_daemon['instances'] / INSTANCE).exists()
    assert 'tlsv1 alert unknown ca' in str(err.value)


def test_server_not_signed_by_our_ca_is_refused(tls_daemon, pki):
    """The client trusts only the intruder's CA: the real server's
    certificate does not verify, nothing is sent."""
    client = _client(tls_daemon, pki, ca=pki.other_ca)
    with pytest.raises(rsync_client.RsyncTransferError) as err:
        client.make_dir(INSTANCE)
    assert 'certificate verify failed' in str(err.value)
    assert not (tls_daemon['instances'] / INSTANCE).exists()


def test_plain_rsync_reaches_neither_port(tls_daemon, pki):
    """No TLS: the TLS port speaks no rsync, and the daemon itself admits
    only stunnel on the loopback (a peer address is refused)."""
    pw = tls_daemon['tmp'] / 'plain.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    src = _payload(tls_daemon)
    for port, bind in ((tls_daemon['tls_port'], []),
                       (tls_daemon['port'], ['--address=127.0.0.2'])):
        result = subprocess.run(
            ['rsync', *bind, f'--password-file={pw}', '--contimeout=3',
             '--timeout=5', str(src),
             f'rsync://nova@127.0.0.1:{port}/nova_instances/{INSTANCE}/x'],
            capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, (port, result.stderr)
    assert not (tls_daemon['instances'] / INSTANCE).exists()


def test_server_certificate_must_name_the_address_dialled(tmp_path):
    """A server certificate of our CA, but for another address (the
    host's certificate names 127.0.0.2 only; it is dialled at 127.0.0.1):
    refused before anything is sent."""
    pki = tls.TlsPki(tmp_path / 'pki', addresses=('127.0.0.2',))
    instances = tmp_path / 'instances'
    instances.mkdir()
    daemon = tls.start_tls_daemon(tmp_path, instances, pki)
    try:
        with pytest.raises(rsync_client.RsyncTransferError) as err:
            _client(daemon, pki).make_dir(INSTANCE)
        assert 'certificate verify failed' in str(err.value), err.value
        assert not (instances / INSTANCE).exists()
    finally:
        tls.stop_tls_daemon(daemon)


def test_daemon_listens_on_the_loopback_only(tls_daemon):
    conf = (tls_daemon['tmp'] / 'tls-daemon' / 'rsyncd.conf').read_text()
    assert 'address = 127.0.0.1' in conf
    assert 'hosts allow = 127.0.0.1' in conf
