"""The address a peer compute host is reached at: its ComputeNode's
host_ip, as Nova's migration.dest_host is."""

from unittest import mock

import pytest
from nova import exception
from nova import objects

from novaext.rsync import peer_address

objects.register_all()


def _nodes(*host_ips):
    return [objects.ComputeNode(host='compute_1', host_ip=ip)
            for ip in host_ips]


@pytest.mark.parametrize('found, expected', [
    (_nodes('192.0.2.11'), '192.0.2.11'),
    (_nodes('2001:db8::11'), '2001:db8::11'),
    ([objects.ComputeNode(host='compute_1')], 'compute_1'),
    ([], 'compute_1'),
    (exception.ComputeHostNotFound(host='compute_1'), 'compute_1'),
])
def test_address_is_the_compute_nodes_host_ip(found, expected):
    kwargs = ({'side_effect': found} if isinstance(found, Exception)
              else {'return_value': found})
    with mock.patch.object(objects.ComputeNodeList, 'get_all_by_host',
                           **kwargs) as lookup:
        assert peer_address.address_of('ctx', 'compute_1') == expected
    lookup.assert_called_once_with('ctx', 'compute_1')
