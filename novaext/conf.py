"""The ``[novaext]`` option group and its oslo.config entry point."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'novaext',
    title='novaext driver options',
    help='Options of the novaext libvirt driver (novaext.ExtLibvirtDriver).')

RSYNC_OPTS = [
    cfg.PortOpt(
        'rsync_port', default=873,
        help='TCP port of the rsync daemon on every compute host. Resize '
             'and cold migration push disks to the destination host\'s '
             'daemon on this port; every compute host must use the same.'
             '\n\nPossible values:\n\n* a TCP port free on every compute host'
             '\n\nRelated options:\n\n* rsync_address\n* rsync_transport\n'
             '* rsync_tls_port'),
    cfg.StrOpt(
        'rsync_address', default=None,
        help='Address the rsync daemon listens on. Unset: all addresses '
             '(restricted by rsync_hosts_allow). Peers reach this host at '
             '[DEFAULT]my_ip (the address Nova migrates to, recorded as '
             'the compute node\'s host_ip), so set it to my_ip or leave it '
             'unset.'
             '\n\nPossible values:\n\n* unset: every address\n* an IP '
             'address of '
             'this host'
             '\n\nRelated options:\n\n* [DEFAULT]my_ip\n* rsync_hosts_allow\n'
             '* rsync_transport (tls: the daemon listens on 127.0.0.1)'),
    cfg.StrOpt(
        'rsync_module', default='nova_instances',
        regex=r'^[A-Za-z0-9_.-]+$',
        help='Name of the write-only rsync module rooted at '
             '[DEFAULT]instances_path: peers push into instance '
             'directories (<uuid>/) only, and can neither read nor list '
             'anything in it. Every compute host must use the same.'
             '\n\nPossible values:\n\n* letters, digits, "_", "." and "-"'
             '\n\nRelated options:\n\n* rsync_base_module\n* '
             '[DEFAULT]instances_path'),
    cfg.StrOpt(
        'rsync_base_module', default='nova_base',
        regex=r'^[A-Za-z0-9_.-]+$',
        help='Name of the read-only rsync module rooted at the image '
             'cache ([DEFAULT]instances_path/_base): peers read base files '
             'from it by name, and nothing else (no listing, no partial '
             'files, no writes). Every compute host must use the same.'
             '\n\nPossible values:\n\n* letters, digits, "_", "." and "-"'
             '\n\nRelated options:\n\n* rsync_module'),
    cfg.StrOpt(
        'rsync_auth_user', default='nova',
        regex=r'^[A-Za-z0-9_.-]+$',
        help='User name the rsync daemon authenticates, the same on '
             'every compute host (not a system user).'
             '\n\nPossible values:\n\n* letters, digits, "_", "." and "-"'
             '\n\nRelated options:\n\n* rsync_secrets_file\n* '
             'rsync_password_file'),
    cfg.StrOpt(
        'rsync_secrets_file', default='/etc/novaext/rsyncd.secrets',
        help='Daemon side: file of "user:password" lines, mode 0600, '
             'owned by the user running the daemon (rsync refuses it '
             'otherwise).'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsync_auth_user\n* '
             'rsync_password_file'),
    cfg.StrOpt(
        'rsync_password_file', default='/etc/novaext/rsync.password',
        help='Client side: file holding only the password of '
             'rsync_auth_user, mode 0600, readable by the user '
             'nova-compute runs as. The password never appears on a '
             'command line.'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsync_auth_user\n* '
             'rsync_secrets_file'),
    cfg.ListOpt(
        'rsync_hosts_allow', default=['127.0.0.1'],
        help='Hosts (addresses or networks) allowed to connect to the '
             'rsync daemon: the compute hosts. Everything else is denied.'
             '\n\nPossible values:\n\n* addresses and networks in rsync\'s '
             '"hosts '
             'allow" form (10.0.0.5, 10.0.0.0/24)'
             '\n\nRelated options:\n\n* rsync_address\n* rsync_transport '
             '(tls: '
             'peers are admitted by certificate instead)'),
    cfg.BoolOpt(
        'rsync_use_chroot', default=True,
        help='Whether the daemon chroots into instances_path for the '
             'module (requires the daemon to run as root).'
             '\n\nPossible values:\n\n* True: chroot (recommended)\n* False: '
             'no '
             'chroot, for a daemon not run as root'
             '\n\nRelated options:\n\n* rsync_uid\n* rsync_gid'),
    cfg.StrOpt(
        'rsync_uid', default='nova',
        help='User the daemon writes files as (the user nova-compute '
             'runs as).'
             '\n\nPossible values:\n\n* a user name or number'
             '\n\nRelated options:\n\n* rsync_gid\n* rsync_use_chroot'),
    cfg.StrOpt(
        'rsync_gid', default='nova',
        help='Group the daemon writes files as (nova-compute\'s).'
             '\n\nPossible values:\n\n* a group name or number'
             '\n\nRelated options:\n\n* rsync_uid'),
    cfg.IntOpt(
        'rsync_bwlimit_kib', default=0, min=0,
        help='Client side: limit each resize or cold migration push to '
             'this many KiB per second (rsync --bwlimit), so a migration '
             'does not starve the guests\' own traffic.'
             '\n\nPossible values:\n\n* 0: no limit\n* a number of KiB per '
             'second'
             '\n\nRelated options:\n\n* resize_precopy'),
    cfg.StrOpt(
        'rsyncd_config_file', default='/etc/novaext/rsyncd.conf',
        help='Where novaext-rsyncd writes the daemon configuration '
             '(made from these options at every start).'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsyncd_pid_file'),
    cfg.StrOpt(
        'rsyncd_pid_file', default='/run/novaext-rsyncd.pid',
        help='PID file of the rsync daemon started by novaext-rsyncd.'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsyncd_config_file'),
    cfg.StrOpt(
        'rsync_transport', default='plain', choices=['plain', 'tls'],
        help='How compute hosts reach each other\'s rsync daemon. plain: '
             'rsync\'s own protocol on rsync_port (authenticated, not '
             'encrypted). tls: TLS with certificates verified both ways '
             '(stunnel in front of the daemon on rsync_tls_port, openssl '
             'on the client side); the daemon then listens on 127.0.0.1 '
             'only and peers are admitted by certificate. Every compute '
             'host must use the same transport.'
             '\n\nPossible values:\n\n* plain\n* tls'
             '\n\nRelated options:\n\n* rsync_tls_port\n* '
             'rsync_tls_cert_file\n'
             '* rsync_tls_key_file\n* rsync_tls_ca_file'),
    cfg.PortOpt(
        'rsync_tls_port', default=874,
        help='TCP port of the TLS endpoint in front of the rsync daemon '
             '(rsync_transport = tls); the same on every compute host.'
             '\n\nPossible values:\n\n* a TCP port free on every compute host'
             '\n\nRelated options:\n\n* rsync_transport\n* rsync_port'),
    cfg.StrOpt(
        'rsync_tls_cert_file', default='/etc/novaext/tls/host.pem',
        help='This host\'s certificate (PEM), presented as server and as '
             'client; its subjectAltName must hold the address peers reach '
             'this host at ([DEFAULT]my_ip).'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsync_transport\n* '
             'rsync_tls_key_file\n'
             '* rsync_tls_ca_file'),
    cfg.StrOpt(
        'rsync_tls_key_file', default='/etc/novaext/tls/host.key',
        help='Private key of rsync_tls_cert_file (PEM, mode 0600).'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsync_tls_cert_file'),
    cfg.StrOpt(
        'rsync_tls_ca_file', default='/etc/novaext/tls/ca.pem',
        help='CA certificate(s) (PEM) that issue the compute hosts\' '
             'certificates: peers must present one, both ways.'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* rsync_transport\n* '
             'rsync_tls_cert_file'),
    cfg.StrOpt(
        'stunnel_config_file', default='/etc/novaext/stunnel-rsync.conf',
        help='Where novaext-rsyncd writes stunnel\'s configuration '
             '(rsync_transport = tls).'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* stunnel_pid_file\n* rsync_transport'),
    cfg.StrOpt(
        'stunnel_pid_file', default='/run/novaext-stunnel.pid',
        help='PID file of the stunnel started by novaext-rsyncd.'
             '\n\nPossible values:\n\n* an absolute path'
             '\n\nRelated options:\n\n* stunnel_config_file'),
]

CLOUDDISK_OPTS = [
    cfg.StrOpt(
        'clouddisk_attach_mode', default='host',
        choices=[('host', 'the host\'s iSCSI initiator logs in through '
                          'os-brick (CHAP, multipath) and the guest gets '
                          'the block device'),
                 ('qemu', 'QEMU\'s own iSCSI initiator opens the LUN as a '
                          'network disk; CHAP through a libvirt secret; no '
                          'host kernel session')],
        help='How cloud disks (driver_volume_type clouddisk) are '
             'attached. A volume attached keeps its mode until it is '
             'detached.'
             '\n\nPossible values:\n\n* host\n* qemu'
             '\n\nRelated options:\n\n* [libvirt]volume_use_multipath (host '
             'mode)'),
]

SNAPSHOT_OPTS = [
    cfg.StrOpt(
        'snapshot_mode', default='full', choices=[
            ('full', 'upload the whole disk (qemu-img convert, Nova\'s '
                     '[libvirt] snapshot_image_format and '
                     'snapshot_compression honoured)'),
            ('delta', 'upload only the qcow2 overlay above the instance\'s '
                      'base image, with property base_image_id_sha1; the '
                      'base image gets image_id_sha1')],
        help='What a snapshot uploads. An image property '
             'novaext_snapshot_mode (on the snapshot request or on the '
             'instance\'s image) overrides this per snapshot. A delta '
             'snapshot falls back to a full one when the disk has no base '
             'or the base image is no longer in the image service.'
             '\n\nPossible values:\n\n* full\n* delta'
             '\n\nRelated options:\n\n* [libvirt]snapshot_image_format\n'
             '* snapshot_min_free_mib'),
    cfg.IntOpt(
        'snapshot_block_job_timeout', default=0, min=0,
        help='Seconds a live snapshot\'s block copy may take before it is '
             'aborted and the snapshot fails (the guest keeps running on '
             'its own disk). 0 (default): no limit, as in Nova, whose live '
             'snapshot waits for the copy however long it takes; a limit '
             'fails every healthy copy of a disk that needs longer.'
             '\n\nPossible values:\n\n* 0: no limit\n* a number of seconds'
             '\n\nRelated options:\n\n* snapshot_min_free_mib'),
    cfg.IntOpt(
        'snapshot_min_free_mib', default=1024, min=0,
        help='Free space (MiB) the file system of [libvirt]'
             'snapshots_directory must keep beyond what a snapshot writes '
             'there (a live snapshot\'s copy of the disk\'s top layer, and '
             'the file it uploads: the top layer for a delta, the whole '
             'disk for a full snapshot, as allocated). With less, the '
             'snapshot fails before the guest is touched and the server '
             'stays as it was. While a live snapshot\'s block copy runs, '
             'the copy is aborted once the free space falls below half of '
             'this (the guest runs on, on its own disk): by default that '
             'directory is on the instances\' file system, where a full '
             'disk would pause the guest.'
             '\n\nPossible values:\n\n* 0: no check\n* a number of '
             'MiB\n\nRelated options:\n\n* [libvirt]snapshots_directory'),
]

IMAGE_CACHE_OPTS = [
    cfg.BoolOpt(
        'verify_bases', default=True,
        help='Use a base in the image cache (_base) only once it is '
             'verified: a download is checked against the image '
             'service\'s hash as it arrives (by glanceclient: os_hash_algo/'
             'os_hash_value, else checksum) and against its size; a base '
             'already here with no record is hashed; a base pulled from a '
             'peer is '
             'checked against the image service or the peer\'s record; '
             'the result is recorded beside the base (<name>.verified). A '
             'base that fails is moved aside (<name>.quarantined-<time>) '
             'and fetched again.'
             '\n\nPossible values:\n\n* True: verify\n* False: Nova\'s own '
             'download, '
             'no records, no checks'
             '\n\nRelated options:\n\n* '
             '[image_cache]remove_unused_base_images'),
]

RESIZE_OPTS = [
    cfg.BoolOpt(
        'resize_precopy', default=True,
        help='Resize and cold migration to another host: push a qcow2 '
             'root overlay of at least resize_precopy_min_mib to the '
             'destination while the guest still runs. Just before, a '
             'disk-only external snapshot (no libvirt metadata) sends '
             'the guest\'s writes to a new file beside the overlay, so '
             'the overlay pushed does not change; what the guest wrote '
             'meanwhile is sent while it shuts down, and after power-off '
             'only what it wrote since, each committed into the overlay '
             'on the source (which stays whole for a revert) and on the '
             'destination. The guest is down for its last writes, not '
             'the whole overlay. A failed pre-copy fails the resize with '
             'the guest still running on the source, its writes merged '
             'back into its disk. nova-compute killed or the host '
             'crashing at any point of it is recovered when nova-compute '
             'starts again (and before any hard reboot), with every '
             'write (the fault tier proves each window). Only to a '
             'destination that advertises the trait '
             'CUSTOM_NOVAEXT_RESIZE_PRECOPY_V1 (this release or later); '
             'others get the disks after power-off.'
             '\n\nPossible values:\n\n* True: pre-copy where it '
             'pays\n* False: one push after power-off\n\nRelated '
             'options:\n\n* resize_precopy_min_mib\n* '
             'resize_precopy_min_free_mib'),
    cfg.IntOpt(
        'orphan_sweep_interval', default=600, min=0,
        help='How often, in seconds, this host looks for the partial '
             'copies of moves that failed where their source could not '
             'remove them (the destination\'s rsync daemon was down, '
             'or the source host never came back): an instance '
             'directory under instances_path whose instance Nova '
             'records on another host, with no migration of it to or '
             'from this host in progress, no libvirt domain of it here, '
             'and an instances_path not shared with that host (probed '
             'through its rsync daemon; a host that cannot be probed '
             'keeps its directories). Each removal is logged at WARNING. '
             'The first sweep runs this long after nova-compute starts.'
             '\n\nPossible values:\n\n* 0: never sweep\n* a positive '
             'number of seconds\n\nRelated options:\n\n* '
             '[DEFAULT]instances_path\n* rsync_port'),
    cfg.IntOpt(
        'resize_precopy_min_mib', default=128, min=0,
        help='Pre-copy (resize_precopy) only overlays that hold at least '
             'this many MiB (allocated on the source): below it, the '
             'push after power-off is short anyway and the snapshot and '
             'two commits are not worth it.'
             '\n\nPossible values:\n\n* 0: pre-copy every overlay\n* a '
             'number of MiB'
             '\n\nRelated options:\n\n* resize_precopy'),
    cfg.IntOpt(
        'resize_precopy_min_free_mib', default=1024, min=0,
        help='Free space (MiB) the source\'s instances_path must have '
             'for a pre-copy (resize_precopy) to start. While pass 1 '
             'pushes, the guest writes into a new layer beside its disk '
             'instead of in place, and merging that layer back needs room '
             'for it and for what it adds to the disk. Below this, the '
             'disks move after power-off as without pre-copy. When the '
             'free space falls below half of it during pass 1, the '
             'pre-copy stops before the file system fills (where QEMU '
             'would pause the guest): the guest\'s writes are merged back '
             'into its disk while it runs, and the resize fails with the '
             'guest running on the source.'
             '\n\nPossible values:\n\n* 0: no check\n* a number of '
             'MiB\n\nRelated options:\n\n* resize_precopy\n* '
             '[DEFAULT]instances_path'),
]

PROGRESS_OPTS = [
    cfg.FloatOpt(
        'progress_interval', default=5.0, min=0.1,
        deprecated_opts=[
            cfg.DeprecatedOpt('transfer_progress_interval', group='novaext'),
            cfg.DeprecatedOpt('snapshot_progress_interval', group='novaext'),
        ],
        help='Seconds between progress reports of a resize push, a '
             'snapshot\'s block copy, extraction and upload, and a base '
             'pulled from a peer: INFO lines on the novaext.progress '
             'logger and, when Nova\'s unversioned notifications are on, '
             'novaext.<operation>.progress notifications (see '
             'the operations guide\'s "Progress" for their fields). '
             'Replaces transfer_progress_interval and '
             'snapshot_progress_interval.'
             '\n\nPossible values:\n\n* a number of seconds, at least 0.1'
             '\n\nRelated options:\n\n* [notifications]notification_format'),
]

ALL_OPTS = (RSYNC_OPTS + RESIZE_OPTS + SNAPSHOT_OPTS + CLOUDDISK_OPTS +
            IMAGE_CACHE_OPTS + PROGRESS_OPTS)


def register_opts(conf):
    """Register the ``[novaext]`` group and its options on ``conf``."""
    conf.register_group(GROUP)
    conf.register_opts(ALL_OPTS, group=GROUP)


def list_opts():
    """Entry point for oslo-config-generator (``oslo.config.opts``)."""
    return [(GROUP, ALL_OPTS)]
