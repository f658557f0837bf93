"""RsyncDaemonClient against a real rsync daemon started by novaext-rsyncd."""

import os
import subprocess

import pytest

from novaext.rsync import client as rsync_client
from tests.real.imagebackend import images

# Instance directory names (uuids: the only names the daemon takes).
INST = {n: f'00000000-0000-0000-0000-{n:012d}' for n in range(1, 9)}


def _client(daemon, password='right-secret', port=None):  # noqa: F811
    pw = daemon['tmp'] / f'client-password-{len(os.listdir(daemon["tmp"]))}'
    pw.write_text(password)
    pw.chmod(0o600)
    return rsync_client.RsyncDaemonClient(
        '127.0.0.1', port or daemon['port'], 'nova_instances', 'nova',
        str(pw), io_timeout=10, connect_timeout=3)


def _overlay(tmp_path, written_mib=8):
    path = tmp_path / 'overlay.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path),
                    '2G'], check=True)
    images.qemu_io(path, 'qcow2', f'write -P 0x11 0 {written_mib}M')
    return path


def test_push_overlay_sends_about_its_allocation(daemon):  # noqa: F811
    overlay = _overlay(daemon['tmp'])
    client = _client(daemon)
    client.make_dir(INST[1])

    sent = client.push(str(overlay), INST[1], 'disk')

    pushed = daemon['instances'] / INST[1] / 'disk'
    assert pushed.read_bytes() == overlay.read_bytes()
    allocated = os.stat(overlay).st_blocks * 512
    assert sent <= 1.05 * allocated
    assert sent >= 8 * 1024 ** 2


def test_sparse_push_keeps_holes(daemon):  # noqa: F811
    raw = daemon['tmp'] / 'disk.raw'
    with open(raw, 'wb') as f:
        f.truncate(512 * 1024 ** 2)
        f.write(b'x' * 4096)
    client = _client(daemon)
    client.make_dir(INST[2])
    client.push(str(raw), INST[2], 'disk', sparse=True)
    pushed = daemon['instances'] / INST[2] / 'disk'
    assert os.path.getsize(pushed) == 512 * 1024 ** 2
    assert os.stat(pushed).st_blocks * 512 < 1024 ** 2


def test_wrong_secret_is_a_clear_error(daemon):  # noqa: F811
    client = _client(daemon, password='wrong')
    with pytest.raises(rsync_client.RsyncTransferError,
                       match='auth failed'):
        client.make_dir(INST[3])
    assert not (daemon['instances'] / INST[3]).exists()


def test_dead_daemon_is_a_clear_error(daemon):  # noqa: F811
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        closed_port = s.getsockname()[1]
    client = _client(daemon, port=closed_port)
    with pytest.raises(rsync_client.RsyncTransferError,
                       match='Connection refused'):
        client.push(str(_overlay(daemon['tmp'])), INST[4], 'disk')


def test_secret_never_on_the_command_line(daemon):  # noqa: F811
    seen = []

    def recording_execute(*cmd, **kwargs):
        seen.append(cmd)
        from oslo_concurrency import processutils
        return processutils.execute(*cmd, **kwargs)

    client = _client(daemon)
    client._execute = recording_execute
    client.make_dir(INST[5])
    assert seen and not any('right-secret' in arg for cmd in seen
                            for arg in cmd)


def test_remove_deletes_only_the_named_tree(daemon):  # noqa: F811
    client = _client(daemon)
    client.create_empty_file(INST[6], 'disk')
    client.create_empty_file(INST[6], 'sub', 'x')
    client.create_empty_file(INST[7], 'disk')
    # Its revert copy: a name the daemon does not let peers touch.
    (daemon['instances'] / (INST[6] + '_resize')).mkdir()
    (daemon['instances'] / (INST[6] + '_resize') / 'disk').write_bytes(b'x')

    client.remove(INST[6])

    names = sorted(p.name for p in daemon['instances'].iterdir())
    assert names == [INST[6] + '_resize', INST[7]]
    assert (daemon['instances'] / INST[7] / 'disk').exists()


def test_pull_base_reads_from_the_base_module(daemon):  # noqa: F811
    base_dir = daemon['instances'] / '_base'
    base_dir.mkdir()
    (base_dir / ('c' * 40)).write_bytes(b'base bytes')
    got = daemon['tmp'] / 'pulled'
    _client(daemon).pull_base(str(got), 'c' * 40)
    assert got.read_bytes() == b'base bytes'


def test_remove_of_a_single_file(daemon):  # noqa: F811
    client = _client(daemon)
    client.create_empty_file(INST[8], 'a.tmp')
    client.create_empty_file(INST[8], 'disk')
    client.remove(INST[8], 'a.tmp')
    assert sorted(p.name for p in (daemon['instances'] / INST[8])
                  .iterdir()) == ['disk']
