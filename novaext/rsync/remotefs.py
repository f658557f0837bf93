"""Nova's remote-filesystem interface over the peer's rsync daemon.

Nova's libvirt driver reaches other compute hosts through
``self._remotefs`` (create_file, remove_file, create_dir, remove_dir),
over ssh. novaext gives the driver this class instead, so Nova's own
shared-storage probe (``_is_path_shared_with``) and rollback
(``_cleanup_remote_migration``, ``_cleanup_resize``) go through the
authenticated rsync daemon, and compute hosts need no ssh trust.

Paths are Nova's absolute paths under ``[DEFAULT]instances_path``, the
same on every host as Nova assumes; anything else is refused.
"""

import os

from oslo_log import log as logging

from novaext.rsync import client as rsync_client

LOG = logging.getLogger(__name__)


class DaemonRemoteFilesystem:
    """The four remote calls Nova's driver makes, over rsync://."""

    def __init__(self, conf, client_factory=None):
        self._conf = conf
        self._client_factory = client_factory or (
            lambda host: rsync_client.RsyncDaemonClient.from_conf(conf, host))

    def _components(self, path):
        root = os.path.abspath(self._conf.instances_path)
        path = os.path.abspath(path)
        if os.path.commonpath([root, path]) != root or path == root:
            raise rsync_client.InvalidRemotePath(
                component=path, reason=f'not inside instances_path {root}')
        return os.path.relpath(path, root).split(os.sep)

    def create_file(self, host, dst_path, on_execute=None,
                    on_completion=None):
        self._client_factory(host).create_empty_file(
            *self._components(dst_path))

    def remove_file(self, host, dst_path, on_execute=None,
                    on_completion=None):
        self._client_factory(host).remove(*self._components(dst_path))

    def create_dir(self, host, dst_path, on_execute=None,
                   on_completion=None):
        self._client_factory(host).make_dir(*self._components(dst_path))

    def remove_dir(self, host, dst_path, on_execute=None,
                   on_completion=None):
        """Remove ``dst_path`` on ``host``; a failure is logged, then raised.

        Nova's rollback swallows the error, so the log line is what tells
        the operator a partial copy was left on an unreachable host.
        """
        try:
            self._client_factory(host).remove(*self._components(dst_path))
        except rsync_client.RsyncTransferError as e:
            LOG.warning('Could not remove %(dst)s on %(host)s: %(err)s. It '
                        'is a partial copy no instance uses; the next '
                        'migration there overwrites it, or remove it by '
                        'hand.', {'dst': dst_path, 'host': host, 'err': e})
            raise
