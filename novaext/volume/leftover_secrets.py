"""Cloud-disk CHAP secrets that no guest uses any more.

connect_volume defines a volume's secret before Nova attaches the device
and, once attach_volume returned, records the connection on the block
device mapping. nova-compute killed in between leaves a secret no domain
names and a mapping without connection_info, which Nova skips when it
deletes the server and cannot detach (it has no volume driver to ask).
These functions find what such an attach left and remove it:

- ``remove_unused`` (``remove_unused_at_start``): at nova-compute's
  start (init_host, before any operation of this process can be between
  its connect and its attach), every cloud-disk secret that no domain on
  the host names;
- ``detach_unrecorded``: the detach of a mapping without connection_info
  runs Nova's own (the device leaves the guest if it got there), then
  removes the secret of the volume that was at that mountpoint.
"""

import libvirt
from lxml import etree
from nova import exception as nova_exception
from oslo_log import log as logging

from novaext.volume import clouddisk

LOG = logging.getLogger(__name__)


def _named_secrets(domain):
    uuids = set()
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        try:
            xml = etree.fromstring(domain.XMLDesc(flags))
        except libvirt.libvirtError:
            continue    # gone meanwhile, or transient (no inactive XML)
        uuids.update(s.get('uuid') for s in
                     xml.iterfind('./devices/disk//auth/secret'))
    return uuids


def _cloud_disk_secrets(conn):
    return [s for s in conn.listAllSecrets(0)
            if (s.usageID() or '').startswith(clouddisk.SECRET_USAGE_PREFIX)]


def remove_unused(conn):
    """Undefine every cloud-disk secret no domain of ``conn`` (running or
    defined) names. Only safe where no attach of this host is between
    its connect_volume and its device attach, as at init_host.

    :returns: the usage IDs removed
    """
    named = set()
    for domain in conn.listAllDomains(0):
        named |= _named_secrets(domain)
    removed = []
    for secret in _cloud_disk_secrets(conn):
        if secret.UUIDString() in named:
            continue
        usage = secret.usageID()
        secret.undefine()
        removed.append(usage)
        LOG.warning('Removed the CHAP secret %s: no guest on this host '
                    'uses it (an attach nova-compute did not finish)',
                    usage)
    return removed


def remove_unused_at_start(conn):
    """remove_unused for init_host: a cleanup that must not keep
    nova-compute from starting, so a failure is logged, not raised (the
    next start looks again)."""
    try:
        return remove_unused(conn)
    except Exception:
        LOG.exception('Could not look for unused cloud-disk CHAP secrets; '
                      'nova-compute starts anyway')
        return []


def detach_unrecorded(host, instance, mountpoint, nova_detach):
    """The detach of a volume whose attach Nova never recorded (its
    mapping has no connection_info): ``nova_detach()`` (Nova's, which
    takes the device at ``mountpoint`` out of the guest if it is there
    and has nothing to disconnect), then the cloud-disk secret of the
    volume that device was."""
    serial = None
    try:
        disk = host.get_guest(instance).get_disk(mountpoint.rpartition('/')[2])
        serial = disk.serial if disk is not None else None
    except nova_exception.InstanceNotFound:
        pass    # no guest, so no device of it; Nova's detach says so
    LOG.warning('Detaching %s, whose attach nova-compute did not finish '
                '(no connection recorded): nothing to disconnect',
                mountpoint, instance=instance)
    nova_detach()
    if serial:
        host.delete_secret('iscsi', clouddisk.secret_usage(serial))
