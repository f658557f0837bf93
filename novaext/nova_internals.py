"""The one door from novaext's feature packages into Nova's private API.

The feature packages (resize, snapshot, volume) never hold the
LibvirtDriver: they get a ``NovaInternals``, whose methods each name one
behaviour of Nova's libvirt driver that novaext reuses, and call it at the
moment of use (so a test or Nova's own fixtures patching the driver's
method are obeyed).

Every private Nova name novaext relies on is in ``PINNED_NAMES``: the ones
called here, the ones novaext's subclasses override or reach through
``super()``, and the private attributes it reads or replaces, each with
the parameters novaext passes. ``tests/unit/test_nova_internals.py``
checks the list against the installed Nova, and checks that novaext's
code uses no other private Nova name, so a Nova upgrade that renames or
re-signs one fails in one test, with one list.
"""

import dataclasses
import importlib
import inspect
import re


@dataclasses.dataclass(frozen=True)
class PinnedName:
    """A private name of a Nova class that novaext relies on.

    ``params`` are the parameter names after ``self`` in Nova's signature,
    or None for an attribute; ``use`` says how novaext relies on it:
    'call' (through NovaInternals or super()), 'override' (a novaext
    subclass replaces it; its signature must stay Nova's) or 'attribute'.
    """

    owner: str
    name: str
    params: tuple | None
    use: str
    why: str


_DRIVER = 'nova.virt.libvirt.driver.LibvirtDriver'
_CACHE = 'nova.virt.libvirt.imagecache.ImageCacheManager'

PINNED_NAMES = (
    # resize, source side
    PinnedName(_DRIVER, '_is_booted_from_volume', ('block_device_info',),
               'call', 'resize: a root disk on a volume moves nothing'),
    PinnedName(_DRIVER, '_is_path_shared_with', ('dest', 'path'),
               'call', 'resize: shared instances_path copies locally'),
    PinnedName(_DRIVER, '_get_instance_disk_info',
               ('instance', 'block_device_info'),
               'call', 'resize: the disks to move, as Nova lists them'),
    PinnedName(_DRIVER, '_disconnect_volume',
               ('context', 'connection_info', 'instance', 'encryption',
                'destroy_secrets', 'force'),
               'call', 'resize: volumes leave the source host'),
    PinnedName(_DRIVER, '_cleanup_failed_instance_base', ('inst_base',),
               'call', 'resize: a stale <dir>_resize goes first'),
    PinnedName(_DRIVER, '_cleanup_remote_migration',
               ('dest', 'inst_base', 'inst_base_resize', 'shared_storage'),
               'call', 'resize: rollback of a failed move'),
    PinnedName(_DRIVER, '_remotefs', None, 'attribute',
               'resize: replaced by the rsync daemon channel'),
    PinnedName('nova.compute.manager.ComputeVirtAPI', '_compute', None,
               'attribute', 'resize recovery: the compute manager'),
    PinnedName('nova.compute.manager.ComputeManager', '_revert_allocation',
               ('context', 'instance', 'migration'), 'call',
               'resize recovery: the source\'s allocation back to the '
               'instance after a restart mid-move'),
    # snapshot
    PinnedName(_DRIVER, '_host', None, 'attribute',
               'snapshot: guests, power state, persistent definition'),
    PinnedName(_DRIVER, '_image_api', None, 'attribute',
               'snapshot: the image service'),
    PinnedName(_DRIVER, '_requires_quiesce', ('image_meta',),
               'call', 'snapshot: os_require_quiesce'),
    PinnedName(_DRIVER, '_can_quiesce', ('instance', 'image_meta'),
               'call', 'snapshot: is a guest agent there'),
    PinnedName(_DRIVER, '_suspend_guest_for_snapshot',
               ('context', 'live_snapshot', 'current_power_state',
                'instance'),
               'call', 'cold snapshot: managedSave of a running guest'),
    PinnedName(_DRIVER, '_resume_guest_after_snapshot',
               ('context', 'live_snapshot', 'original_power_state',
                'instance', 'guest'),
               'call', 'cold snapshot: the guest back as it was'),
    PinnedName(_DRIVER, '_delete_guest_configuration',
               ('guest', 'keep_vtpm', 'keep_nvram'),
               'call', 'live snapshot: undefine for a block copy'),
    PinnedName(_DRIVER, '_create_snapshot_metadata',
               ('image_meta', 'instance', 'img_fmt', 'snp_name'),
               'call', 'snapshot: Nova\'s image metadata'),
    # driver hooks novaext overrides
    PinnedName(_DRIVER, '_hard_reboot',
               ('context', 'instance', 'network_info', 'share_info',
                'block_device_info', 'accel_info'),
               'override', 'resize recovery: no write left in a pre-copy '
               'layer when the domain is rebuilt from the disks'),
    PinnedName(_DRIVER, '_get_volume_driver', ('connection_info',),
               'override', 'volume: novaext\'s volume driver types'),
    PinnedName(_DRIVER, '_disconnect_volume',
               ('context', 'connection_info', 'instance', 'encryption',
                'destroy_secrets', 'force'),
               'override', 'volume: a detach of an attach Nova did not '
               'record has nothing to disconnect'),
    PinnedName(_DRIVER, '_try_fetch_image_cache',
               ('image', 'fetch_func', 'context', 'filename', 'image_id',
                'instance', 'size', 'fallback_from_host'),
               'override', 'image cache: a base from a peer\'s daemon'),
    # image cache manager
    PinnedName(_CACHE, '_list_running_instances',
               ('context', 'all_instances'),
               'override', 'image cache: delta bases in use'),
    PinnedName(_CACHE, '_scan_base_images', ('base_dir',),
               'override', 'image cache: novaext\'s base names'),
    PinnedName(_CACHE, '_find_base_file', ('base_dir', 'fingerprint'),
               'override', 'image cache: novaext\'s base names'),
    PinnedName(_CACHE, '_get_base', (),
               'call', 'image cache: the _base directory'),
    # libvirt guest
    PinnedName('nova.virt.libvirt.guest.Guest', '_domain', None,
               'attribute', 'volume: the guest\'s view of a disk size; '
               'resize: an active commit; snapshot: a saved guest'),
)


def _nova_class(dotted):
    """Nova's own class of ``dotted``, also while tests/conformance.py
    points Nova's names at novaext's subclasses."""
    module, name = dotted.rsplit('.', 1)
    cls = getattr(importlib.import_module(module), name)
    return next(c for c in cls.__mro__
                if not c.__module__.startswith('novaext.'))


def _params(func):
    names = list(inspect.signature(func).parameters)
    return tuple(names[1:] if names[:1] == ['self'] else names)


def moved(pin):
    """What is wrong with ``pin`` in the installed Nova, or None."""
    owner = _nova_class(pin.owner)
    if pin.params is None:
        source = inspect.getsource(owner)
        if not re.search(r'self\.%s\s*[:=]' % re.escape(pin.name), source):
            return f'{pin.owner} no longer sets self.{pin.name}'
        return None
    func = getattr(owner, pin.name, None)
    if not callable(func):
        return f'{pin.owner}.{pin.name} is gone'
    if _params(func) != pin.params:
        return (f'{pin.owner}.{pin.name}{_params(func)} is not '
                f'{pin.params}')
    return None


def moved_names():
    """What moved of PINNED_NAMES in the installed Nova (empty: all is
    where novaext expects it); novaext-status upgrade check reports it."""
    return [m for m in map(moved, PINNED_NAMES) if m]


class NovaInternals:
    """Nova's libvirt driver as novaext's feature packages see it.

    Public driver methods are passed through as they are; each private
    one is a method named for what it does.
    """

    def __init__(self, driver):
        self._driver = driver

    # -- the driver's public parts ----------------------------------------
    @property
    def host(self):
        """Nova's libvirt Host (nova.virt.libvirt.host.Host)."""
        return self._driver._host

    @property
    def image_api(self):
        return self._driver._image_api

    @property
    def image_backend(self):
        return self._driver.image_backend

    @property
    def job_tracker(self):
        return self._driver.job_tracker

    @property
    def remotefs(self):
        return self._driver._remotefs

    def power_off(self, instance, timeout, retry_interval):
        return self._driver.power_off(instance, timeout, retry_interval)

    def unplug_vifs(self, instance, network_info):
        return self._driver.unplug_vifs(instance, network_info)

    def quiesce(self, context, instance, image_meta):
        return self._driver.quiesce(context, instance, image_meta)

    def unquiesce(self, context, instance, image_meta):
        return self._driver.unquiesce(context, instance, image_meta)

    # -- resize ------------------------------------------------------------
    def is_booted_from_volume(self, block_device_info):
        return self._driver._is_booted_from_volume(block_device_info)

    def is_path_shared_with(self, dest, path):
        return self._driver._is_path_shared_with(dest, path)

    def instance_disk_info(self, instance, block_device_info):
        """Nova's list of the instance's disks (dicts with path, type,
        backing_file, ...), read from its libvirt definition."""
        return self._driver._get_instance_disk_info(instance,
                                                    block_device_info)

    def disconnect_volume(self, context, connection_info, instance):
        return self._driver._disconnect_volume(context, connection_info,
                                               instance)

    def remove_resize_dir(self, inst_base_resize):
        """Nova's removal of a ``<dir>_resize`` left by a failed move."""
        return self._driver._cleanup_failed_instance_base(inst_base_resize)

    def revert_allocation(self, context, instance, migration):
        """Nova's own swap of a migration's allocation (the old flavor on
        the source) back to the instance, as its revert does; Nova's
        restart after an interrupted move does not."""
        return self._driver.virtapi._compute._revert_allocation(
            context, instance, migration)

    def provider_traits(self, context, rp_uuid):
        """The traits of resource provider ``rp_uuid`` in placement,
        through the compute manager's report client."""
        return self._driver.virtapi.reportclient.get_provider_traits(
            context, rp_uuid).traits

    def roll_back_move(self, dest, inst_base, inst_base_resize, shared):
        """Nova's rollback of a failed move: ``<dir>_resize`` back to
        ``<dir>``, what reached the destination removed."""
        return self._driver._cleanup_remote_migration(
            dest, inst_base, inst_base_resize, shared)

    # -- snapshot ----------------------------------------------------------
    def requires_quiesce(self, image_meta):
        return self._driver._requires_quiesce(image_meta)

    def check_can_quiesce(self, instance, image_meta):
        """Raise Nova's exception when the guest cannot be quiesced."""
        return self._driver._can_quiesce(instance, image_meta)

    def save_guest_for_cold_snapshot(self, context, power_state, instance):
        """Nova's managedSave of a running or paused guest."""
        return self._driver._suspend_guest_for_snapshot(
            context, False, power_state, instance)

    def restore_guest_after_cold_snapshot(self, context, power_state,
                                          instance, guest):
        return self._driver._resume_guest_after_snapshot(
            context, False, power_state, instance, guest)

    def undefine_keeping_state(self, guest):
        """Undefine the domain, keeping its vTPM and NVRAM files."""
        return self._driver._delete_guest_configuration(
            guest, keep_vtpm=True, keep_nvram=True)

    def snapshot_metadata(self, image_meta, instance, disk_format, name):
        """Nova's metadata for a snapshot image of ``instance``."""
        return self._driver._create_snapshot_metadata(
            image_meta, instance, disk_format, name)


def guest_block_capacity(guest, target_dev):
    """The size in bytes that QEMU reports for ``guest``'s disk
    ``target_dev`` (libvirt's virDomainGetBlockInfo); Nova's Guest has
    no public method for it."""
    return guest._domain.blockInfo(target_dev)[0]


def has_saved_state(guest):
    """True when libvirt holds a managed save image of ``guest`` (a
    managedSave whose guest was not started again); Nova's Guest has no
    public method for it."""
    return bool(guest._domain.hasManagedSaveImage(0))


def start_active_commit(guest, target_dev, base, top):
    """Start merging ``top``, the layer ``guest`` writes to on disk
    ``target_dev``, and the layers below it down to ``base``, into
    ``base`` (virDomainBlockCommit, active); the job then waits for a
    pivot. ``base`` is a path, never None: libvirt would take that for
    the bottom of the chain, the image base. Nova's BlockDevice.commit
    starts no active commit."""
    if base is None:
        raise ValueError('an active commit needs an explicit base')
    # Nova's own libvirt module: the real one, or Nova's fake in tests.
    from nova.virt.libvirt import driver as libvirt_driver
    libvirt = libvirt_driver.libvirt
    guest._domain.blockCommit(
        target_dev, base, top, 0,
        flags=libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
