"""A base that neither this host nor the image service has, from its peer.

Resize, cold migration and block live migration name the source host as
``fallback_from_host``: when the image service no longer has an image
(deleted after boot), its base is pulled from that host's ``_base``
through the peer's rsync daemon (its read-only base module), to a
temporary name under the same lock
Nova takes for the base, and renamed into place when complete. Nova's
qcow2 backend then safety-checks it like any base.
"""

import os

from nova import utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

from novaext.imagebackend import base_entry
from novaext.virt import rsync_client

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def pull_base(host, filename, lock_path):
    """Make ``_base/filename`` exist here, pulled from ``host``."""
    subdir = CONF.image_cache.subdirectory_name
    base = os.path.join(CONF.instances_path, subdir, filename)
    fileutils.ensure_tree(os.path.dirname(base))
    client = rsync_client.RsyncDaemonClient.from_conf(CONF, host)

    @utils.synchronized(filename, external=True, lock_path=lock_path)
    def pull_once():
        if base_entry.present(base):
            return
        part = base + '.part'
        with fileutils.remove_path_on_error(part):
            client.pull_base(part, filename)
            os.rename(part, base)
    pull_once()
    return base
