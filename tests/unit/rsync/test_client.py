"""Remote paths and URLs of the rsync client; no network involved."""

import pytest

from novaext.rsync import client as rsync_client


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


def test_service_host_names_with_underscores_are_hosts():
    assert _client('compute_2.example').url('i') == \
        'rsync://nova@compute_2.example:8730/nova_instances/i'


@pytest.mark.parametrize('host', ['-oProxyCommand=x', 'a b', '', 'h;x',
                                  '_x', 'x-'])
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


@pytest.mark.parametrize('update, expected', [
    (b'     32,768   0%    0.00kB/s    0:00:00', (32768, 0)),
    (b'    209,715,200 100%  150.00MB/s    0:00:01 (xfr#1, to-chk=0/1)',
     (209715200, 100)),
    (b'Number of files: 1 (reg: 1)', None),
    (b'', None),
])
def test_progress2_updates_are_parsed(update, expected):
    assert rsync_client.parse_progress(update) == expected


def test_push_asks_for_fsync_and_the_configured_bandwidth_limit(tmp_path):
    pw = tmp_path / 'pw'
    pw.write_text('x')
    calls = []

    def execute(*cmd):
        calls.append(cmd)
        return 'Total bytes sent: 1,024\n', ''

    client = rsync_client.RsyncDaemonClient(
        '127.0.0.1', 8730, 'm', 'nova', str(pw), bwlimit_kib=2048,
        execute=execute)
    assert client.push('/tmp/x', 'i', 'disk') == 1024
    assert '--fsync' in calls[0] and '--bwlimit=2048' in calls[0]
    assert not any('x' == arg for arg in calls[0])  # the password


def test_plain_connections_turn_nagle_off_tls_leaves_it_to_stunnel(tmp_path):
    """rsync's small messages each waited for a delayed ACK (0.1 s per
    connection) until TCP_NODELAY; through stunnel, rsync's end is a
    pipe and stunnel sets it on its sockets."""
    pw = tmp_path / 'pw'
    pw.write_text('x')
    calls = []

    def execute(*cmd, **kwargs):
        calls.append(cmd)
        return 'Total bytes sent: 1,024\n', ''

    plain = rsync_client.RsyncDaemonClient('127.0.0.1', 8730, 'm', 'nova',
                                           str(pw), execute=execute)
    tls = rsync_client.RsyncDaemonClient('127.0.0.1', 8730, 'm', 'nova',
                                         str(pw), execute=execute,
                                         tls_client_config='client = yes\n')
    plain.push('/tmp/x', 'i', 'disk')
    tls.push('/tmp/x', 'i', 'disk')
    assert '--sockopts=TCP_NODELAY' in calls[0]
    assert not any(arg.startswith('--sockopts') for arg in calls[1])


def test_a_progress_callback_that_raises_stops_the_transfer():
    """What on_progress raises (e.g. space.NotEnoughSpace) ends the
    process at once and reaches the caller unchanged."""
    started = []

    class Stop(Exception):
        pass

    def on_progress(done, percent=None):
        raise Stop(done)

    cmd = ['sh', '-c', 'echo "     32,768   5%    0.00kB/s    0:00:00"; '
           'exec sleep 60']
    with pytest.raises(Stop):
        rsync_client._execute_streaming(cmd, on_progress,
                                        on_execute=started.append)
    (proc,) = started
    assert proc.returncode == -9
