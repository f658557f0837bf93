"""Faults while a server spawns: nova-compute killed while the image's
base downloads into ``_base`` (``<base>.part``), the image service's
data slowed so that the kill lands there.

Nova's restart puts a server it found BUILDING in ERROR. The documented
action is to delete it and boot again (Nova refuses to rebuild a server
that never ran): the new spawn on the same host downloads the base again
over what the dead download left (the same ``.part``), verifies it, and
boots on it, with nothing of the first try left in ``_base``. novaext's
start has removed that file already (stock Nova's stays until the image
is downloaded there again).
"""

import os

import pytest

from realhost.cloud import faults
from tests.cloud import checks
from tests.faults import cells
from tests.faults import leftovers

# The 64 MiB image at 4 MiB/s: a download of ~8 s to put the kill in.
IMAGE_KIB_PER_S = 4096


@pytest.fixture
def new_image(cloud, image_file, servers):
    """The cloud tier's image under a new id, so its base is on no host
    yet (a base is named by the image's id)."""
    created = cloud.api.image.create_image(
        name='novaext-faults-new-image', filename=image_file,
        disk_format='qcow2', container_format='bare', wait=True)
    servers.image_ids.append(created.id)
    return cloud.api.image.get_image(created.id)


@pytest.fixture
def slowly_served(cloud, new_image):
    """``new_image``, its data now served at IMAGE_KIB_PER_S (it was
    uploaded at full speed)."""
    faults.limit_image_service(cloud, IMAGE_KIB_PER_S)
    yield new_image
    faults.limit_image_service(cloud, 0)


def test_nova_compute_killed_while_the_base_downloads(
        cloud, flavors, slowly_served, servers, host_faults):
    new_image = slowly_served
    host = cloud.hosts['compute1']
    base = host.path('_base', checks.base_name(new_image.id))
    part = host.outside(base + '.part')
    server = cloud.api.compute.create_server(
        name='novaext-faults-spawn', image_id=new_image.id,
        flavor_id=flavors[checks.SMALL_FLAVOR].id, networks='none',
        availability_zone=f'nova:{host.name}')
    servers.ids.append(server.id)
    cells.wait_until('the base downloading', lambda: os.path.exists(part)
                     and os.path.getsize(part) >= cells.MiB, timeout=120)
    faults = host_faults[host.name]
    faults.kill_nova_compute()
    assert os.path.getsize(part) < checks.IMAGE_SIZE, (
        'the download ended before the kill')
    print(f'restart: {faults.start_nova_compute():.1f} s to node report')
    if not host.stock_nova:
        # (Stock Nova leaves it to its next download of the image.)
        assert not os.path.exists(part), (
            'the interrupted download was not removed at start')

    server = cells.settled(servers, server, host.name)
    assert server.status == 'ERROR', server.status
    assert not os.path.exists(host.outside(base)), (
        'a base was made of the interrupted download')

    # (Nova refuses to rebuild a server that never ran.)
    cloud.api.compute.delete_server(server)
    cloud.api.compute.wait_for_delete(server, interval=1, wait=120)
    server = servers.boot(new_image.id, flavors[checks.SMALL_FLAVOR],
                          host.name, name='novaext-faults-spawn-again')
    checks.write_marks(host, server)
    checks.assert_marks(host, server)
    if not host.stock_nova:
        checks.assert_backed_by_verified_base(host, server, new_image.id, 1)
    assert not os.path.exists(part), 'the partial download is left'
    server = cells.hard_reboot(cloud, servers, host, server)
    checks.assert_marks(host, server)
    leftovers.assert_nothing_left(cloud, server, host.name)
    leftovers.assert_allocated_only_on(cloud, server, host.name, 1)
