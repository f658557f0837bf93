"""A file-backed Cinder volume driver exporting cloud disks (test infra).

This machine's kernel has no device-mapper, NFS or kernel iSCSI initiator,
so Cinder's LVM and NFS drivers cannot run here. This driver keeps each
volume as a sparse file in ``[<backend>] file_volumes_dir`` and exports it
through Cinder's own tgt target helper (``target_helper = tgtadm``, CHAP
when ``use_chap_auth``); its connections are iSCSI LUNs labelled
``driver_volume_type: clouddisk``, which novaext attaches (with
``[novaext] clouddisk_attach_mode = qemu`` here: QEMU's own initiator).

Only what the cloud tier needs: create, delete, extend (the file grows,
then Cinder's ``extend_target`` has tgt re-read it), export and connect.
Not shipped in novaext's wheel.
"""

import os

from cinder import exception
from cinder.volume import driver
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import importutils

LOG = logging.getLogger(__name__)
GiB = 1024 ** 3

OPTS = [
    cfg.StrOpt('file_volumes_dir', default='$state_path/file-volumes',
               help='Directory of the volumes\' sparse files.'),
]
CONF = cfg.CONF
CONF.register_opts(OPTS, group='backend_defaults')


class FileVolumeDriver(driver.VolumeDriver):
    """Sparse files under ``file_volumes_dir`` as iSCSI cloud disks."""

    VERSION = '1.0.0'
    CI_WIKI_NAME = None
    CONNECTION_TYPE = 'clouddisk'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(OPTS)
        self.backend_name = (
            self.configuration.safe_get('volume_backend_name') or 'file')
        # As Cinder's LVM driver does: the target helper by its name.
        self.target_driver = importutils.import_object(
            self.target_mapping[self.configuration.safe_get(
                'target_helper')],
            configuration=self.configuration, executor=self._execute)

    # -- setup -------------------------------------------------------------
    @property
    def _dir(self):
        return self.configuration.file_volumes_dir

    def do_setup(self, context):
        os.makedirs(self._dir, mode=0o700, exist_ok=True)

    def check_for_setup_error(self):
        if not os.access(self._dir, os.W_OK):
            raise exception.VolumeBackendAPIException(
                data=f'{self._dir} is not a writable directory')

    def local_path(self, volume):
        return os.path.join(self._dir, volume.name)

    # -- volumes -----------------------------------------------------------
    def create_volume(self, volume):
        path = self.local_path(volume)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, volume.size * GiB)
        finally:
            os.close(fd)
        LOG.info('Created %s (%d GiB, sparse)', path, volume.size)

    def delete_volume(self, volume):
        try:
            os.unlink(self.local_path(volume))
        except FileNotFoundError:
            LOG.warning('%s was already gone', self.local_path(volume))

    def extend_volume(self, volume, new_size):
        os.truncate(self.local_path(volume), new_size * GiB)
        # tgt read the LUN's size when it opened the file; Cinder's helper
        # re-creates the target (when attached) so that it reads it again.
        self.target_driver.extend_target(volume)
        LOG.info('Extended %s to %d GiB', self.local_path(volume), new_size)

    # -- exports and connections (Cinder's tgt helper does the work) --------
    def create_export(self, context, volume, connector):
        export = self.target_driver.create_export(context, volume,
                                                  self.local_path(volume))
        return {'provider_location': export['location'],
                'provider_auth': export['auth']}

    def ensure_export(self, context, volume):
        self.target_driver.ensure_export(context, volume,
                                         self.local_path(volume))

    def remove_export(self, context, volume):
        self.target_driver.remove_export(context, volume)

    def initialize_connection(self, volume, connector):
        info = self.target_driver.initialize_connection(volume, connector)
        info['driver_volume_type'] = self.CONNECTION_TYPE
        return info

    def validate_connector(self, connector):
        return self.target_driver.validate_connector(connector)

    def terminate_connection(self, volume, connector, **kwargs):
        self.target_driver.terminate_connection(volume, connector, **kwargs)

    # -- what the scheduler sees -------------------------------------------
    def _update_volume_stats(self):
        fs = os.statvfs(self._dir)
        self._stats = {
            'volume_backend_name': self.backend_name,
            'vendor_name': 'novaext',
            'driver_version': self.VERSION,
            'storage_protocol': 'iSCSI',
            'total_capacity_gb': fs.f_blocks * fs.f_frsize // GiB,
            'free_capacity_gb': fs.f_bavail * fs.f_frsize // GiB,
            'reserved_percentage': 0,
            'thin_provisioning_support': True,
            'thick_provisioning_support': False,
            'max_over_subscription_ratio': 20.0,
            'multiattach': False,
        }
