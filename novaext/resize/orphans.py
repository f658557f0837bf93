"""Instance directories a host keeps for nobody: the partial copy of a
move that failed where its source could not remove it.

A resize whose push fails rolls back on the source and removes what
reached the destination through the destination's rsync daemon; when
that daemon is what died (or the source host never came back), the
partial copy stays on the destination, and neither Nova's restart nor its
periodic cleanup (which looks at deleted instances only) removes it.
``OrphanSweeper`` runs on every compute host and removes an instance
directory under instances_path when all of these hold:

- the instance exists and Nova records it on another host;
- no migration of it to or from this host is in progress (any status
  but a final one), checked again just before the removal;
- no libvirt domain of it is defined here;
- this host's instances_path is not shared with the instance's host
  (probed through that host's rsync daemon, as a resize does; a host
  that cannot be probed keeps its directories).

Anything else (a deleted instance, a name that is no instance) is left
to Nova. Every removal is logged at WARNING with its reasons.
"""

import os
import shutil
import threading

from nova import context as nova_context
from nova import exception
from nova import objects
from oslo_log import log as logging
from oslo_utils import uuidutils

from novaext.rsync import peer_address

LOG = logging.getLogger(__name__)

# Migration statuses after which no host touches the instance's files
# for that migration again (Nova's resize, live migration, evacuation).
FINAL_STATUSES = frozenset(('error', 'failed', 'completed', 'confirmed',
                            'reverted', 'cancelled', 'done'))


def instance_dirs(instances_path):
    """Names of the directories under ``instances_path`` named by an
    instance uuid."""
    try:
        names = os.listdir(instances_path)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if uuidutils.is_uuid_like(n) and
                  os.path.isdir(os.path.join(instances_path, n)))


def _moving_here(context, instance, host):
    migrations = objects.MigrationList.get_by_filters(
        context, {'instance_uuid': instance.uuid})
    return [m for m in migrations if m.status not in FINAL_STATUSES and
            host in (m.source_compute, m.dest_compute)]


class OrphanSweeper:
    """Finds and removes this host's orphan instance directories (module
    docstring); ``internals`` is NovaInternals, ``host`` this compute host's
    name."""

    def __init__(self, internals, host, instances_path):
        self.internals = internals
        self.host = host
        self.instances_path = instances_path
        self._stop = threading.Event()

    def _shared_with(self, context, instance):
        """True when this host's directory of ``instance`` is its host's
        too, or when that cannot be told (Nova's own probe takes a
        failure for "not shared", which here would remove a running
        instance's files from shared storage). The probe goes where
        Nova's does, into the instance's directory: the daemon serves
        nothing at the top of instances_path."""
        return self._probe(peer_address.address_of(context, instance.host),
                           os.path.join(self.instances_path, instance.uuid))

    def _probe(self, address, directory):
        probe = os.path.join(directory,
                             f'novaext-probe-{uuidutils.generate_uuid()}.tmp')
        try:
            self.internals.remotefs.create_file(address, probe)
        except Exception as e:
            LOG.info('Orphan sweep: cannot tell whether %(path)s is '
                     'shared with %(peer)s (%(err)s); it stays',
                     {'path': directory, 'peer': address, 'err': e})
            return True
        if os.path.exists(probe):
            os.unlink(probe)
            return True
        try:
            self.internals.remotefs.remove_file(address, probe)
        except Exception as e:
            LOG.warning('Could not remove the probe %(probe)s on '
                        '%(peer)s: %(err)s', {'probe': probe,
                                              'peer': address, 'err': e})
        return False

    def _defined_here(self, instance):
        try:
            self.internals.host.get_guest(instance)
        except exception.InstanceNotFound:
            return False
        return True

    def orphans(self, context):
        """The instances whose directories here are orphans."""
        names = instance_dirs(self.instances_path)
        if not names:
            return []
        instances = objects.InstanceList.get_by_filters(
            context, {'uuid': names, 'deleted': False})
        found = []
        for instance in instances:
            if not instance.host or instance.host == self.host:
                continue
            if _moving_here(context, instance, self.host):
                continue
            if self._defined_here(instance):
                continue
            if self._shared_with(context, instance):
                continue
            found.append(instance)
        return found

    def sweep(self, context=None):
        """Remove the orphan directories; returns their instances'
        uuids."""
        context = context or nova_context.get_admin_context()
        removed = []
        for instance in self.orphans(context):
            if _moving_here(context, instance, self.host):
                continue
            path = os.path.join(self.instances_path, instance.uuid)
            shutil.rmtree(path, ignore_errors=True)
            LOG.warning('Removed %(path)s: instance %(uuid)s runs on '
                        '%(owner)s, no migration of it involves this host '
                        'any more, no domain of it is defined here and the '
                        'instances path is not shared with %(owner)s (the '
                        'partial copy of a move that failed)',
                        {'path': path, 'uuid': instance.uuid,
                         'owner': instance.host})
            removed.append(instance.uuid)
        return removed

    def _run(self, interval):
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:
                LOG.exception('The orphan sweep failed; it runs again in '
                              '%s s', interval)

    def start(self, interval):
        """Sweep every ``interval`` seconds in a daemon thread (the first
        one ``interval`` after the start; 0: never)."""
        if interval > 0:
            threading.Thread(target=self._run, args=(interval,),
                             name='novaext-orphan-sweep',
                             daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
