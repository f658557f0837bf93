"""The one address novaext reaches another compute host at.

Nova migrates to ``migration.dest_host``, the destination's
``[DEFAULT]my_ip``, which every compute service also records as its
ComputeNode's ``host_ip``. The push goes there; a base pulled from the
source host (``fallback_from_host``, a service host name) goes to the
same kind of address: that host's ComputeNode ``host_ip``. So each peer's
rsync daemon needs to listen on its my_ip only, and service host names
need not resolve (nor be valid DNS names).
"""

from nova import exception
from nova import objects
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def address_of(context, host):
    """``host``'s my_ip as its compute nodes record it; ``host`` itself
    when no compute node of that name records one (logged)."""
    try:
        nodes = objects.ComputeNodeList.get_all_by_host(context, host)
    except exception.ComputeHostNotFound:
        nodes = []
    for node in nodes:
        if node.obj_attr_is_set('host_ip') and node.host_ip:
            return str(node.host_ip)
    LOG.warning('No compute node of host %(host)s records its address '
                '(host_ip); reaching it by its host name', {'host': host})
    return host
