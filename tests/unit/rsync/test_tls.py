"""The TLS transport's pieces: stunnel's config, the client's connect
program, and the daemon config behind stunnel."""

import shlex

import pytest

from novaext.rsync import daemon as rsync_daemon
from novaext.rsync import tls as rsync_tls


def _settings(**overrides):
    values = dict(
        instances_path='/var/lib/nova/instances', module='nova_instances',
        port=873, auth_user='nova', secrets_file='/etc/novaext/s',
        hosts_allow=('10.0.0.0/24',), use_chroot=True, uid='nova',
        gid='nova', config_file='/etc/novaext/rsyncd.conf',
        pid_file='/run/novaext-rsyncd.pid', address='10.0.0.5',
        transport='tls', tls_port=874, tls_cert_file='/etc/t/host.pem',
        tls_key_file='/etc/t/host.key', tls_ca_file='/etc/t/ca.pem',
        stunnel_config_file='/etc/t/stunnel.conf',
        stunnel_pid_file='/run/t.pid')
    values.update(overrides)
    return rsync_daemon.RsyncDaemonSettings(**values)


def test_stunnel_requires_a_client_certificate_of_our_ca():
    conf = rsync_tls.render_stunnel_config(_settings()).splitlines()
    assert 'accept = 10.0.0.5:874' in conf
    assert 'connect = 127.0.0.1:873' in conf
    assert 'CAfile = /etc/t/ca.pem' in conf
    assert 'requireCert = yes' in conf
    assert 'verifyChain = yes' in conf
    assert 'sslVersionMin = TLSv1.2' in conf


def test_behind_stunnel_the_daemon_admits_the_loopback_only():
    lines = rsync_daemon.render_config(_settings()).splitlines()
    assert 'address = 127.0.0.1' in lines
    assert 'hosts allow = 10.0.0.0/24' not in lines
    assert lines.count('hosts allow = 127.0.0.1') == 2  # both modules


def test_plain_keeps_its_address_and_hosts():
    lines = rsync_daemon.render_config(
        _settings(transport='plain')).splitlines()
    assert 'address = 10.0.0.5' in lines
    assert 'hosts allow = 10.0.0.0/24' in lines


@pytest.mark.parametrize('field', ['tls_cert_file', 'tls_key_file',
                                   'tls_ca_file', 'stunnel_pid_file'])
def test_tls_needs_absolute_paths(field):
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError):
        _settings(**{field: None})


def test_tls_port_must_not_be_the_daemon_port():
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError, match='differ'):
        _settings(tls_port=873)


@pytest.mark.parametrize('host, check, connect', [
    ('10.0.0.7', 'checkIP = 10.0.0.7', 'connect = 10.0.0.7:874'),
    ('fd00::7', 'checkIP = fd00::7', 'connect = [fd00::7]:874'),
    ('compute-2.example', 'checkHost = compute-2.example',
     'connect = compute-2.example:874')])
def test_client_verifies_the_peer_it_dials(host, check, connect):
    conf = rsync_tls.client_config(host, 874, '/etc/t/host.pem',
                                   '/etc/t/host.key', '/etc/t/ca.pem')
    lines = conf.splitlines()
    assert check in lines and connect in lines
    assert 'client = yes' in lines
    assert 'verifyChain = yes' in lines
    assert 'CAfile = /etc/t/ca.pem' in lines
    assert 'cert = /etc/t/host.pem' in lines
    assert not any(line.startswith('[') for line in lines)  # inetd mode


def test_a_newline_cannot_inject_client_settings():
    with pytest.raises(rsync_tls.RsyncTlsConfigError):
        rsync_tls.client_config('10.0.0.7', 874, '/etc/t/h.pem\nverifyChain'
                                ' = no', '/etc/t/k', '/etc/t/ca.pem')


def test_connect_program_quotes_the_config_path():
    prog = rsync_tls.connect_program('/tmp/a b;rm -rf x/client.conf')
    assert shlex.split(prog) == ['stunnel', '/tmp/a b;rm -rf x/client.conf']


def test_client_files_must_be_readable(tmp_path):
    cert = tmp_path / 'c.pem'
    cert.write_text('x')
    with pytest.raises(rsync_tls.RsyncTlsConfigError, match='key'):
        rsync_tls.check_files(str(cert), str(tmp_path / 'missing.key'),
                              str(cert))
