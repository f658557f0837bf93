"""rsyncd.conf rendering and validation of the [novaext] rsync options."""

import dataclasses

import pytest

from novaext import exception as novaext_exception
from novaext.rsync import daemon as rsync_daemon


def _settings(**overrides):
    values = dict(
        instances_path='/var/lib/nova/instances', module='nova_instances',
        port=873, auth_user='nova', secrets_file='/etc/novaext/s',
        hosts_allow=('10.0.0.0/24', 'compute-2'), use_chroot=True,
        uid='nova', gid='nova', config_file='/etc/novaext/rsyncd.conf',
        pid_file='/run/novaext-rsyncd.pid')
    values.update(overrides)
    return rsync_daemon.RsyncDaemonSettings(**values)


def _conf_lines(settings):
    return rsync_daemon.render_config(settings).splitlines()


def test_module_is_rooted_at_instances_path_and_authenticated():
    lines = _conf_lines(_settings())
    module = lines[lines.index('[nova_instances]'):]
    assert 'path = /var/lib/nova/instances' in module
    assert 'auth users = nova' in module
    assert 'secrets file = /etc/novaext/s' in module
    assert 'strict modes = yes' in module


def test_only_compute_hosts_are_allowed():
    lines = _conf_lines(_settings())
    assert 'hosts allow = 10.0.0.0/24 compute-2' in lines
    assert lines.index('hosts deny = *') > lines.index(
        'hosts allow = 10.0.0.0/24 compute-2')


def test_the_daemon_turns_nagle_off():
    assert 'socket options = TCP_NODELAY' in _conf_lines(_settings())


def test_chroot_follows_the_option():
    assert 'use chroot = no' in _conf_lines(_settings(use_chroot=False))
    assert 'use chroot = yes' in _conf_lines(_settings())


@pytest.mark.parametrize('entry', [
    '10.0.0.1 *', '*', 'host;rm', '', 'a\nauth users = x'])
def test_hostile_hosts_allow_entries_are_refused(entry):
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError):
        _settings(hosts_allow=(entry,))


def test_empty_hosts_allow_is_refused():
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError, match='empty'):
        _settings(hosts_allow=())


@pytest.mark.parametrize('field', ['secrets_file', 'config_file',
                                   'pid_file', 'instances_path'])
def test_relative_paths_are_refused(field):
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError):
        _settings(**{field: 'relative/path'})


def test_write_config_replaces_file_atomically(tmp_path):
    settings = _settings(config_file=str(tmp_path / 'rsyncd.conf'))
    (tmp_path / 'rsyncd.conf').write_text('stale')
    rsync_daemon.write_config(settings)
    assert (tmp_path / 'rsyncd.conf').read_text() == \
        rsync_daemon.render_config(settings)
    assert [p.name for p in tmp_path.iterdir()] == ['rsyncd.conf']


def test_settings_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _settings().port = 1


def _module(lines, name):
    start = lines.index(f'[{name}]')
    rest = lines[start + 1:]
    end = next((i for i, line in enumerate(rest) if line.startswith('[')),
               len(rest))
    return rest[:end]


def test_instances_module_takes_pushes_into_instance_dirs_only():
    module = _module(_conf_lines(_settings()), 'nova_instances')
    assert 'path = /var/lib/nova/instances' in module
    assert 'write only = yes' in module
    assert 'read only = no' in module
    assert 'list = no' in module
    uuid_dir = '/????????-????-????-????-????????????'
    assert f'filter = + {uuid_dir} + {uuid_dir}/** - *' in module


def test_base_module_serves_base_names_read_only_and_lists_nothing():
    module = _module(_conf_lines(_settings()), 'nova_base')
    assert 'path = /var/lib/nova/instances/_base' in module
    assert 'read only = yes' in module
    assert 'write only = no' in module
    assert 'list = no' in module
    assert 'refuse options = list-only dirs recursive' in module
    sha1 = '/' + '[0-9a-f]' * 40
    assert (f'filter = + {sha1} + {sha1}_[0-9]* + {sha1}.verified - *'
            in module)


def test_both_modules_authenticate_and_admit_only_compute_hosts():
    lines = _conf_lines(_settings())
    for name in ('nova_instances', 'nova_base'):
        module = _module(lines, name)
        assert 'auth users = nova' in module
        assert 'secrets file = /etc/novaext/s' in module
        assert 'hosts allow = 10.0.0.0/24 compute-2' in module
        assert 'hosts deny = *' in module


def test_one_name_for_both_modules_is_refused():
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError, match='differ'):
        _settings(base_module='nova_instances')


@pytest.mark.parametrize('subdir', ['../etc', 'a/b', '', '.hidden'])
def test_image_cache_subdirectory_must_be_a_plain_name(subdir):
    with pytest.raises(rsync_daemon.RsyncDaemonConfigError):
        _settings(base_subdir=subdir)


def test_a_daemon_that_never_answers_is_a_clear_error(tmp_path, monkeypatch):
    secrets = tmp_path / 's'
    secrets.write_text('nova:x\n')
    settings = _settings(secrets_file=str(secrets),
                         config_file=str(tmp_path / 'rsyncd.conf'),
                         pid_file=str(tmp_path / 'rsyncd.pid'))
    started = []
    monkeypatch.setattr(rsync_daemon.processutils, 'execute',
                        lambda *argv: started.append(argv))
    monkeypatch.setattr(rsync_daemon.time, 'sleep', lambda s: None)

    with pytest.raises(novaext_exception.DaemonDidNotStart,
                       match=r'the rsync daemon \(port 873\) did not start; '
                             'see syslog'):
        rsync_daemon.start(settings)
    assert started and started[0][:2] == ('rsync', '--daemon')
