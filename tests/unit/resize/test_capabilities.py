"""resize.capabilities: the traits a host advertises, and the source's
reading of its destination's (Nova's objects and placement stand-ins;
Nova's own ProviderTree)."""

import types
from unittest import mock

import pytest
from nova.compute import provider_tree

from novaext.resize import capabilities


def test_the_node_advertises_what_this_release_accepts():
    tree = provider_tree.ProviderTree()
    tree.new_root('compute2', 'rp-uuid')
    capabilities.advertise(tree, 'compute2')
    assert capabilities.RESIZE_PRECOPY in tree.data('compute2').traits
    assert all(t.startswith('CUSTOM_') for t in capabilities.TRAITS)


def test_a_downgraded_node_stops_advertising_what_it_no_longer_accepts():
    """A later release's trait (placement keeps it after the host went
    back to this release) goes; others' traits stay."""
    tree = provider_tree.ProviderTree()
    tree.new_root('compute2', 'rp-uuid')
    tree.add_traits('compute2', 'CUSTOM_NOVAEXT_RESIZE_PRECOPY_V2',
                    'CUSTOM_OPERATOR_RACK_7', 'COMPUTE_STATUS_DISABLED')
    capabilities.advertise(tree, 'compute2')
    assert tree.data('compute2').traits == {
        capabilities.RESIZE_PRECOPY, 'CUSTOM_OPERATOR_RACK_7',
        'COMPUTE_STATUS_DISABLED'}
    assert all(t.startswith(capabilities.TRAIT_PREFIX)
               for t in capabilities.TRAITS)


@pytest.fixture
def move():
    instance = types.SimpleNamespace(
        uuid='u-1', migration_context=types.SimpleNamespace(migration_id=7))
    migration = types.SimpleNamespace(dest_compute='compute2',
                                      dest_node='compute2')
    nova = mock.Mock()
    with mock.patch.object(capabilities.objects.Migration,
                           'get_by_id_and_instance',
                           return_value=migration) as get_migration, \
            mock.patch.object(capabilities.objects.ComputeNode,
                              'get_by_host_and_nodename',
                              return_value=types.SimpleNamespace(
                                  uuid='rp-2')) as get_node:
        yield types.SimpleNamespace(instance=instance, nova=nova,
                                    get_migration=get_migration,
                                    get_node=get_node)


def test_a_destination_with_the_trait(move):
    move.nova.provider_traits.return_value = {
        'HW_CPU_X86_SSE', capabilities.RESIZE_PRECOPY}
    assert capabilities.destination_has(
        move.nova, 'ctx', move.instance, capabilities.RESIZE_PRECOPY)
    move.get_migration.assert_called_once_with('ctx', 7, 'u-1')
    move.get_node.assert_called_once_with('ctx', 'compute2', 'compute2')
    move.nova.provider_traits.assert_called_once_with('ctx', 'rp-2')


def test_an_older_destination_without_it(move):
    move.nova.provider_traits.return_value = {'HW_CPU_X86_SSE'}
    assert not capabilities.destination_has(
        move.nova, 'ctx', move.instance, capabilities.RESIZE_PRECOPY)


def test_placement_unreachable_means_the_old_way(move):
    move.nova.provider_traits.side_effect = Exception('placement down')
    assert not capabilities.destination_has(
        move.nova, 'ctx', move.instance, capabilities.RESIZE_PRECOPY)
