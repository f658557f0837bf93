"""A cloud disk through Cinder and Nova: created by Cinder's file-backed
driver (realhost.cloud.cinder_file_driver, exported by tgt with CHAP),
attached by novaext in qemu mode (QEMU's own iSCSI initiator), grown
online with ``openstack volume set --size`` and detached."""

import os
import re

from realhost.cloud.processes import wait_for
from tests.cloud import checks

GiB = 1024 ** 3


def test_cloud_disk_attached_grown_online_and_detached(
        cloud, flavors, scsi_image, servers):
    volumes = cloud.api.block_storage
    host = cloud.hosts['compute1']
    volume = volumes.create_volume(size=1, name='novaext-cloud-tier')
    try:
        volumes.wait_for_status(volume, 'available', failures=['error'],
                                interval=1, wait=60)
        server = servers.boot(scsi_image.id, flavors[checks.SMALL_FLAVOR],
                              host.name)

        cloud.api.compute.create_volume_attachment(server,
                                                   volume_id=volume.id)
        volumes.wait_for_status(volume, 'in-use', failures=['error'],
                                interval=1, wait=120)

        # QEMU's own initiator, logged in with the host's initiator name
        # and CHAP, on the target Cinder's tgt helper made.
        dom = host.domain(server)
        disk = checks.volume_disk(dom, volume.id)
        assert disk is not None, dom.XMLDesc()
        source = disk.find('source')
        assert disk.get('type') == 'network'
        assert source.get('protocol') == 'iscsi'
        iqn = f'iqn.2010-10.org.openstack:volume-{volume.id}'
        assert source.get('name') == f'{iqn}/1'
        assert disk.find('auth/secret').get('type') == 'iscsi'
        initiator = source.find('initiator/iqn').get('name')
        assert initiator.endswith(f':{host.name}')
        target = checks.tgt_targets().split(f': {iqn}\n', 1)[1]
        target = re.split(r'\nTarget \d+:', target, maxsplit=1)[0]
        assert f'Initiator: {initiator}' in target
        assert 'incominguser' not in target  # tgt-admin hides the secret
        dev = disk.find('target').get('dev')
        assert dom.blockInfo(dev)[0] == 1 * GiB
        device = f'ua-{volume.id}'
        host.guest_io(server, 'write -P 0x6c 0 1M', device=device)
        host.guest_io(server, 'flush', device=device)
        with open(cloud.volume_file(volume.id), 'rb') as f:
            assert f.read(1024 * 1024) == b'\x6c' * 1024 * 1024

        # openstack volume set --size 2: Cinder grows the file and has tgt
        # re-read it, tells Nova (volume-extended), novaext resizes the
        # disk in the running QEMU.
        volumes.extend_volume(volume, 2)
        wait_for('the volume at 2 GiB, in use', lambda: (
            volumes.get_volume(volume.id).size == 2 and
            volumes.get_volume(volume.id).status == 'in-use'), timeout=120)
        wait_for('QEMU seeing 2 GiB', lambda: dom.blockInfo(dev)[0] == 2 * GiB,
                 timeout=30)
        # The session survived the target's re-creation; the new GiB is
        # there to write.
        host.guest_io(server, 'read -P 0x6c 0 1M', device=device)
        host.guest_io(server, f'write -P 0x6d {GiB + GiB // 2} 1M',
                      device=device)
        host.guest_io(server, 'flush', device=device)
        with open(cloud.volume_file(volume.id), 'rb') as f:
            f.seek(GiB + GiB // 2)
            assert f.read(1024 * 1024) == b'\x6d' * 1024 * 1024
        assert 'extend_volume' in [a for a, _ in checks.actions(cloud, server)]

        cloud.api.compute.delete_volume_attachment(volume.id, server)
        volumes.wait_for_status(volume, 'available', failures=['error'],
                                interval=1, wait=120)
        assert checks.volume_disk(host.domain(server), volume.id) is None
        assert iqn not in checks.tgt_targets()
        assert [a for a, _ in checks.actions(cloud, server)] == [
            'create', 'attach_volume', 'extend_volume', 'detach_volume']
    finally:
        volumes.delete_volume(volume, ignore_missing=True)
    volumes.wait_for_delete(volume, interval=1, wait=60)
    assert not os.path.exists(cloud.volume_file(volume.id))
