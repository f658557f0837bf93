"""A real Linux guest (realhost.guest) in the two-host cloud, seen from
inside it through its qemu-guest-agent, reached through the libvirtd of
whichever host runs it.

These tests need the cloud of ``NOVAEXT_CLOUD_PROFILE=guest scripts/cloud
up`` (scripts/test brings it up so for them; realhost.cloud.services
says why): TCG, and Nova's deep image inspection off, without which Nova
34 refuses to fetch this direct-kernel-boot guest's kernel for a block
live migration. Their ids contain ``in_guest``; the other run of the
tier deselects them.
"""

import time

import pytest

from realhost import guest
from realhost.cloud import services
from tests.cloud import checks

DATA = '/root/novaext-data'
GUEST_FLAVORS = {'novaext-guest': 1, 'novaext-guest-large': 2}  # root GiB
GiB = 1024 ** 3
MiB = 1024 ** 2


@pytest.fixture(scope='module')
def tcg_cloud(cloud):
    guest_profile = services.PROFILES['guest']
    wanted = (guest_profile.virt_type,
              str(guest_profile.disable_deep_image_inspection).lower())
    found = {(h.option('libvirt', 'virt_type'),
              h.option('workarounds', 'disable_deep_image_inspection'))
             for h in cloud.hosts.values()}
    if found != {wanted}:
        pytest.skip(f'IN-GUEST CLOUD TESTS SKIPPED: the cloud runs '
                    f'(virt_type, inspection off) {sorted(found)}; they need '
                    f'NOVAEXT_CLOUD_PROFILE=guest scripts/cloud up '
                    f'(scripts/test does)')
    return cloud


@pytest.fixture(scope='module')
def guest_flavors(tcg_cloud):
    """256 MiB and 1 vCPU; a 1 GiB and a 2 GiB root disk."""
    api = tcg_cloud.api.compute
    return {name: api.find_flavor(name) or api.create_flavor(
                name=name, ram=256, vcpus=1, disk=disk)
            for name, disk in GUEST_FLAVORS.items()}


@pytest.fixture(scope='module')
def guest_image(tcg_cloud):
    """The guest's kernel (aki), initrd (ari) and root (qcow2) in Glance,
    as an operator uploads a direct-kernel-boot image."""
    built = guest.GuestImage().ensure()
    api = tcg_cloud.api.image
    made = []

    def upload(name, path, disk_format, **properties):
        for old in api.images(name=name):
            api.delete_image(old)
        image = api.create_image(
            name=name, filename=path, disk_format=disk_format,
            container_format=(disk_format if disk_format in ('aki', 'ari')
                              else 'bare'), wait=True, **properties)
        made.append(image.id)
        return image.id

    kernel = upload('novaext-guest-kernel', built.kernel, 'aki')
    ramdisk = upload('novaext-guest-initrd', built.initrd, 'ari')
    root = upload('novaext-guest', built.root, 'qcow2', kernel_id=kernel,
                  ramdisk_id=ramdisk, os_command_line=guest.COMMAND_LINE,
                  hw_qemu_guest_agent='yes')
    yield api.get_image(root)
    for image_id in made:
        api.delete_image(image_id, ignore_missing=True)


def _agent(host, server):
    agent = guest.Agent(host.domain(server))
    waited = agent.wait()
    print(f'{server.id} on {host.name}: agent answered after {waited:.1f} s')
    return agent


def test_block_live_migration_keeps_data_in_guest(
        tcg_cloud, guest_flavors, guest_image, servers):
    """The guest writes a file and syncs it; after a block live
    migration it reads the same checksum on the other host, without
    having rebooted, and keeps writing there."""
    source = tcg_cloud.hosts['compute1']
    dest = tcg_cloud.hosts['compute2']
    server = servers.boot(guest_image.id, guest_flavors['novaext-guest'],
                          source.name)
    agent = _agent(source, server)
    boot_id = agent.read_file('/proc/sys/kernel/random/boot_id')
    written = agent.write_known_file(DATA, 16)

    started = time.monotonic()
    tcg_cloud.api.compute.live_migrate_server(server, host=dest.name,
                                              block_migration=True)
    server = servers.wait_for(
        server, lambda s: s.status == 'ACTIVE' and s.task_state is None
        and s.compute_host == dest.name, 'ACTIVE on ' + dest.name)
    print(f'block live migration seen done by the API after '
          f'{time.monotonic() - started:.1f} s')

    agent = _agent(dest, server)
    assert agent.read_file('/proc/sys/kernel/random/boot_id') == boot_id
    assert agent.sha256(DATA) == written
    after = agent.write_known_file(DATA + '.after', 4)
    assert agent.sha256(DATA + '.after') == after
    device, mountpoint, fstype, options = agent.sh(
        'grep " / " /proc/mounts').split()[:4]
    assert (device, mountpoint, fstype) == ('/dev/vda', '/', 'ext4')
    assert 'rw' in options.split(',')
    checks.assert_backed_by_verified_base(dest, server, guest_image.id, 1)
    checks.assert_nothing_left(tcg_cloud, server.id, except_on=dest.name)
    checks.assert_actions(tcg_cloud, server, ['create', 'live-migration'])


def test_resize_with_precopy_keeps_data_in_guest(
        tcg_cloud, guest_flavors, guest_image, servers, notifications):
    """An overlay above the pre-copy threshold (128 MiB) moves while
    nova-compute resizes the running guest: pass 1 while it runs, the
    catch-up pass while it shuts down (Nova's clean shutdown), the last
    writes after power-off. The guest on the other host reads its data
    back, sees its 2 GiB disk, grows its file system online, and the
    confirm leaves nothing on the source."""
    source = tcg_cloud.hosts['compute1']
    dest = tcg_cloud.hosts['compute2']
    server = servers.boot(guest_image.id, guest_flavors['novaext-guest'],
                          source.name)
    agent = _agent(source, server)
    agent.sh('dd if=/dev/zero of=/root/filler bs=1M count=160 conv=fsync',
             timeout=300)
    written = agent.write_known_file(DATA, 16)
    overlay = source.qemu_img_info(source.disk_of(server))['actual-size']
    assert overlay > 128 * MiB
    since = time.time()

    tcg_cloud.api.compute.resize_server(
        server, guest_flavors['novaext-guest-large'].id)
    server = servers.wait(server, 'VERIFY_RESIZE')

    assert server.compute_host == dest.name
    ends = notifications.wait(server.id, 'novaext.resize.push.end',
                              since=since, file='disk', **{'pass': 'final'})
    sent = {e['payload']['pass']: e['payload']['bytes_sent'] for e in ends
            if e['payload']['file'] == 'disk'}
    assert set(sent) == {'precopy', 'catchup', 'final'}, sent
    # After power-off only what the guest wrote during its shutdown.
    assert sent['final'] < 32 * MiB < overlay <= sent['precopy'] + MiB, sent
    print(f'overlay {overlay / MiB:.1f} MiB: pre-copy sent '
          f'{sent["precopy"] / MiB:.1f} MiB, catch-up '
          f'{sent["catchup"] / MiB:.2f} MiB, after power-off '
          f'{sent["final"] / MiB:.2f} MiB')
    agent = _agent(dest, server)
    assert agent.sha256(DATA) == written
    assert agent.block_size_bytes('vda') == 2 * GiB
    agent.sh('resize2fs /dev/vda')
    assert int(agent.sh('df -k --output=size / | tail -1')) > 1.9 * GiB / 1024

    tcg_cloud.api.compute.confirm_server_resize(server)
    server = servers.wait(server, 'ACTIVE')
    checks.assert_backed_by_verified_base(dest, server, guest_image.id, 2)
    checks.assert_nothing_left(tcg_cloud, server.id, except_on=dest.name)
    assert _agent(dest, server).sha256(DATA) == written
