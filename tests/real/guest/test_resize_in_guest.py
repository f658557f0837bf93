"""Resize of a real Linux guest across two hosts, seen from inside it.

The source and destination hosts take turns (one RealComputeHost at a
time, sharing one image service); the source pushes to the rsync daemon
rooted at the destination's instances_path. Each step is the driver call
Nova's compute manager makes on that host. The confirmed move pre-copies
the running guest's overlay (resize_precopy), so the data read inside the
moved guest went through both passes.
"""

import contextlib
import os

import pytest
from nova import objects

from realhost import guest
from realhost import harness
from realhost import rsyncd

GiB = 1024 ** 3
DATA = '/root/novaext-data'


@pytest.fixture
def daemon(tmp_path):
    """The destination's rsync daemon (novaext-rsyncd)."""
    workdir = tmp_path / 'daemon'
    instances = tmp_path / 'dst-instances'
    workdir.mkdir()
    instances.mkdir()
    with rsyncd.running_daemon(workdir, instances) as daemon:
        yield daemon


class TwoHosts:
    """'src-host' and 'dst-host', one at a time, with one image service."""

    def __init__(self, tmp_path, daemon):
        self.tmp_path = tmp_path
        self.paths = {'src-host': str(tmp_path / 'src-instances'),
                      'dst-host': str(daemon['instances'])}
        self.port = daemon['port']
        self.password_file = tmp_path / 'rsync.password'
        self.password_file.write_text('right-secret')
        self.password_file.chmod(0o600)
        self.exported = []
        self.migration = objects.Migration(source_compute='src-host',
                                           dest_compute='dst-host')

    @contextlib.contextmanager
    def host(self, name):
        with harness.RealComputeHost(
                name, instances_path=self.paths[name]) as host:
            host.conf_group('novaext', rsync_port=self.port,
                            rsync_password_file=str(self.password_file))
            host.import_images(self.exported)
            yield host
            self.exported = host.export_images(str(self.tmp_path))

    def resize_out(self, src, instance, root_gb):
        """migrate_disk_and_power_off on the source, with the clean
        shutdown the compute manager asks for (shutdown_timeout 60 s,
        retried every 10 s); return disk_info."""
        new_flavor = instance.flavor.obj_clone()
        new_flavor.root_gb = root_gb
        return src.driver.migrate_disk_and_power_off(
            src.context, instance, '127.0.0.1', new_flavor, [],
            timeout=60, retry_interval=10)

    def finish(self, dst, ids, uuid, disk_info, old_gb, new_gb,
               power_on=True):
        """finish_migration on the destination; return (instance, agent)
        with the guest's agent answering (agent None when not powered
        on)."""
        moved = guest.resizing(
            guest.new_instance(dst, ids, root_gb=new_gb, instance_uuid=uuid),
            old_gb, new_gb)
        dst.driver.finish_migration(
            dst.context, self.migration, moved, disk_info, [],
            dst.image_meta(ids['image_id']), True, {}, None, power_on)
        if not power_on:
            return moved, None
        agent = guest.Agent(dst.domain(moved))
        agent.wait()
        return moved, agent


def test_resize_reverted_then_confirmed_keeps_data_in_guest(
        guest_image, tmp_path, daemon, caplog):
    hosts = TwoHosts(tmp_path, daemon)
    with hosts.host('src-host') as src:
        ids = guest_image.upload(src)
        instance, agent, _ = guest.spawn(src, ids)
        uuid = instance.uuid
        written = agent.write_known_file(DATA, 16)
        assert agent.block_size_bytes('vda') == 1 * GiB
        disk_info = hosts.resize_out(src, instance, root_gb=2)
        # The guest shut itself down (ACPI) before its disk moved.
        assert 'shutting down, reason=shutdown' in guest.domain_log(instance)

    with hosts.host('dst-host') as dst:
        # A stopped server's resize (power_on False): the data is read
        # inside the guest after the revert and after the confirmed
        # resize below, not here, to spare a boot.
        moved, _ = hosts.finish(dst, ids, uuid, disk_info, 1, 2,
                                power_on=False)
        dst_disk = os.path.join(dst.instance_dir(moved), 'disk')
        assert harness.qemu_img_info(dst_disk)['virtual-size'] == 2 * GiB
        # Revert, on the destination: its copy goes.
        dst.destroy(moved)

    with hosts.host('src-host') as src:
        back = guest.resizing(
            guest.new_instance(src, ids, root_gb=1, instance_uuid=uuid),
            1, 2)
        src.driver.finish_revert_migration(src.context, back, [],
                                           hosts.migration)
        agent = guest.Agent(src.domain(back))
        agent.wait()
        assert agent.sha256(DATA) == written
        assert agent.block_size_bytes('vda') == 1 * GiB
        # This move pre-copies the root overlay while the guest runs, and
        # what the guest wrote meanwhile while it shuts down (catch-up).
        src.conf_group('novaext', resize_precopy=True,
                       resize_precopy_min_mib=0)
        caplog.set_level('INFO', logger='novaext.progress')
        caplog.clear()
        disk_info = hosts.resize_out(src, back, root_gb=2)
        passes = [r.args['pass'] for r in caplog.records
                  if r.name == 'novaext.progress' and
                  r.args.get('file') == 'disk' and r.args['event'] == 'end']
        assert passes == ['precopy', 'catchup', 'final']

    with hosts.host('dst-host') as dst:
        moved, agent = hosts.finish(dst, ids, uuid, disk_info, 1, 2)
        assert agent.sha256(DATA) == written
        assert agent.block_size_bytes('vda') == 2 * GiB
        # The file system can take the new space, online.
        agent.sh('resize2fs /dev/vda')
        size_kib = int(agent.sh("df -k --output=size / | tail -1"))
        assert size_kib > 1.9 * GiB / 1024
        dst_disk = os.path.join(dst.instance_dir(moved), 'disk')

    with hosts.host('src-host') as src:
        record = guest.resizing(guest.new_instance(src, ids, root_gb=2,
                                              instance_uuid=uuid), 1, 2)
        src.driver.confirm_migration(src.context, hosts.migration, record,
                                     [])
        assert not os.path.exists(os.path.join(hosts.paths['src-host'],
                                               uuid + '_resize'))
    assert os.path.exists(dst_disk)
