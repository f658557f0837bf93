"""tgtd, as started by scripts/start-services, serves a LUN QEMU can read."""

import json
import subprocess

import pytest

TID = 917
IQN = 'iqn.2026-11.org.novaext:foundation-smoke'


def _tgtadm(*args):
    subprocess.run(['tgtadm', '--lld', 'iscsi', *args], check=True,
                   capture_output=True, text=True)


@pytest.fixture
def target(tmp_path):
    backing = tmp_path / 'lun.img'
    with open(backing, 'wb') as f:
        f.truncate(32 * 1024 ** 2)
    _tgtadm('--mode', 'target', '--op', 'new', '--tid', str(TID),
            '--targetname', IQN)
    try:
        _tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', str(TID),
                '--lun', '1', '--backing-store', str(backing))
        _tgtadm('--mode', 'target', '--op', 'bind', '--tid', str(TID),
                '--initiator-address', '127.0.0.1')
        yield IQN
    finally:
        _tgtadm('--mode', 'target', '--op', 'delete', '--force',
                '--tid', str(TID))


def test_qemu_initiator_sees_lun_size(target):
    out = subprocess.run(
        ['qemu-img', 'info', '--output=json',
         f'iscsi://127.0.0.1:3260/{target}/1'],
        check=True, capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out)['virtual-size'] == 32 * 1024 ** 2
