"""What the cloud tests assert about a server's disk and its hosts."""

import hashlib
import os
import subprocess

from lxml import etree

MIB = 1024 * 1024
SMALL_FLAVOR = 'novaext-small'   # 1 GiB root disk
LARGE_FLAVOR = 'novaext-large'   # 2 GiB root disk
FLAVORS = {SMALL_FLAVOR: 1, LARGE_FLAVOR: 2}
IMAGE_NAME = 'novaext-cloud-tier'
IMAGE_PATTERN = '0x11'           # the image's first 32 MiB
IMAGE_DATA = 32 * 1024 * 1024
IMAGE_SIZE = 64 * 1024 * 1024


def base_name(image_id):
    """The _base name of an image: sha1 of its id (Nova's and novaext's)."""
    return hashlib.sha1(image_id.encode()).hexdigest()


# Written through the running QEMU: one MiB over the image's data (copied
# on write into the overlay) and four MiB past it.
MARKS = (('0x5b', 0, 1 * MIB), ('0x5a', 100 * MIB, 4 * MIB))
MARKS_BYTES = sum(length for _, _, length in MARKS)


def write_marks(host, server):
    for pattern, offset, length in MARKS:
        host.guest_io(server, f'write -P {pattern} {offset} {length}')
    host.guest_io(server, 'flush')


def assert_marks(host, server):
    """The marks, and the image's data around them, read back through
    the server's running QEMU on ``host``."""
    for pattern, offset, length in MARKS:
        host.guest_io(server, f'read -P {pattern} {offset} {length}')
    host.guest_io(server, f'read -P {IMAGE_PATTERN} {1 * MIB} '
                          f'{IMAGE_DATA - MIB}')


def assert_backed_by_verified_base(host, server, image_id, root_gb):
    """The server's disk on ``host`` is a qcow2 overlay of the image's
    base in the host's _base, of the flavor's size, and the base carries
    novaext's verification record."""
    base = host.path('_base', base_name(image_id))
    info = host.qemu_img_info(host.disk_of(server))
    assert info['format'] == 'qcow2'
    assert info['full-backing-filename'] == base
    assert info['virtual-size'] == root_gb * 1024 ** 3
    assert os.path.exists(host.outside(base + '.verified')), (
        f'{base} on {host.name} has no verification record; _base has '
        f'{host.base_files()}')
    return info


def assert_nothing_left(cloud, server_id, except_on=None):
    """No file or domain of the server on any host but ``except_on``."""
    for host in cloud.hosts.values():
        if host.name == except_on:
            continue
        assert host.instance_files(server_id) == [], (
            f'{host.name} still has {host.instance_files(server_id)}')
        conn = host.libvirt()
        names = [d.UUIDString() for d in conn.listAllDomains()]
        assert server_id not in names, f'{host.name} still has its domain'


def actions(cloud, server):
    """The server's instance actions, oldest first, as
    (action, [(event, result), ...])."""
    found = []
    for action in cloud.api.compute.server_actions(server.id):
        detail = cloud.api.compute.get_server_action(action.request_id,
                                                     server.id)
        found.append((action.action,
                      [(e['event'], e['result']) for e in detail.events]))
    return list(reversed(found))


def assert_actions(cloud, server, names):
    """The server's instance actions are ``names``, oldest first, and
    every event of each succeeded."""
    found = actions(cloud, server)
    assert [a for a, _ in found] == names
    for action, events in found:
        assert all(result == 'Success' for _, result in events), (
            action, events)


def push_ends(notifications, server_id, since):
    """novaext's resize push end events about the server since ``since``,
    by file name."""
    return {e['payload']['file']: e for e in notifications.wait(
        server_id, 'novaext.resize.push.end', since=since, file='disk')}


def volume_disk(dom, volume_id):
    """The domain's <disk> element of the volume (by its serial)."""
    xml = etree.fromstring(dom.XMLDesc())
    for disk in xml.findall('./devices/disk'):
        if disk.findtext('serial') == volume_id:
            return disk
    return None


def tgt_targets():
    """What tgt exports now (``tgt-admin --show``)."""
    return subprocess.run(['tgt-admin', '--show'], check=True,
                          capture_output=True, text=True).stdout
