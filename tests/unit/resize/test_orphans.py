"""resize.orphans.OrphanSweeper: which instance directories are partial
copies nobody will remove, and which must stay. Nova's objects and the
peer's daemon are stand-ins; the directories are real. (On the cloud,
after the destination's daemon died mid-push:
tests/faults/test_resize.py.)"""

import os
import types
from unittest import mock

import pytest
from nova import exception

from novaext.resize import orphans

HERE = 'compute2'
MINE = '11111111-1111-1111-1111-111111111111'
THEIRS = '22222222-2222-2222-2222-222222222222'


def _instance(uuid, host):
    return types.SimpleNamespace(uuid=uuid, host=host)


def _migration(status, source='compute1', dest=HERE):
    return types.SimpleNamespace(status=status, source_compute=source,
                                 dest_compute=dest)


@pytest.fixture
def world(tmp_path):
    for name in (MINE, THEIRS, '_base', 'locks', THEIRS + '_resize'):
        (tmp_path / name).mkdir()
    (tmp_path / THEIRS / 'disk').write_bytes(b'partial')
    nova = mock.Mock()
    nova.host.get_guest.side_effect = exception.InstanceNotFound(
        instance_id='x')
    world = types.SimpleNamespace(
        path=tmp_path, nova=nova,
        instances=[_instance(MINE, HERE), _instance(THEIRS, 'compute1')],
        migrations=[])
    with mock.patch.object(
            orphans.objects.InstanceList, 'get_by_filters',
            side_effect=lambda ctx, filters: [
                i for i in world.instances if i.uuid in filters['uuid']]), \
            mock.patch.object(
                orphans.objects.MigrationList, 'get_by_filters',
                side_effect=lambda ctx, filters: list(world.migrations)), \
            mock.patch.object(orphans.peer_address, 'address_of',
                              return_value='10.0.0.1'):
        yield world


def _sweep(world):
    return orphans.OrphanSweeper(world.nova, HERE,
                                 str(world.path)).sweep('ctx')


def test_a_partial_copy_of_a_failed_move_is_removed(world):
    world.migrations = [_migration('error')]

    assert _sweep(world) == [THEIRS]

    assert sorted(os.listdir(world.path)) == sorted(
        [MINE, '_base', 'locks', THEIRS + '_resize'])
    # Probed through the owner's daemon, and the probe removed there.
    probe = world.nova.remotefs.create_file.call_args.args[1]
    assert os.path.dirname(probe) == str(world.path / THEIRS)
    world.nova.remotefs.remove_file.assert_called_once_with('10.0.0.1',
                                                            probe)


@pytest.mark.parametrize('status', ['pre-migrating', 'migrating',
                                    'post-migrating', 'finished',
                                    'running', 'preparing', 'accepted'])
def test_a_move_in_progress_keeps_it(world, status):
    world.migrations = [_migration(status)]
    assert _sweep(world) == []
    assert (world.path / THEIRS / 'disk').exists()


def test_a_move_between_other_hosts_does_not_keep_it(world):
    world.migrations = [_migration('migrating', 'compute1', 'compute3')]
    assert _sweep(world) == [THEIRS]


def test_a_domain_defined_here_keeps_it(world):
    world.nova.host.get_guest.side_effect = None
    assert _sweep(world) == []


def test_shared_storage_keeps_it(world):
    world.nova.remotefs.create_file.side_effect = \
        lambda host, path: open(path, 'w').close()
    assert _sweep(world) == []
    assert os.listdir(world.path / THEIRS) == ['disk']


def test_a_peer_that_cannot_be_probed_keeps_it(world):
    world.nova.remotefs.create_file.side_effect = Exception('refused')
    assert _sweep(world) == []


def test_a_move_that_begins_before_the_removal_keeps_it(world):
    calls = []

    def migrations(ctx, filters):
        calls.append(filters)
        return [] if len(calls) == 1 else [_migration('pre-migrating')]

    with mock.patch.object(orphans.objects.MigrationList, 'get_by_filters',
                           side_effect=migrations):
        assert _sweep(world) == []
    assert (world.path / THEIRS).exists()


def test_deleted_and_unknown_instances_are_left_to_nova(world):
    world.instances = [_instance(MINE, HERE)]
    assert _sweep(world) == []
    assert (world.path / THEIRS).exists()


def test_the_sweeper_does_not_start_when_the_interval_is_zero(world):
    with mock.patch.object(orphans.threading, 'Thread') as thread:
        orphans.OrphanSweeper(world.nova, HERE, str(world.path)).start(0)
    thread.assert_not_called()
