"""snapshot.recovery: what an interrupted snapshot left, ended at
nova-compute's start, with stand-in guests (the real job and files on
the cloud: tests/faults/test_snapshot.py)."""

import os
from unittest import mock

from novaext.snapshot import recovery

SNAPS = '/i/snapshots'
C1 = recovery.scratch_prefix('c1')


def _domain(mirror):
    return f"""<domain><name>instance-1</name><devices>
<disk type='file'><source file='/i/u/disk'/><target dev='vda'/>
<mirror type='file' job='copy' ready='yes'><source file='{mirror}'/>
<format type='qcow2'/></mirror></disk>
<disk type='file'><source file='/i/u/disk.local'/><target dev='vdb'/></disk>
</devices></domain>"""


def _guest(xml, persistent=True):
    guest = mock.Mock()
    guest.name = 'instance-1'
    guest.get_xml_desc.return_value = xml
    guest.has_persistent_configuration.return_value = persistent
    return guest


def _nova(*guests):
    nova = mock.Mock()
    nova.host.list_guests.return_value = list(guests)
    return nova


def test_a_copy_into_this_hosts_scratch_is_aborted_without_pivot():
    guest = _guest(_domain(f'{SNAPS}/{C1}x/abc.delta'))
    nova = _nova(guest)

    assert recovery.abort_stale_copies(nova, 'c1', SNAPS) == ['instance-1']

    guest.get_block_device.assert_called_once_with('vda')
    guest.get_block_device.return_value.abort_job.assert_called_once_with()
    nova.host.write_instance_config.assert_not_called()


def test_another_hosts_or_anothers_copy_is_left_alone():
    for mirror in (f'{SNAPS}/{recovery.scratch_prefix("c2")}x/abc.delta',
                   '/backup/disk.copy', f'{SNAPS}/tmpabc/abc.delta'):
        guest = _guest(_domain(mirror))
        assert recovery.abort_stale_copies(_nova(guest), 'c1', SNAPS) == []
        guest.get_block_device.assert_not_called()


def test_a_domain_left_transient_is_defined_again():
    guest = _guest(_domain(f'{SNAPS}/{C1}x/abc.delta'),
                   persistent=False)
    nova = _nova(guest)
    recovery.abort_stale_copies(nova, 'c1', SNAPS)
    nova.host.write_instance_config.assert_called_once()


def test_only_this_hosts_scratch_directories_are_removed(tmp_path):
    other = recovery.scratch_prefix('c1-a')
    for name in (C1 + 'a', C1 + 'b', other + 'a', 'tmpxyz'):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'f.delta').write_bytes(b'x')

    removed = recovery.remove_scratch('c1', str(tmp_path))

    assert [os.path.basename(p) for p in removed] == [C1 + 'a', C1 + 'b']
    assert sorted(os.listdir(tmp_path)) == sorted([other + 'a', 'tmpxyz'])


def test_a_failing_recovery_does_not_stop_nova_compute():
    nova = mock.Mock()
    nova.host.list_guests.side_effect = Exception('libvirtd gone')
    recovery.recover(nova, 'c1', SNAPS)
