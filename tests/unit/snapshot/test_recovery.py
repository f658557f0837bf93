"""snapshot.recovery: what an interrupted snapshot left, ended at
nova-compute's start, with stand-in guests (the real job and files on
the cloud: tests/faults/test_snapshot.py)."""

import os
from unittest import mock

import pytest
from nova import exception

from novaext.snapshot import cold
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


# -- guests a cold snapshot left saved ---------------------------------------

def _saved(tmp_path, host='c1', uuid='u-1', power_state=1):
    scratch = tmp_path / (recovery.scratch_prefix(host) + 'x')
    scratch.mkdir()
    cold.write_saved_record(str(scratch), uuid, power_state)
    return scratch


def _internals(guest):
    """NovaInternals with no running guest to end a copy of, and
    ``guest`` as the domain of any instance."""
    internals = mock.Mock()
    internals.host.list_guests.return_value = []
    internals.host.get_guest.return_value = guest
    return internals


def _resume(internals, snapshots):
    return recovery.resume_saved_guests(internals, 'c1', str(snapshots))


def _saved_guest(active=False, saved=True):
    guest = mock.Mock()
    guest.is_active.return_value = active
    guest._domain.hasManagedSaveImage.return_value = int(saved)
    return guest


@mock.patch.object(recovery.objects.Instance, 'get_by_uuid')
def test_a_guest_left_saved_is_started_by_novas_restore(get, tmp_path):
    _saved(tmp_path, power_state=3)
    guest = _saved_guest()
    internals = _internals(guest)

    assert _resume(internals, tmp_path) == (['u-1'], [])

    assert get.call_args.args[1] == 'u-1'
    internals.host.get_guest.assert_called_once_with(get.return_value)
    internals.restore_guest_after_cold_snapshot.assert_called_once_with(
        mock.ANY, 3, get.return_value, guest)


@mock.patch.object(recovery.objects.Instance, 'get_by_uuid')
def test_a_running_or_unsaved_guest_is_left_alone(get, tmp_path):
    _saved(tmp_path)
    for guest in (_saved_guest(active=True), _saved_guest(saved=False)):
        internals = _internals(guest)
        assert _resume(internals, tmp_path) == ([], [])
        internals.restore_guest_after_cold_snapshot.assert_not_called()


@mock.patch.object(recovery.objects.Instance, 'get_by_uuid')
def test_a_deleted_instance_or_another_hosts_record_is_skipped(
        get, tmp_path):
    _saved(tmp_path, host='c2', uuid='u-2')
    (tmp_path / (C1 + 'no-record')).mkdir()
    internals = _internals(None)
    assert _resume(internals, tmp_path) == ([], [])
    get.assert_not_called()

    _saved(tmp_path)
    get.side_effect = exception.InstanceNotFound(instance_id='u-1')
    assert _resume(internals, tmp_path) == ([], [])
    internals.restore_guest_after_cold_snapshot.assert_not_called()


@mock.patch.object(recovery.objects.Instance, 'get_by_uuid')
def test_recover_starts_the_saved_guest_before_its_directory_goes(
        get, tmp_path):
    scratch = _saved(tmp_path)
    internals = _internals(_saved_guest())
    internals.restore_guest_after_cold_snapshot.side_effect = (
        lambda *a: (scratch / cold.SAVED_RECORD).exists() or
        pytest.fail('the record was gone before the restore'))

    recovery.recover(internals, 'c1', str(tmp_path))

    internals.restore_guest_after_cold_snapshot.assert_called_once()
    assert not scratch.exists()


def test_a_torn_record_reads_as_none(tmp_path):
    (tmp_path / cold.SAVED_RECORD).write_text('{"instance": "u-1"')
    assert cold.read_saved_record(str(tmp_path)) is None
    assert cold.read_saved_record(str(tmp_path / 'missing')) is None


@mock.patch.object(recovery.objects.Instance, 'get_by_uuid')
def test_a_failed_restore_keeps_its_record_for_the_next_start(
        get, tmp_path):
    scratch = _saved(tmp_path)
    internals = _internals(_saved_guest())
    internals.restore_guest_after_cold_snapshot.side_effect = Exception(
        "Failed to get 'write' lock")

    recovery.recover(internals, 'c1', str(tmp_path))

    assert cold.read_saved_record(str(scratch)) == ('u-1', 1)
