"""Every error novaext raises to an operator, in one place.

The faults Nova records on a server (``openstack server show``'s
``fault``) and the errors of ``novaext-rsyncd`` and ``novaext-status``
come from here; each message says what happened and what to do. Errors
of Nova's own kinds (ImageUnacceptable, ResizeError, InvalidDiskInfo...)
stay Nova's: Nova's compute manager handles them by their class.

Errors of a wrong [novaext] option are ValueErrors (``ConfigError``), as
oslo.config's own are; the rest are NovaExceptions, so that Nova's
manager records their message as the server's fault.
"""

from nova import exception

# -- configuration (novaext-rsyncd, novaext-status, nova-compute's start) --


class ConfigError(ValueError):
    """A [novaext] option (or a file it names) cannot make what it
    configures; the message names the option and the value."""


class RsyncDaemonConfigError(ConfigError):
    """A [novaext] rsync option cannot make a safe daemon config."""


class RsyncTlsConfigError(ConfigError):
    """The [novaext] TLS options cannot make a safe transport."""


class AlreadyRunning(RsyncDaemonConfigError):
    """Another rsync daemon of this configuration runs."""


class DaemonDidNotStart(Exception):
    """novaext-rsyncd started rsync or stunnel, which did not come up."""

    def __init__(self, what, where):
        super().__init__(
            f'{what} did not start; see {where} for why, fix the cause '
            '(a port in use, a file it cannot read), then run '
            'novaext-rsyncd start again')


# -- moving disks (resize, cold migration) --------------------------------


class UnmovableDisk(exception.MigrationPreCheckError):
    msg_fmt = ('Migration pre-check error: %(path)s is a %(format)r disk; '
               'novaext moves qcow2 and raw file disks only. Nothing was '
               'moved; the server stays where it is')


class RsyncTransferError(exception.NovaException):
    # (The reason is rsync's own line; the operations guide gives the
    # cause and fix of each.)
    msg_fmt = 'rsync to %(target)s failed: %(reason)s'



class InvalidRemotePath(exception.Invalid):
    msg_fmt = ('Refusing remote path component %(component)r: '
               '%(reason)s')


class RedirectFailed(exception.NovaException):
    msg_fmt = ('Writes of %(instance)s to %(disks)s could not be merged '
               'back (%(reason)s): the data is in the disk together with '
               'its %(suffix)s file, which must not be deleted. Fix the '
               'cause, then hard-reboot the server: the file is merged '
               'first')


class NotEnoughSpace(exception.NovaException):
    msg_fmt = ('%(what)s needs %(needed_mib)d MiB free on the file system '
               'of %(path)s, which has %(free_mib)d MiB: free space there '
               'or lower %(option)s')


# -- snapshots ----------------------------------------------------------------


class LiveSnapshotFailed(exception.NovaException):
    msg_fmt = ('Live snapshot of %(disk)s failed: %(reason)s. The guest '
               'runs on its own disk, unchanged; retry the snapshot')


class BlockJobTimeout(LiveSnapshotFailed):
    msg_fmt = ('Live snapshot of %(disk)s: block copy not ready after '
               '%(seconds)s s. The copy was aborted and the guest runs on '
               'its own disk; retry when the guest writes less, or raise '
               '[novaext]snapshot_block_job_timeout')


# -- image cache ----------------------------------------------------------


class DeltaBaseNotFound(exception.ImageNotFound):
    msg_fmt = ('Base image with %(prop)s=%(sha1)s of delta snapshot '
               '%(image_id)s could not be found in the image service. A '
               'delta snapshot boots only where its base is cached or '
               'can be found: restore the base image, or boot from a '
               'full snapshot')


class UntrustedBaseEntry(exception.NovaException):
    msg_fmt = ('Refusing base %(path)s: it is %(what)s. A base must be a '
               'regular file owned by the compute service\'s user with a '
               'single link; nothing was read or written through it. '
               'Remove it (or move it aside) and retry.')


# -- cloud disks ----------------------------------------------------------


class InvalidConnectionInfo(exception.Invalid):
    msg_fmt = ('Invalid cloud disk connection_info: %(reason)s. Nothing '
               'was attached; check the volume backend\'s export')
