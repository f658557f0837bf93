"""A server boots on a chosen host from an image novaext verified, and
deleting it leaves nothing behind."""

from tests.cloud import checks


def test_boot_backs_the_disk_on_a_verified_base_and_delete_leaves_nothing(
        cloud, flavors, image, servers):
    host = cloud.hosts['compute1']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], host.name)

    assert server.status == 'ACTIVE'
    assert server.compute_host == host.name
    checks.assert_backed_by_verified_base(host, server, image.id, 1)
    checks.write_marks(host, server)
    checks.assert_marks(host, server)
    assert checks.actions(cloud, server) == [
        ('create', [('compute__do_build_and_run_instance', 'Success')])]

    cloud.api.compute.delete_server(server)
    cloud.api.compute.wait_for_delete(server, interval=1, wait=120)
    checks.assert_nothing_left(cloud, server.id)
    # The base stays for the next boot (Nova's image cache ages it out).
    assert checks.base_name(image.id) in host.base_files()
