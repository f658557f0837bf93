"""What a compute host's novaext can do for a move, advertised to its
peers as traits of its compute node's resource provider in placement.

During a rolling upgrade hosts run different novaext releases and move
guests between each other both ways. A newer source must not send a
guest the new way to an older destination: an older novaext refuses a
pre-copied disk after the guest was already powered off. So each host
adds the traits of what it accepts (``update_provider_tree``), and the
source reads the destination's before touching the guest; a destination
without the trait (older, or not novaext) gets the guest the way every
release accepts. An older source never asks, and sends the old way, which
every newer destination accepts too.
"""

from nova import objects
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# The destination merges a pre-copied overlay and its catch-up layer in
# finish_migration (resize.dest.merge_precopied).
RESIZE_PRECOPY = 'CUSTOM_NOVAEXT_RESIZE_PRECOPY_V1'

# Every trait this release adds to its compute node.
TRAITS = (RESIZE_PRECOPY,)
# What every novaext trait's name begins with, of any release.
TRAIT_PREFIX = 'CUSTOM_NOVAEXT_'


def advertise(provider_tree, nodename):
    """update_provider_tree's step: this host's traits on its node, and
    none of novaext's others. Placement keeps a trait until someone
    removes it, so a host downgraded from a release that added more
    would go on advertising what it no longer accepts."""
    stale = [t for t in provider_tree.data(nodename).traits
             if t.startswith(TRAIT_PREFIX) and t not in TRAITS]
    if stale:
        LOG.info('Removing %s from %s: this novaext does not accept '
                 'them', ', '.join(sorted(stale)), nodename)
        provider_tree.remove_traits(nodename, *stale)
    provider_tree.add_traits(nodename, *TRAITS)


def destination_has(internals, context, instance, trait):
    """True when the destination of ``instance``'s move in progress
    advertises ``trait``; False when it does not or cannot be told
    (logged: the move goes the way every release accepts)."""
    try:
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        node = objects.ComputeNode.get_by_host_and_nodename(
            context, migration.dest_compute, migration.dest_node)
        traits = internals.provider_traits(context, node.uuid)
    except Exception as e:
        LOG.warning('Cannot tell whether the destination has %(trait)s '
                    '(%(err)s): moving as every novaext release accepts',
                    {'trait': trait, 'err': e}, instance=instance)
        return False
    if trait not in traits:
        LOG.info('%(host)s does not advertise %(trait)s (an older '
                 'novaext?): moving as every release accepts',
                 {'host': migration.dest_compute, 'trait': trait},
                 instance=instance)
        return False
    return True
