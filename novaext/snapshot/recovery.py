"""What a snapshot left when nova-compute died in its middle, put right
when nova-compute starts again (ExtLibvirtDriver.init_host).

Nova's restart clears the instance's snapshot task state and nothing
else. A live snapshot interrupted there leaves the guest's block copy
job mirroring every write into a file of the snapshot's scratch
directory for as long as the guest runs (and, on a libvirt that copies
only without a persistent definition, the domain transient); any
snapshot leaves its scratch directory. The guest's own disk is never
written by a snapshot, so its data is safe either way; this module ends
the rest:

- every copy job of a running guest whose mirror is in one of this
  host's scratch directories is aborted (no pivot: the guest stays on
  its disk), and a domain left transient is defined again from what
  runs;
- a guest that a cold snapshot had saved (managedSave; the record in
  its scratch directory, snapshot.cold) and that is still off with its
  saved state is started again from it, through Nova's own restore of a
  cold snapshot, as the snapshot would have; Nova's start would leave
  it off until the power-state sync stops it, and the next start would
  discard its saved memory;
- this host's scratch directories are removed (named by the host,
  ``scratch_prefix``, so that a host sharing instances_path never
  removes another's).
"""

import glob
import hashlib
import os
import shutil

from lxml import etree
from nova import context as nova_context
from nova import exception
from nova import objects
from oslo_log import log as logging

from novaext import nova_internals
from novaext.snapshot import cold

LOG = logging.getLogger(__name__)


def scratch_prefix(host):
    """The name prefix of ``host``'s snapshot scratch directories: by a
    digest of the host's name, so that no host's prefix is the start of
    another's (``c1`` and ``c1-a``)."""
    digest = hashlib.sha1(host.encode()).hexdigest()[:16]
    return f'novaext-snapshot-{digest}-'


def _mirrors(xml):
    """{target dev: mirror file} of the copy jobs in a live domain XML."""
    found = {}
    for disk in etree.fromstring(xml).findall('./devices/disk'):
        mirror = disk.find('mirror')
        target = disk.find('target')
        if mirror is None or target is None:
            continue
        source = mirror.find('source')
        path = mirror.get('file') or (
            source.get('file') if source is not None else None)
        if path:
            found[target.get('dev')] = path
    return found


def _inside(path, directory):
    directory = os.path.abspath(directory)
    return os.path.commonpath([directory, os.path.abspath(path)]) == \
        directory


def abort_stale_copies(internals, host, snapshots_directory):
    """Abort the copy jobs into ``host``'s scratch directories; returns
    the names of the guests they ran on."""
    prefix = os.path.join(snapshots_directory, scratch_prefix(host))
    ended = []
    for guest in internals.host.list_guests(only_running=True):
        stale = {dev: path for dev, path in
                 _mirrors(guest.get_xml_desc()).items()
                 if _inside(path, snapshots_directory) and
                 path.startswith(prefix)}
        for dev, path in stale.items():
            guest.get_block_device(dev).abort_job()
            LOG.warning('Aborted the block copy of %(dev)s into %(path)s '
                        'left by a snapshot that nova-compute did not '
                        'finish; the guest stays on its disk',
                        {'dev': dev, 'path': path}, instance=guest.uuid)
        if stale:
            if not guest.has_persistent_configuration():
                internals.host.write_instance_config(guest.get_xml_desc())
                LOG.warning('Defined %s again: the interrupted snapshot '
                            'had left it transient', guest.name)
            ended.append(guest.name)
    return ended


def _scratch_directories(host, snapshots_directory):
    return sorted(glob.glob(os.path.join(
        glob.escape(snapshots_directory), scratch_prefix(host) + '*')))


def resume_saved_guests(internals, host, snapshots_directory):
    """Start again, from their saved state, the guests that ``host``'s
    unfinished cold snapshots left saved. A guest running, gone, or
    without a saved state is left as it is (it was restored, deleted, or
    started by someone else).

    :returns: (the uuids of the instances started, the scratch
        directories whose guest could not be: they are kept, so that the
        next start tries again)
    """
    context = nova_context.get_admin_context()
    resumed, failed = [], []
    for scratch in _scratch_directories(host, snapshots_directory):
        record = cold.read_saved_record(scratch)
        if record is None:
            continue
        uuid, power_state = record
        try:
            instance = objects.Instance.get_by_uuid(context, uuid)
            guest = internals.host.get_guest(instance)
        except exception.NotFound:  # the instance or its domain
            continue
        if guest.is_active() or not nova_internals.has_saved_state(guest):
            continue
        try:
            internals.restore_guest_after_cold_snapshot(context, power_state,
                                                        instance, guest)
        except Exception:
            LOG.exception('Could not start the guest again from the state '
                          'a cold snapshot saved (nova-compute had died '
                          'before the snapshot ended); its record %s is '
                          'kept for the next start. A hard reboot starts '
                          'it afresh instead, without that state',
                          scratch, instance=instance)
            failed.append(scratch)
            continue
        LOG.warning('Started the guest again from the state a cold '
                    'snapshot saved: nova-compute had died before the '
                    'snapshot ended', instance=instance)
        resumed.append(uuid)
    return resumed, failed


def remove_scratch(host, snapshots_directory, keep=()):
    """Remove ``host``'s scratch directories (none is in use when
    nova-compute starts) but those in ``keep``; returns their paths."""
    removed = [path for path in _scratch_directories(host,
                                                     snapshots_directory)
               if path not in keep]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        LOG.warning('Removed %s, the scratch directory of a snapshot that '
                    'nova-compute did not finish', path)
    return removed


def recover(internals, host, snapshots_directory):
    """init_host's step: the three above, in that order (a mirror is
    released and a saved guest started before their directory goes). A
    failure is logged: it never keeps nova-compute from starting (the
    guests' data is safe either way); what failed stays for the next
    start."""
    try:
        abort_stale_copies(internals, host, snapshots_directory)
        _, failed = resume_saved_guests(internals, host, snapshots_directory)
        remove_scratch(host, snapshots_directory, keep=failed)
    except Exception:
        LOG.exception('Could not end what an interrupted snapshot left; '
                      'it is left as it is')
