"""A live snapshot of a running server is a delta on the image's base,
and it boots on the other host with nothing in that host's _base: the
base comes from the image service and is verified there."""

import os
import time

from tests.cloud import checks


def test_live_delta_snapshot_boots_on_the_other_host_with_an_empty_base(
        cloud, flavors, image, servers, notifications):
    source, other = cloud.hosts['compute1'], cloud.hosts['compute2']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], source.name)
    checks.write_marks(source, server)
    overlay = source.qemu_img_info(source.disk_of(server))['actual-size']
    since = time.time()

    # What a user asks for: openstack server image create
    #   --property novaext_snapshot_mode=delta
    snapshot = servers.snapshot(server, 'novaext-cloud-tier-snapshot',
                                novaext_snapshot_mode='delta')

    # Live: the server ran through it.
    server = cloud.api.compute.get_server(server.id)
    assert server.status == 'ACTIVE'
    assert source.domain(server).isActive()
    # A delta: it names its base by the image's sha1 and holds only what
    # the server wrote (the image's 32 MiB stay out of it).
    assert snapshot.status == 'active'
    assert snapshot.disk_format == 'qcow2'
    assert snapshot.properties['base_image_id_sha1'] == \
        checks.base_name(image.id)
    assert snapshot.size <= overlay + checks.MIB, (snapshot.size, overlay)
    assert snapshot.size < checks.IMAGE_DATA
    # novaext's progress reports the whole upload: the image's size.
    notifications.wait(server.id, 'novaext.snapshot.progress', since=since,
                       phase='upload', bytes_done=snapshot.size)

    on_other = cloud.api.compute.servers(all_projects=True,
                                         compute_host=other.name)
    assert [s.id for s in on_other] == [], 'the other host is not empty'
    for name in other.base_files():
        os.unlink(os.path.join(other.base_dir, name))

    copy = servers.boot(snapshot.id, flavors[checks.SMALL_FLAVOR],
                        other.name, name='novaext-cloud-tier-from-snapshot')

    assert copy.compute_host == other.name
    checks.assert_backed_by_verified_base(other, copy, image.id, 1)
    checks.assert_marks(other, copy)


def test_delta_snapshot_of_a_server_booted_from_a_labelled_base(
        cloud, flavors, image, servers):
    """The server's image already carries image_id_sha1 (a delta was taken
    of it before), so the snapshot image inherits that label: novaext must
    drop it and name the same sha1 as its base, which glanceclient would
    send as a JSON-patch "move" that Glance refuses."""
    sha1 = checks.base_name(image.id)
    labels = cloud.api.image.get_image(image.id).properties
    if labels.get('image_id_sha1') != sha1:  # as novaext's first delta does
        cloud.api.image.update_image(image, image_id_sha1=sha1)
    host = cloud.hosts['compute1']
    server = servers.boot(image.id, flavors[checks.SMALL_FLAVOR], host.name)
    checks.write_marks(host, server)

    snapshot = servers.snapshot(server, 'novaext-cloud-tier-relabelled',
                                novaext_snapshot_mode='delta')

    assert snapshot.properties['base_image_id_sha1'] == sha1
    assert 'image_id_sha1' not in snapshot.properties
    assert snapshot.size < checks.IMAGE_DATA
