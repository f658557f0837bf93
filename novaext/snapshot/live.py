"""Live snapshot: mirror a running guest's root disk into a new overlay.

``LiveCopy.run`` does, on the guest as it runs:

1. abort any stale block job on the disk (abort is idempotent);
2. create ``delta``: a qcow2 with the disk's own backing file and size;
3. start a block copy of the disk's top layer into it (copy, shallow,
   reuse_ext) through Nova's ``BlockDevice``; the guest keeps running
   (or stays paused) and keeps writing to its own disk;
4. wait for the mirror to be ready, reporting progress, up to a timeout;
5. freeze the guest's filesystems if the image asks for it (Nova's
   quiesce), end the job WITHOUT pivoting (the guest stays on its disk,
   ``delta`` holds the disk as it was at that moment), thaw;
6. give ``delta`` back to the compute service's user, as Nova does:
   libvirt (dynamic_ownership) handed it to the user QEMU runs as.

The domain's persistent definition is saved first and is restored if it
is missing or different afterwards, whatever happened (``KeptDefinition``).
How the copy is started is one of two small strategies: a block copy
flagged as a transient job keeps the domain persistent throughout
(libvirt >= 3.2); older libvirt refuses block copy on a persistent domain,
so the fallback undefines it for the job, as Nova's own _live_snapshot
does, and the saved definition puts it back.
"""

import os
import time
from xml.etree import ElementTree

import nova.privsep.path
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log as logging

from novaext.exception import BlockJobTimeout
from novaext.exception import LiveSnapshotFailed

LOG = logging.getLogger(__name__)


def _libvirt_error_code(error):
    get = getattr(error, 'get_error_code', None)
    return get() if get else None


class KeptDefinition:
    """Saves a guest's persistent definition; puts it back on exit.

    ``current_guest``: when given, a function returning the guest as
    libvirt sees it now, used instead of ``guest`` (a Guest kept across a
    libvirtd restart holds a dead connection; Nova's Host reconnects)."""

    def __init__(self, internals, guest, current_guest=None):
        self._nova = internals
        self._guest = current_guest or (lambda: guest)
        self.xml = None

    def current(self):
        guest = self._guest()
        if not guest.has_persistent_configuration():
            return None
        return guest.get_xml_desc(dump_inactive=True, dump_sensitive=True)

    def save(self):
        self.xml = self.current()

    def restore(self):
        """Write the saved definition back if it changed."""
        if self.xml is not None and self.current() != self.xml:
            LOG.info('Restoring the persistent definition of %s',
                     self._guest().name)
            self._nova.host.write_instance_config(self.xml)

    def __enter__(self):
        self.save()
        return self

    def __exit__(self, *exc):
        self.restore()
        return False


class TransientJobCopy:
    """Block copy flagged as a transient job: the domain stays defined."""

    name = 'transient-job'

    def start(self, internals, guest, dev, delta):
        disk = ElementTree.Element('disk', type='file')
        ElementTree.SubElement(disk, 'source', file=delta)
        ElementTree.SubElement(disk, 'driver', type='qcow2')
        dev.copy(ElementTree.tostring(disk, encoding='unicode'),
                 shallow=True, reuse_ext=True, transient=True)


class UndefinedDomainCopy:
    """Nova's way: undefine the domain for the job (KeptDefinition
    defines it again)."""

    name = 'undefine'

    def start(self, internals, guest, dev, delta):
        if guest.has_persistent_configuration():
            internals.undefine_keeping_state(guest)
        dev.rebase(delta, copy=True, reuse_ext=True, shallow=True)


STRATEGIES = (TransientJobCopy(), UndefinedDomainCopy())

# libvirt's answers meaning "this libvirt cannot copy this way"
_TRY_NEXT = ('VIR_ERR_OPERATION_INVALID', 'VIR_ERR_NO_SUPPORT',
             'VIR_ERR_ARGUMENT_UNSUPPORTED')


class BlockJobWaiter:
    """Polls a copy job until its mirror is ready, with progress
    (``progress``: None reports nothing); ``check_space`` (when given) is
    called at each poll and ends the wait by raising."""

    def __init__(self, dev, disk, timeout, progress, poll=0.5,
                 clock=time.monotonic, sleep=time.sleep, check_space=None):
        self.dev = dev
        self.disk = disk
        self.timeout = timeout
        self.progress = progress
        self.check_space = check_space
        self.poll = poll
        self._clock = clock
        self._sleep = sleep

    def wait(self):
        start = self._clock()
        while True:
            info = self.dev.get_job_info()
            if info is None:
                # A copy job never ends by itself: gone means failed.
                raise LiveSnapshotFailed(
                    disk=self.disk, reason='the block job disappeared')
            if self.progress is not None:
                self.progress.update(info.cur, info.end)
            if info.end and info.cur == info.end and \
                    self.dev.is_job_complete():
                if self.progress is not None:
                    self.progress.update(info.cur, info.end, final=True)
                return
            if self.timeout and self._clock() - start > self.timeout:
                raise BlockJobTimeout(disk=self.disk, seconds=self.timeout)
            if self.check_space is not None:
                self.check_space()
            self._sleep(self.poll)


class LiveCopy:
    """One live copy of ``disk_path`` of ``guest`` into ``delta``."""

    def __init__(self, internals, context, instance, guest, disk_path,
                 source_format, delta, timeout, progress, check_space=None):
        self.internals = internals
        self.context = context
        self.instance = instance
        self.guest = guest
        self.disk_path = disk_path
        self.source_format = source_format
        self.delta = delta
        self.timeout = timeout
        self.progress = progress
        self.check_space = check_space
        self.strategy = None

    def _create_delta(self):
        size = libvirt_utils.get_disk_size(self.disk_path,
                                           format=self.source_format)
        backing = libvirt_utils.get_disk_backing_file(
            self.disk_path, basename=False, format=self.source_format)
        libvirt_utils.create_image(self.delta, 'qcow2', size,
                                   backing_file=backing)

    def _start(self, dev):
        for strategy in STRATEGIES:
            try:
                strategy.start(self.internals, self.guest, dev, self.delta)
                self.strategy = strategy
                return
            except Exception as e:
                # Nova's libvirt module: real, or fake in Nova's fixtures
                libvirt = libvirt_driver.libvirt
                code = _libvirt_error_code(e)
                if code is None or code not in [
                        getattr(libvirt, n, None) for n in _TRY_NEXT]:
                    raise
                LOG.info('Block copy by %(way)s refused (%(err)s); trying '
                         'the next way', {'way': strategy.name, 'err': e},
                         instance=self.instance)
        raise LiveSnapshotFailed(disk=self.disk_path,
                                 reason='libvirt refused every block copy')

    def run(self, quiescer):
        dev = self.guest.get_block_device(self.disk_path)
        try:
            dev.abort_job()
        except Exception:
            pass  # no stale job: the usual case
        self._create_delta()
        with KeptDefinition(self.internals, self.guest):
            self._start(dev)
            try:
                BlockJobWaiter(dev, self.disk_path, self.timeout,
                               self.progress,
                               check_space=self.check_space).wait()
                with quiescer:
                    dev.abort_job()
            except BaseException:
                self._abort_quietly(dev)
                raise
        nova.privsep.path.chown(self.delta, uid=os.getuid())

    def _abort_quietly(self, dev):
        try:
            dev.abort_job()
        except Exception as e:
            LOG.debug('Aborting the failed copy job: %s', e,
                      instance=self.instance)
