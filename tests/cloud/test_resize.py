"""Resize and cold migration across the two hosts, through Nova's API:
novaext pushes only the overlay to the destination's rsync daemon and
re-points it onto the destination's verified base."""

import time

from tests.cloud import checks


def _overlay_bytes(host, server):
    return host.qemu_img_info(host.disk_of(server))['actual-size']


def _assert_pushed_only_the_overlay(notifications, server, overlay, since):
    ends = checks.push_ends(notifications, server.id, since)
    sent = ends['disk']['payload']['bytes_sent']
    # The marks went into the overlay; the image's 32 MiB stay in the base.
    assert checks.MARKS_BYTES <= sent <= overlay + checks.MIB, (
        f'pushed {sent} bytes of disk; the overlay holds {overlay}')
    return sent


def test_resize_across_hosts_then_confirm_moves_only_the_overlay(
        cloud, flavors, image, servers, notifications):
    source, dest = cloud.hosts['compute1'], cloud.hosts['compute2']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], source.name)
    checks.write_marks(source, server)
    overlay = _overlay_bytes(source, server)
    since = time.time()

    cloud.api.compute.resize_server(server, flavors[checks.LARGE_FLAVOR].id)
    server = servers.wait(server, 'VERIFY_RESIZE')

    assert server.compute_host == dest.name
    assert server.flavor.original_name == checks.LARGE_FLAVOR
    _assert_pushed_only_the_overlay(notifications, server, overlay, since)
    checks.assert_backed_by_verified_base(dest, server, image.id, 2)
    checks.assert_marks(dest, server)

    cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    assert server.compute_host == dest.name
    checks.assert_marks(dest, server)
    checks.assert_nothing_left(cloud, server.id, except_on=dest.name)
    checks.assert_actions(cloud, server, ['create', 'resize', 'confirmResize'])


def test_resize_across_hosts_then_revert_keeps_the_disk_as_it_was(
        cloud, flavors, image, servers, notifications):
    source, dest = cloud.hosts['compute1'], cloud.hosts['compute2']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], source.name)
    checks.write_marks(source, server)
    cloud.api.compute.stop_server(server)
    server = servers.wait(server, 'SHUTOFF')
    disk = source.disk_of(server)
    before = source.path(f'{server.id}-before-resize.qcow2')
    source.run('cp', '--sparse=always', disk, before)
    try:
        overlay = _overlay_bytes(source, server)
        since = time.time()

        cloud.api.compute.resize_server(server,
                                        flavors[checks.LARGE_FLAVOR].id)
        server = servers.wait(server, 'VERIFY_RESIZE')
        assert server.compute_host == dest.name
        _assert_pushed_only_the_overlay(notifications, server, overlay, since)
        checks.assert_backed_by_verified_base(dest, server, image.id, 2)

        cloud.api.compute.revert_server_resize(server)
        server = servers.wait(server, 'SHUTOFF')
        assert server.compute_host == source.name
        assert server.flavor.original_name == checks.SMALL_FLAVOR
        checks.assert_backed_by_verified_base(source, server, image.id, 1)
        same = source.run('qemu-img', 'compare', '-U', before, disk,
                          check=False)
        assert same.returncode == 0, same.stdout + same.stderr
        checks.assert_nothing_left(cloud, server.id, except_on=source.name)
    finally:
        source.run('rm', '-f', before)

    cloud.api.compute.start_server(server)
    server = servers.wait(server, 'ACTIVE')
    checks.assert_marks(source, server)
    assert [a for a, _ in checks.actions(cloud, server)] == [
        'create', 'stop', 'resize', 'revertResize', 'start']


def test_cold_migration_then_confirm_moves_only_the_overlay(
        cloud, flavors, image, servers, notifications):
    source, dest = cloud.hosts['compute2'], cloud.hosts['compute1']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], source.name)
    checks.write_marks(source, server)
    overlay = _overlay_bytes(source, server)
    since = time.time()

    cloud.api.compute.migrate_server(server)
    server = servers.wait(server, 'VERIFY_RESIZE')
    assert server.compute_host == dest.name
    assert server.flavor.original_name == checks.SMALL_FLAVOR
    _assert_pushed_only_the_overlay(notifications, server, overlay, since)
    checks.assert_backed_by_verified_base(dest, server, image.id, 1)
    checks.assert_marks(dest, server)

    cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    checks.assert_nothing_left(cloud, server.id, except_on=dest.name)
    assert [a for a, _ in checks.actions(cloud, server)] == [
        'create', 'migrate', 'confirmResize']
