"""Remote paths and URLs of the rsync client; no network involved."""

import pytest

from novaext.virt import rsync_client


@pytest.mark.parametrize('components', [
    ('..',), ('.',), ('a', '..'), ('/etc',), ('a/b',), ('',),
    ('inst', 'disk; rm -rf /'), ('inst\n',), ('.hidden',), ('a b',),
    ('-rf',),
    ('inst', '-e sh'), (None,), ()])
def test_hostile_components_are_refused(components):
    with pytest.raises(rsync_client.InvalidRemotePath):
        rsync_client.remote_path(*components)


def test_base_dir_is_a_valid_component():
    assert rsync_client.remote_path('_base', 'a' * 40) == '_base/' + 'a' * 40


def test_valid_components_are_joined():
    assert rsync_client.remote_path(
        '0f6c4a2e-1d7b-4c1a-9a55-3a8b5c1e2d3f_resize', 'disk.local') == \
        '0f6c4a2e-1d7b-4c1a-9a55-3a8b5c1e2d3f_resize/disk.local'


def _client(host):
    return rsync_client.RsyncDaemonClient(host, 8730, 'nova_instances',
                                          'nova', '/nonexistent')


def test_url_for_ipv4_hostname_and_ipv6():
    assert _client('10.0.0.5').url('i', 'disk') == \
        'rsync://nova@10.0.0.5:8730/nova_instances/i/disk'
    assert _client('compute-2.example').url('i', directory=True) == \
        'rsync://nova@compute-2.example:8730/nova_instances/i/'
    assert _client('fd00::5').url('i') == \
        'rsync://nova@[fd00::5]:8730/nova_instances/i'


@pytest.mark.parametrize('host', ['-oProxyCommand=x', 'a b', '', 'h;x'])
def test_hostile_hosts_are_refused(host):
    with pytest.raises(rsync_client.InvalidRemotePath):
        _client(host)


def test_missing_password_file_is_a_clear_error_before_rsync_runs():
    calls = []
    client = rsync_client.RsyncDaemonClient(
        '127.0.0.1', 8730, 'm', 'nova', '/nonexistent/pw',
        execute=lambda *a, **k: calls.append(a))
    with pytest.raises(rsync_client.RsyncTransferError,
                       match='password file /nonexistent/pw is missing'):
        client.push('/tmp/x', 'i', 'disk')
    assert calls == []
