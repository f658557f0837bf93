"""novaext-status upgrade check: each check on a host set up to pass it,
then on one set up to fail it (real files, real openssl; the daemon and
rsync's version are stand-ins where the unit tier has none)."""

import os
import subprocess
import types

import pytest
from oslo_upgradecheck import upgradecheck

from novaext import nova_internals
from novaext.cmd import rsyncd as rsyncd_cmd
from novaext.cmd import status
from novaext.rsync import daemon as rsync_daemon
from realhost import tls

Code = upgradecheck.Code
SHA1 = 'a' * 40


@pytest.fixture
def host(tmp_path):
    """A compute host's files and a nova.conf naming them; ``write``
    rewrites the nova.conf with more [novaext] lines."""
    instances = tmp_path / 'instances'
    (instances / '_base').mkdir(parents=True)
    for name in ('secrets', 'password'):
        (tmp_path / name).write_text('nova:x\n')
        (tmp_path / name).chmod(0o600)

    def write(**novaext):
        lines = [f'{k} = {v}' for k, v in {
            'rsync_secrets_file': tmp_path / 'secrets',
            'rsync_password_file': tmp_path / 'password',
            'rsyncd_config_file': tmp_path / 'rsyncd.conf',
            'rsyncd_pid_file': tmp_path / 'rsyncd.pid',
            'rsync_hosts_allow': '127.0.0.1',
            'rsync_address': '127.0.0.1', **novaext}.items()]
        path = tmp_path / 'nova.conf'
        path.write_text(f'[DEFAULT]\ninstances_path = {instances}\n'
                        '[novaext]\n' + '\n'.join(lines) + '\n')
        conf = rsyncd_cmd.build_conf()
        conf(args=['--config-file', str(path)], project='nova',
             default_config_files=[])
        return status.Checks(conf)

    return types.SimpleNamespace(dir=tmp_path, instances=instances,
                                 write=write)


def test_nova_names(host, monkeypatch):
    checks = host.write()
    assert checks._check_nova_names().code == Code.SUCCESS
    monkeypatch.setattr(nova_internals, 'PINNED_NAMES', (
        nova_internals.PinnedName(
            'nova.virt.libvirt.driver.LibvirtDriver', '_gone_in_nova_35',
            (), 'call', 'test'),))
    result = checks._check_nova_names()
    assert result.code == Code.FAILURE and '_gone_in_nova_35' in \
        result.details


@pytest.mark.parametrize('version, code', [
    ('rsync  version 3.2.7  protocol version 31', Code.SUCCESS),
    ('rsync  version 3.5.0  protocol version 32', Code.SUCCESS),
    ('rsync  version 3.2.3  protocol version 31', Code.FAILURE),
    ('rsync  version 3.1.3  protocol version 31', Code.FAILURE),
])
def test_rsync_version(host, version, code):
    checks = host.write()
    checks._run = lambda *a, **k: types.SimpleNamespace(stdout=version)
    assert checks._check_rsync_version().code == code


@pytest.mark.host
def test_the_installed_rsync_is_recent_enough(host):
    assert host.write()._check_rsync_version().code == Code.SUCCESS


def test_daemon(host, monkeypatch):
    checks = host.write()
    assert checks._check_daemon().code == Code.FAILURE  # none runs
    monkeypatch.setattr(rsync_daemon, 'running_pid', lambda s: 4242)
    monkeypatch.setattr(rsync_daemon, 'answers', lambda s, a: True)
    rsync_daemon.write_config(checks._settings())
    assert checks._check_daemon().code == Code.SUCCESS
    # nova.conf changed since the daemon started
    assert host.write(rsync_port=8873)._check_daemon().code == Code.WARNING


def test_instances_path_of_nova_and_the_daemon(host, tmp_path):
    checks = host.write()
    assert checks._check_instances_path().code == Code.WARNING  # no config
    rsync_daemon.write_config(checks._settings())
    assert checks._check_instances_path().code == Code.SUCCESS
    text = (tmp_path / 'rsyncd.conf').read_text()
    (tmp_path / 'rsyncd.conf').write_text(text.replace(
        f'path = {host.instances}\n', 'path = /var/lib/nova/instances\n', 1))
    result = checks._check_instances_path()
    assert result.code == Code.FAILURE
    assert '/var/lib/nova/instances' in result.details


def test_secret_files(host):
    checks = host.write()
    assert checks._check_secret_files().code == Code.SUCCESS
    (host.dir / 'password').chmod(0o644)
    result = checks._check_secret_files()
    assert result.code == Code.FAILURE and 'chmod 600' in result.details
    (host.dir / 'password').chmod(0o600)
    os.unlink(host.dir / 'secrets')
    assert checks._check_secret_files().code == Code.FAILURE


def test_the_daemons_secrets_may_be_roots_the_password_not(host,
                                                           monkeypatch):
    """nova-compute runs as nova (uid 4242 here); the shipped unit runs
    the daemon as root, whose secrets file is root's (the files here are
    this test's, uid 0 when run as root)."""
    checks = host.write()
    owner = os.stat(host.dir / 'secrets').st_uid
    monkeypatch.setattr(os, 'getuid', lambda: 4242)
    result = checks._check_secret_files()
    if owner == 0:
        assert 'rsync_secrets_file' not in result.details
    assert result.code == Code.FAILURE
    assert 'rsync_password_file' in result.details
    assert 'nova-compute (the user checking) reads it (uid 4242)' in \
        result.details


def _tls_options(cert, ca):
    return {'rsync_transport': 'tls', 'rsync_tls_cert_file': cert[0],
            'rsync_tls_key_file': cert[1], 'rsync_tls_ca_file': ca[0]}


def test_tls_certificate(host):
    pki = host.dir / 'pki'
    pki.mkdir()
    ca = tls.make_ca(pki, 'ca')
    good = tls.make_host_cert(pki, 'good', ca, days=365)
    short = tls.make_host_cert(pki, 'short', ca, days=2)
    other = tls.make_host_cert(pki, 'other', tls.make_ca(pki, 'other-ca'),
                               days=365)
    elsewhere = tls.make_host_cert(pki, 'elsewhere', ca, ('10.0.0.9',),
                                   days=365)

    assert host.write()._check_tls().code == Code.SUCCESS  # plain
    assert host.write(**_tls_options(good, ca))._check_tls().code == \
        Code.SUCCESS
    assert host.write(**_tls_options(short, ca))._check_tls().code == \
        Code.WARNING
    assert host.write(**_tls_options(other, ca))._check_tls().code == \
        Code.FAILURE
    result = host.write(**_tls_options(elsewhere, ca))._check_tls()
    assert result.code == Code.FAILURE and '127.0.0.1' in result.details


def test_image_cache_entries(host):
    base = host.instances / '_base'
    for name in (SHA1, SHA1 + '.verified', SHA1 + '_20', 'swap_512',
                 'ephemeral_10_40d1321', SHA1 + '.part',
                 SHA1 + '.quarantined-20261207T010203.000001Z'):
        (base / name).write_bytes(b'')
    checks = host.write()
    assert checks._check_base_entries().code == Code.SUCCESS
    (base / 'debian.iso').write_bytes(b'')
    result = checks._check_base_entries()
    assert result.code == Code.WARNING and 'debian.iso' in result.details


@pytest.mark.host
def test_the_command_exits_with_the_worst_code(host):
    host.write()
    out = subprocess.run(
        [os.path.join(os.path.dirname(__import__('sys').executable),
                      'novaext-status'), '--config-file',
         str(host.dir / 'nova.conf'), 'upgrade', 'check'],
        capture_output=True, text=True)
    assert out.returncode == Code.FAILURE, out.stdout + out.stderr
    assert 'rsync daemon' in out.stdout and 'Failure' in out.stdout
