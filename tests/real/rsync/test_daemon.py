"""novaext-rsyncd runs a real rsync daemon that admits only whom it should."""

import subprocess

import pytest

INSTANCE = '11111111-2222-3333-4444-555555555555'


def _push(daemon, password, name=INSTANCE + '/pushed', source_address=None):
    src = daemon['tmp'] / 'payload'
    src.write_bytes(b'novaext' * 1000)
    pw = daemon['tmp'] / f'pw-{password}'
    pw.write_text(password)
    pw.chmod(0o600)
    bind = [f'--address={source_address}'] if source_address else []
    return subprocess.run(
        ['rsync', *bind, f'--password-file={pw}', str(src),
         f'rsync://nova@127.0.0.1:{daemon["port"]}/nova_instances/{name}'],
        capture_output=True, text=True, timeout=30)


def test_check_reports_running_daemon(daemon):
    out = subprocess.run(daemon['cmd'] + ['check'], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'pid {daemon["pid"]}' in out.stdout


def test_start_twice_keeps_the_running_daemon(daemon):
    again = subprocess.run(daemon['cmd'] + ['start'], check=True, text=True,
                           capture_output=True).stdout
    assert int(again) == daemon['pid']


def test_right_secret_writes_into_instances_path(daemon):
    (daemon['instances'] / INSTANCE).mkdir()
    result = _push(daemon, 'right-secret')
    assert result.returncode == 0, result.stderr
    assert (daemon['instances'] / INSTANCE / 'pushed').read_bytes() == \
        b'novaext' * 1000


def test_wrong_secret_is_refused_and_writes_nothing(daemon):
    result = _push(daemon, 'wrong-secret')
    assert result.returncode != 0
    assert 'auth failed' in result.stderr
    assert list(daemon['instances'].iterdir()) == []


def test_path_outside_module_is_not_reachable(daemon):
    result = _push(daemon, 'right-secret', name='../escaped')
    assert not (daemon['tmp'] / 'escaped').exists()
    assert result.returncode != 0 or (daemon['instances'] /
                                      'escaped').exists()


def test_host_not_in_hosts_allow_is_refused(daemon):
    result = _push(daemon, 'right-secret', source_address='127.0.0.2')
    assert result.returncode != 0
    # With 'list = no' rsync hides the module from a host it refuses.
    assert ('access denied' in result.stderr
            or "Unknown module 'nova_instances'" in result.stderr)
    assert list(daemon['instances'].iterdir()) == []


# -- least privilege: what a peer holding the secret still cannot do ----
SHA1 = 'ab' * 20


@pytest.fixture
def peer(daemon):
    """A peer with the right secret, and a host with an instance disk and
    a base (plus a partial download) to protect."""
    inst = daemon['instances'] / INSTANCE
    inst.mkdir()
    (inst / 'disk').write_bytes(b'tenant data')
    base_dir = daemon['instances'] / '_base'
    base_dir.mkdir()
    (base_dir / SHA1).write_bytes(b'image bytes')
    (base_dir / (SHA1 + '.part')).write_bytes(b'half')
    (base_dir / 'ephemeral_1_0706d66').write_bytes(b'mkfs')
    pw = daemon['tmp'] / 'peer.password'
    pw.write_text('right-secret')
    pw.chmod(0o600)
    url = f'rsync://nova@127.0.0.1:{daemon["port"]}'

    def rsync(*args):
        return subprocess.run(['rsync', f'--password-file={pw}', *args],
                              capture_output=True, text=True, timeout=30)
    return {'rsync': rsync, 'url': url, 'tmp': daemon['tmp'],
            'instances': daemon['instances'], 'base_dir': base_dir}


def test_peer_reads_a_base_by_name(peer):
    got = peer['tmp'] / 'got'
    result = peer['rsync'](f'{peer["url"]}/nova_base/{SHA1}', str(got))
    assert result.returncode == 0, result.stderr
    assert got.read_bytes() == b'image bytes'


def test_peer_cannot_read_an_instance_disk(peer):
    got = peer['tmp'] / 'stolen'
    result = peer['rsync'](f'{peer["url"]}/nova_instances/{INSTANCE}/disk',
                           str(got))
    assert result.returncode != 0
    assert 'module is write only' in result.stderr
    assert not got.exists()


def test_peer_cannot_list_the_modules_or_their_contents(peer):
    modules = peer['rsync'](f'{peer["url"]}/')
    assert 'nova_instances' not in modules.stdout
    assert 'nova_base' not in modules.stdout
    instances = peer['rsync'](f'{peer["url"]}/nova_instances/')
    assert instances.returncode != 0
    assert 'module is write only' in instances.stderr
    assert INSTANCE not in instances.stdout
    bases = peer['rsync'](f'{peer["url"]}/nova_base/')
    assert bases.returncode != 0
    assert 'refuse --dirs' in bases.stderr
    assert SHA1 not in bases.stdout
    recursive = peer['rsync']('-r', f'{peer["url"]}/nova_base/',
                              str(peer['tmp'] / 'all'))
    assert recursive.returncode != 0
    assert 'refuse --recursive' in recursive.stderr


@pytest.mark.parametrize('path', [
    SHA1 + '.part', 'ephemeral_1_0706d66', f'../{INSTANCE}/disk',
    f'../../{INSTANCE}/disk'])
def test_peer_cannot_read_anything_but_a_base(peer, path):
    got = peer['tmp'] / 'got'
    result = peer['rsync'](f'{peer["url"]}/nova_base/{path}', str(got))
    assert result.returncode != 0
    assert 'No such file or directory' in result.stderr
    assert not got.exists()


def test_peer_cannot_write_into_the_image_cache(peer):
    evil = peer['tmp'] / 'evil'
    evil.write_bytes(b'poison')
    through_instances = peer['rsync'](
        str(evil), f'{peer["url"]}/nova_instances/_base/{SHA1}')
    assert through_instances.returncode != 0
    assert 'daemon has excluded destination' in through_instances.stderr
    through_base = peer['rsync'](str(evil), f'{peer["url"]}/nova_base/{SHA1}')
    assert through_base.returncode != 0
    assert 'module is read only' in through_base.stderr
    assert (peer['base_dir'] / SHA1).read_bytes() == b'image bytes'


@pytest.mark.parametrize('target', [
    'locks/evil', 'compute_nodes', f'{INSTANCE}_resize/disk', 'evil'])
def test_peer_writes_nowhere_but_into_instance_directories(peer, target):
    evil = peer['tmp'] / 'evil'
    evil.write_bytes(b'poison')
    result = peer['rsync']('--mkpath', str(evil),
                           f'{peer["url"]}/nova_instances/{target}')
    assert result.returncode != 0
    assert 'daemon has excluded destination' in result.stderr
    assert not (peer['instances'] / target).exists()
