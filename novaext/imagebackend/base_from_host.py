"""A base that neither this host nor the image service has, from its peer.

Resize, cold migration and block live migration name the source host as
``fallback_from_host``: when the image service no longer has an image
(deleted after boot), its base is pulled from that host's ``_base``
through the peer's rsync daemon (its read-only base module), to a
temporary name under the same lock
Nova takes for the base, verified (verified_base.check_pulled: against
the image service when it answers, else against the peer's record of the
base, pulled beside it) and renamed into place when complete.
"""

import os

from nova import exception
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import fileutils

from novaext import progress as novaext_progress
from novaext.imagebackend import base_names
from novaext.imagebackend import base_once
from novaext.imagebackend import verified_base
from novaext.rsync import client as rsync_client
from novaext.rsync import peer_address

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def _pull_marker(client, filename, workdir):
    """The peer's record of base ``filename``, or None when it has none."""
    local = os.path.join(workdir, filename + verified_base.MARKER_SUFFIX)
    try:
        client.pull_base(local, filename + verified_base.MARKER_SUFFIX)
    except rsync_client.RsyncTransferError as e:
        LOG.info('No record of base %(name)s on the peer: %(err)s',
                 {'name': filename, 'err': e})
        return None
    try:
        return verified_base.Marker.load(local)
    finally:
        fileutils.delete_if_exists(local)


def fetch_else_pull(fetch, context, instance, image, image_id, filename,
                    fallback_from_host):
    """``fetch()`` (Nova's _try_fetch_image_cache, its own ssh fallback
    off); when the image service does not have the image or does not
    answer and ``fallback_from_host`` names the host the instance comes
    from, the base is pulled from that host's rsync daemon and ``fetch()``
    runs again, finding it here.

    Nova's own fallback copies over ssh and only when the image is gone;
    this one also when the image service is unreachable, since the peer
    holds the same bytes.
    """
    try:
        return fetch()
    except (exception.ImageNotFound,
            exception.GlanceConnectionFailed) as e:
        if not fallback_from_host:
            raise
        # An existing disk names its own base (for a delta-snapshot
        # instance the delta's base, not sha1(image id)).
        wanted = getattr(image, 'backing_base_name', lambda: None)()
        base = wanted or filename
        address = peer_address.address_of(context, fallback_from_host)
        LOG.info('Image %(image)s is not available from the image '
                 'service (%(err)s); pulling base %(base)s from '
                 '%(host)s at %(address)s',
                 {'image': image_id, 'err': e, 'base': base,
                  'host': fallback_from_host, 'address': address},
                 instance=instance)
        pull_base(context, instance, address, base, image_id,
                  image.lock_path)
    return fetch()


def pull_base(context, instance, host, filename, image_id, lock_path):
    """Make ``_base/filename`` exist here, pulled from ``host`` and
    verified; reported as the ``base.pull`` operation of ``instance``
    (novaext.progress).

    :param image_id: the image the instance was booted from; it vouches
        for the base only when the base is that image's (for a delta
        snapshot's base, the peer's record does)
    :raises ImageUnacceptable: the pulled bytes are not the base
    """
    base = os.path.join(base_names.base_dir(), filename)
    client = rsync_client.RsyncDaemonClient.from_conf(CONF, host)

    def pull(path):
        with novaext_progress.Progress(
                context, instance, 'base.pull',
                {'base': filename, 'source': host}) as progress:
            with base_once.written_whole(path) as part:
                received = client.pull_base(
                    part, filename,
                    on_progress=progress.phase('pull').update)
                marker = _verified(context, client, part, path, filename,
                                   image_id)
            if marker is not None:
                marker.save(path)
            progress.end(bytes_received=received)

    base_once.make_once(base, filename, lock_path, pull)
    return base


def _verified(context, client, part, base, filename, image_id):
    """The record of the check of the pulled ``part`` against what the
    image service or the peer says ``base`` holds; None when
    [novaext]verify_bases is off.

    :raises ImageUnacceptable: the pulled bytes are not the base
    """
    if not CONF.novaext.verify_bases:
        return None
    own = filename == base_names.of_image(image_id or '')
    return verified_base.check_pulled(
        context, part, filename, image_id if own else None,
        _pull_marker(client, filename, os.path.dirname(base)))
