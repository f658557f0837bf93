"""The base pull from a peer and the destination's re-pointing refuse a
``_base`` entry that is not a base, before anything goes through it."""

import json
import os
import subprocess
from unittest import mock

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from novaext import conf as novaext_conf
from novaext.imagebackend import base_entry
from novaext.imagebackend import base_from_host
from novaext.resize import dest as resize_dest

CONF = cfg.CONF
SHA1 = 'a' * 40


@pytest.fixture
def instances(tmp_path):
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    novaext_conf.register_opts(CONF)
    path = tmp_path / 'instances'
    (path / '_base').mkdir(parents=True)
    CONF.set_override('instances_path', str(path))
    yield path
    fixture.cleanUp()


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / 'victim'
    path.write_bytes(b'secret')
    return path


def test_pull_refuses_a_symlink_under_the_base_name(instances, victim):
    os.symlink(victim, instances / '_base' / SHA1)
    with mock.patch.object(base_from_host.rsync_client.RsyncDaemonClient,
                           'pull_base') as pull:
        with pytest.raises(base_entry.UntrustedBaseEntry):
            base_from_host.pull_base(None, mock.Mock(uuid='u'),
                                     '192.0.2.7', SHA1, None,
                                     str(instances / 'locks'))
    pull.assert_not_called()
    assert victim.read_bytes() == b'secret'


@pytest.mark.host
def test_repoint_refuses_a_destination_base_that_is_a_symlink(
        instances, victim, tmp_path):
    """An arrived overlay names base SHA1; this host's _base/SHA1 is a
    link elsewhere: the overlay is not pointed at it."""
    source_base = tmp_path / 'source-base'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw',
                    str(source_base), '1M'], check=True)
    uuid = '11111111-2222-3333-4444-555555555555'
    inst_dir = instances / uuid
    inst_dir.mkdir()
    disk = inst_dir / 'disk'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
                    str(source_base), '-F', 'raw', str(disk)], check=True)
    os.symlink(source_base, instances / '_base' / SHA1)
    subprocess.run(['qemu-img', 'rebase', '-u', '-f', 'qcow2', '-b',
                    f'/elsewhere/_base/{SHA1}', '-F', 'raw', str(disk)],
                   check=True)
    instance = mock.Mock(uuid=uuid)
    instance.name = uuid
    disk_info = json.dumps([{'path': str(disk), 'type': 'qcow2',
                             'backing_file': SHA1}])

    with mock.patch.object(resize_dest.libvirt_utils, 'get_instance_path',
                           return_value=str(inst_dir)):
        with pytest.raises(base_entry.UntrustedBaseEntry):
            resize_dest.repoint_overlays(instance, disk_info)

    out = subprocess.run(['qemu-img', 'info', '-U', '--output=json',
                          str(disk)], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out)['backing-filename'] == f'/elsewhere/_base/{SHA1}'
