"""A compute host on the real libvirtd, driven through Nova's interface.

``RealComputeHost`` is a fixture that configures Nova for this machine
(QEMU under software emulation, an instances_path of its own), gives it
sqlite databases and an in-process image service (Nova's GlanceFixture),
runs privileged helpers in-process (the tests run as root) and loads
novaext's driver through ``nova.virt.driver.load_compute_driver``.

It is shared by tests/real and scripts/demo; it needs the services
started by scripts/start-services.
"""

import hashlib
import json
import os
import shutil
import subprocess
import threading
import types
import uuid

import fixtures
import libvirt
from glanceclient.common import utils as glance_utils
from nova import context as nova_context
from nova import exception
from nova import objects
from nova import thread_pool_factory
from nova import utils as nova_utils
from nova.compute import utils as compute_utils
from nova.tests import fixtures as nova_fixtures
from nova.virt import driver as virt_driver
from nova.virt import fake as fake_virt
from oslo_config import cfg

CONF = cfg.CONF
LIBVIRT_URI = 'qemu:///system'


def environment_problem():
    """Return why real tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return 'not root (libvirtd, QEMU and tgt need root)'
    for tool in ('qemu-img', 'qemu-system-x86_64', 'rsync', 'tgtadm'):
        if shutil.which(tool) is None:
            return (f'{tool} is not installed (run '
                    f'scripts/install-host-packages)')
    try:
        conn = libvirt.open(LIBVIRT_URI)
    except libvirt.libvirtError as e:
        return (f'libvirtd does not answer on {LIBVIRT_URI} ({e}); run '
                f'scripts/start-services')
    conn.close()
    return None


def _dispatch_conn_events_until_stopped(host):
    """Nova's Host._conn_event_thread, but one that can be stopped."""
    while not getattr(host, 'novaext_stop_events', False):
        host._dispatch_conn_event()


class RealComputeHost(fixtures.Fixture):
    """One "compute host": an instances_path and novaext's driver on it."""

    def __init__(self, hostname='real-host', instances_path=None,
                 compute_driver='novaext.ExtLibvirtDriver'):
        """``compute_driver`` as in nova.conf; benchmarks also run
        Nova's own ``libvirt.LibvirtDriver`` for comparison."""
        super().__init__()
        self.hostname = hostname
        self._instances_path = instances_path
        self._compute_driver = compute_driver

    # GlanceFixture expects the test case API.
    def stub_out(self, old, new):
        self.useFixture(fixtures.MonkeyPatch(old, new))

    def _setUp(self):
        objects.register_all()
        self.useFixture(nova_fixtures.ConfFixture(CONF))
        self.instances_path = self._instances_path or self.useFixture(
            fixtures.TempDir()).path
        lock_path = os.path.join(self.instances_path, 'locks')
        CONF.set_override('host', self.hostname)
        CONF.set_override('instances_path', self.instances_path)
        CONF.set_override('lock_path', lock_path, group='oslo_concurrency')
        CONF.set_override('compute_driver', self._compute_driver)
        # Domain names by uuid: processes sharing this libvirtd (parallel
        # test runs, the demo) would otherwise all define instance-00000001.
        CONF.set_override('instance_name_template', 'instance-%(uuid)s')
        for name, value in {
                'virt_type': 'qemu', 'connection_uri': LIBVIRT_URI,
                'cpu_mode': 'none', 'sysinfo_serial': 'none',
                'images_type': 'default'}.items():
            CONF.set_override(name, value, group='libvirt')
        self.useFixture(nova_fixtures.Database(database='main'))
        self.useFixture(nova_fixtures.Database(database='api'))
        # Privileged helpers run in this (root) process instead of through
        # a privsep daemon started with sudo.
        self.useFixture(nova_fixtures.PrivsepFixture())
        self.images = self.useFixture(nova_fixtures.GlanceFixture(self))
        self._image_files = {}
        # image id -> how many times the image service delivered it (a
        # failed attempt, e.g. image gone, does not count)
        self.downloads = {}
        self._downloads_lock = threading.Lock()
        self._fixture_download = self.images.download
        self.images.download = self._download
        # image id -> bytes the driver uploaded (snapshots)
        self.uploads = {}
        self._fixture_update = self.images.update
        self.images.update = self._update
        self._upload_dir = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.Host._conn_event_thread',
            _dispatch_conn_events_until_stopped))
        # No placement here: every "host" of this process runs this
        # release, so each has the traits its peers would read there
        # (resize.capabilities; the cloud tier reads real placement).
        self.useFixture(fixtures.MockPatch(
            'novaext.resize.capabilities.destination_has',
            return_value=True))
        self.context = nova_context.get_admin_context()
        self.driver = virt_driver.load_compute_driver(
            fake_virt.FakeVirtAPI(), self._compute_driver)
        # No sweeper thread outliving this host's temporary instances
        # path. (Set once the driver registered [novaext]: the demo and
        # the benchmarks load no test conftest that would have.)
        CONF.set_override('orphan_sweep_interval', 0, group='novaext')
        self.driver.init_host(self.hostname)
        self.addCleanup(self._stop_nova_threads)
        self.addCleanup(self._destroy_leftover_domains)

    def conf_group(self, group, **overrides):
        """Set options of ``group`` for this host; return the group."""
        for name, value in overrides.items():
            CONF.set_override(name, value, group=group)
        return getattr(CONF, group)

    # -- images ---------------------------------------------------------
    def upload_image(self, path, disk_format, name='novaext-test-image',
                     properties=None, image_id=None, by_reference=False):
        """Put the file at ``path`` into the image service; return its id.

        With ``by_reference`` the service keeps only the path and each
        download copies the file (for images too big to hold in memory).
        Like Glance, the service records the image's size and its hash
        (``os_hash_algo``/``os_hash_value``, algorithm ``hash_algo``).
        """
        meta = {'id': image_id or str(uuid.uuid4()), 'name': name,
                'disk_format': disk_format,
                'container_format': 'bare', 'status': 'active',
                'visibility': 'public', 'size': os.path.getsize(path),
                'properties': properties or {},
                **self._multihash(path)}
        if by_reference:
            image_id = self.images.create(self.context, meta)['id']
            self._image_files[image_id] = path
            return image_id
        with open(path, 'rb') as data:
            return self.images.create(self.context, meta, data=data)['id']

    # Glance's default [DEFAULT]hashing_algorithm; 'md5': an image from
    # before Glance's multihash, with only its checksum; None: no hash.
    hash_algo = 'sha512'
    # Whether downloads go through glanceclient's hash check, as Nova's do.
    client_checks_hash = True

    def _multihash(self, path):
        if self.hash_algo is None:
            return {}
        with open(path, 'rb') as f:
            value = hashlib.file_digest(f, self.hash_algo).hexdigest()
        if self.hash_algo == 'md5':
            return {'checksum': value}
        return {'os_hash_algo': self.hash_algo, 'os_hash_value': value}

    def image_service_down(self):
        """From now on the image service does not answer (any call)."""
        def unreachable(*args, **kwargs):
            raise exception.GlanceConnectionFailed(
                server='glance.example:9292', reason='connection refused')
        for call in ('download', 'show', 'detail', 'create', 'update',
                     'delete'):
            setattr(self.images, call, unreachable)

    def _download(self, context, image_id, data=None, dst_path=None,
                  trusted_certs=None):
        path = self._image_files.get(image_id)
        if path is None:
            result = self._fixture_download(
                context, image_id, data=data, dst_path=dst_path,
                trusted_certs=trusted_certs)
        else:
            # As Nova's client of Glance does: a stream of 64 KiB chunks
            # written to ``data``, or to ``dst_path``, fsync'd; hashed
            # against the image's multihash by glanceclient's own check
            # (images.data(do_checksum=True), unless client_checks_hash
            # is off), which raises IOError at the end of a bad stream.
            image = self.images.show(context, image_id)
            with open(path, 'rb') as source:
                chunks = iter(lambda: source.read(65536), b'')
                if not self.client_checks_hash:
                    pass
                elif image.get('os_hash_value'):
                    chunks = glance_utils.serious_integrity_iter(
                        chunks, hashlib.new(image['os_hash_algo']),
                        image['os_hash_value'])
                elif image.get('checksum'):
                    chunks = glance_utils.integrity_iter(
                        chunks, image['checksum'])
                out = data if data is not None else open(dst_path, 'wb')
                try:
                    for chunk in chunks:
                        out.write(chunk)
                finally:
                    if data is None:
                        out.flush()
                        os.fsync(out.fileno())
                        out.close()
            result = None
        with self._downloads_lock:
            self.downloads[image_id] = self.downloads.get(image_id, 0) + 1
        return result

    def _update(self, context, image_id, metadata, data=None,
                purge_props=False):
        """Glance v2's update: data kept in a file, properties merged or
        (purge_props) replaced; other fields are kept either way."""
        metadata = dict(metadata)
        if purge_props:
            current = self.images.show(context, image_id)
            current['properties'] = metadata.pop('properties', {})
            current.update(metadata)
            self.images.images[image_id] = current
            image = current
        else:
            image = self._fixture_update(context, image_id, metadata)
        if data is not None:
            path = os.path.join(self._upload_dir, image_id)
            size = 0
            with open(path, 'wb') as out:
                for chunk in iter(lambda: data.read(1024 * 1024), b''):
                    out.write(chunk)
                    size += len(chunk)
            self._image_files[image_id] = path
            self.uploads[image_id] = size
            image['size'] = size
            image.update(self._multihash(path))
        return image

    def export_images(self, directory):
        """The images of this image service that have data, for the next
        host of a test (one Glance serves all hosts of a cloud): a list
        of (metadata, path). Uploaded data (snapshots) is copied into
        ``directory``, since this host's files go when it is cleaned up.
        """
        exported = []
        for image_id, path in self._image_files.items():
            if path.startswith(self._upload_dir + os.sep):
                kept = os.path.join(directory, image_id)
                shutil.copyfile(path, kept)
                path = kept
            exported.append((self.images.show(self.context, image_id),
                             path))
        return exported

    def import_images(self, exported):
        """Serve what ``export_images`` of another host returned."""
        for meta, path in exported:
            self.images.create(self.context, dict(meta))
            self._image_files[meta['id']] = path

    def uploaded_file(self, image_id):
        """Path of the data the driver uploaded for ``image_id``."""
        return self._image_files[image_id]

    def new_snapshot_image(self, name='snap', properties=None,
                           instance=None):
        """The queued image the compute API creates for a snapshot.

        With ``instance``, made by Nova's own compute_utils.create_image:
        the instance's image properties are inherited (as from the API);
        without, only ``properties`` and image_type."""
        if instance is not None:
            def create_queued(context, meta):
                return self.images.create(context,
                                          dict(meta, status='queued'))
            return compute_utils.create_image(
                self.context, instance, name, 'snapshot',
                types.SimpleNamespace(create=create_queued),
                extra_properties=properties)['id']
        meta = {'name': name, 'status': 'queued', 'disk_format': None,
                'container_format': None, 'visibility': 'private',
                'properties': dict(properties or {}, image_type='snapshot')}
        return self.images.create(self.context, meta)['id']

    # -- instances ------------------------------------------------------
    def new_instance(self, image_id, memory_mb=128, root_gb=1,
                     ephemeral_gb=0, swap_mb=0, instance_uuid=None,
                     kernel_id='', ramdisk_id='', image_meta=None,
                     vcpus=1):
        """Create an instance record (in the sqlite DB) for ``image_id``.

        ``kernel_id``/``ramdisk_id``: as the compute API copies them from
        a direct-kernel-boot image's properties (see realhost.guest).
        ``image_meta``: the image's metadata, kept in the instance's
        system_metadata as the compute API keeps it (instance.image_meta
        and snapshots' inherited properties come from there); without it
        the instance has none."""
        flavor = objects.Flavor(
            id=1, flavorid='novaext-test', name='novaext.test',
            memory_mb=memory_mb, vcpus=vcpus, root_gb=root_gb,
            ephemeral_gb=ephemeral_gb, swap=swap_mb, extra_specs={},
            rxtx_factor=1.0, vcpu_weight=None,
            is_public=True, disabled=False)
        instance = objects.Instance(
            context=self.context, uuid=instance_uuid or str(uuid.uuid4()),
            project_id='novaext', user_id='novaext', host=self.hostname,
            node=self.hostname, compute_id=1, image_ref=image_id,
            flavor=flavor, kernel_id=kernel_id, ramdisk_id=ramdisk_id,
            instance_type_id=flavor.id, memory_mb=memory_mb, vcpus=vcpus,
            root_gb=root_gb, ephemeral_gb=ephemeral_gb,
            root_device_name='/dev/vda',
            vm_state='building', power_state=0, os_type='linux',
            system_metadata=(
                nova_utils.get_system_metadata_from_image(image_meta, flavor)
                if image_meta else {}), config_drive='',
            display_name='novaext-real')
        instance.create()
        return instance

    def image_meta(self, image_id):
        return objects.ImageMeta.from_dict(
            self.images.show(self.context, image_id))

    def spawn(self, instance):
        """Spawn through the driver's ComputeDriver.spawn, no networks."""
        self.driver.spawn(self.context, instance,
                          self.image_meta(instance.image_ref),
                          injected_files=[], admin_password=None,
                          allocations={}, network_info=[],
                          block_device_info=None)

    def destroy(self, instance):
        self.driver.destroy(self.context, instance, network_info=[],
                            block_device_info=None, destroy_disks=True)

    # -- inspection -----------------------------------------------------
    def domain(self, instance):
        """The libvirt domain of ``instance`` on the real libvirtd, or None."""
        conn = libvirt.open(LIBVIRT_URI)
        try:
            return conn.lookupByName(instance.name)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
        finally:
            conn.close()

    def instance_dir(self, instance):
        return os.path.join(self.instances_path, instance.uuid)

    def _stop_nova_threads(self):
        """Stop what init_host started, as nova-compute's shutdown would.

        Host.cleanup stops the delayed-event executor. Nova's
        connection-event loop runs until the process exits, so the
        harness runs Nova's own dispatch step in a loop that ends when
        asked (see _dispatch_conn_events_until_stopped); with it ended the
        executors can be reset without joining a thread blocked forever.
        The libvirt connection is closed too, so its lifecycle callbacks
        do not fire for the next host's domains in this process.
        """
        self.driver.cleanup_host(self.hostname)
        host = self.driver._host
        host.novaext_stop_events = True
        host._conn_event_handler_queue.put(lambda: None)
        conn, host._wrapped_conn = host._wrapped_conn, None
        if conn is not None:
            try:
                # close() alone keeps callbacks while objects of the
                # connection are still referenced.
                for callback_id in list(getattr(
                        conn, 'domainEventCallbackID', {})):
                    conn.domainEventDeregisterAny(callback_id)
                conn.unregisterCloseCallback()
                conn.close()
            except libvirt.libvirtError:
                pass  # already gone: nothing to stop
        thread_pool_factory.reset_all_executors()

    def _destroy_leftover_domains(self):
        """Tear down domains this host defined if a test failed midway.

        Other hosts on the same libvirtd (another test run, a benchmark)
        may undefine their domains meanwhile: one that vanished between
        listing and reading is not this host's concern.
        """
        conn = libvirt.open(LIBVIRT_URI)
        try:
            for dom in conn.listAllDomains():
                try:
                    self._destroy_if_ours(dom)
                except libvirt.libvirtError as e:
                    if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
        finally:
            conn.close()

    def _destroy_if_ours(self, dom):
        if self.instances_path not in dom.XMLDesc(0):
            return
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                          libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def base_name(image_id):
    """The _base name of ``image_id`` (sha1 of its id)."""
    return hashlib.sha1(image_id.encode()).hexdigest()


def qemu_img_info(path):
    """``qemu-img info --output=json`` of ``path`` as a dict (one level)."""
    out = subprocess.run(
        ['qemu-img', 'info', '--force-share', '--output=json', path],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)
