"""File-backed iSCSI LUNs on the tgtd of scripts/start-services.

Shared by the cloud-disk tests, scripts/demo and benchmarks/extend.py.
"""

import subprocess
import uuid

MiB = 1024 ** 2


def tgtadm(*args, check=True):
    return subprocess.run(['tgtadm', '--lld', 'iscsi', *args], check=check,
                          capture_output=True, text=True).stdout


class Lun:
    """A file-backed LUN 1 of a fresh tgt target on 127.0.0.1."""

    def __init__(self, tmp_path, tid, size_mib=64, chap=None,
                 initiator_name=None):
        """``initiator_name``: accept only that initiator (tgt's ACL by
        name); default: any initiator from 127.0.0.1."""
        self.tid = tid
        self.iqn = f'iqn.2026-11.org.novaext:clouddisk-{uuid.uuid4().hex[:8]}'
        self.backing = tmp_path / f'lun-{tid}.img'
        self.chap = chap
        with open(self.backing, 'wb') as f:
            f.truncate(size_mib * MiB)
        tgtadm('--mode', 'target', '--op', 'new', '--tid', str(tid),
               '--targetname', self.iqn)
        self._new_lu()
        acl = (['--initiator-name', initiator_name] if initiator_name
               else ['--initiator-address', '127.0.0.1'])
        tgtadm('--mode', 'target', '--op', 'bind', '--tid', str(tid), *acl)
        if chap:
            tgtadm('--mode', 'account', '--op', 'new', '--user', chap[0],
                   '--password', chap[1])
            tgtadm('--mode', 'account', '--op', 'bind', '--tid', str(tid),
                   '--user', chap[0])

    def _new_lu(self):
        tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid',
               str(self.tid), '--lun', '1', '--backing-store',
               str(self.backing))

    def grow(self, size_mib):
        """Grow the file, then make tgt read the new size: it reads it
        only when the logical unit is created."""
        with open(self.backing, 'r+b') as f:
            f.truncate(size_mib * MiB)
        tgtadm('--mode', 'logicalunit', '--op', 'delete', '--tid',
               str(self.tid), '--lun', '1')
        self._new_lu()

    def sessions(self):
        return tgtadm('--mode', 'conn', '--op', 'show', '--tid',
                      str(self.tid)).strip()

    def remove(self):
        tgtadm('--mode', 'target', '--op', 'delete', '--force', '--tid',
               str(self.tid), check=False)
        if self.chap:
            tgtadm('--mode', 'account', '--op', 'delete', '--user',
                   self.chap[0], check=False)

    def connection_info(self, password=None):
        data = {'target_portal': '127.0.0.1:3260', 'target_iqn': self.iqn,
                'target_lun': 1, 'volume_id': self.volume_id}
        if self.chap:
            data.update(auth_method='CHAP', auth_username=self.chap[0],
                        auth_password=password or self.chap[1])
        return {'driver_volume_type': 'clouddisk', 'serial': self.volume_id,
                'data': data}

    volume_id = property(lambda self: f'6c1d0e1a-0000-4000-8000-'
                                      f'{self.tid:012d}')
