"""Nova's remotefs calls mapped onto rsync-module paths."""

import pytest
from oslo_config import cfg

from novaext.rsync import client as rsync_client
from novaext.rsync import remotefs as daemon_remotefs


class RecordingClient:
    def __init__(self, host, calls):
        self.host, self.calls = host, calls

    def __getattr__(self, name):
        return lambda *components: self.calls.append(
            (self.host, name, components))


@pytest.fixture
def remotefs():
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt('instances_path'))
    conf([])
    conf.set_override('instances_path', '/var/lib/nova/instances')
    calls = []
    fs = daemon_remotefs.DaemonRemoteFilesystem(
        conf, client_factory=lambda host: RecordingClient(host, calls))
    return fs, calls


def test_nova_calls_become_module_relative(remotefs):
    fs, calls = remotefs
    fs.create_dir('dest', '/var/lib/nova/instances/u1')
    fs.create_file('dest', '/var/lib/nova/instances/u1/abc.tmp')
    fs.remove_file('dest', '/var/lib/nova/instances/u1/abc.tmp')
    fs.remove_dir('dest', '/var/lib/nova/instances/u1_resize')
    assert calls == [
        ('dest', 'make_dir', ('u1',)),
        ('dest', 'create_empty_file', ('u1', 'abc.tmp')),
        ('dest', 'remove', ('u1', 'abc.tmp')),
        ('dest', 'remove', ('u1_resize',)),
    ]


@pytest.mark.parametrize('path', [
    '/etc/passwd', '/var/lib/nova/instances', '/var/lib/nova/instances/',
    '/var/lib/nova/instances/../x', '/var/lib/nova/instancesX/u1'])
def test_paths_outside_instances_path_are_refused(remotefs, path):
    fs, calls = remotefs
    with pytest.raises(rsync_client.InvalidRemotePath):
        fs.remove_dir('dest', path)
    assert calls == []
