"""The cloud's services, in start order, each up / down / status.

Each service is a small class over Daemon: ``up`` is idempotent (a live
recorded PID means it is up), ``down`` stops the recorded PID only.
"""

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import string
import subprocess
import sys

from realhost.cloud import processes
from realhost.cloud.processes import Daemon
from realhost.cloud.processes import Died
from realhost.cloud.processes import wait_for
from realhost.cloud.wsgi import IMAGE_BWLIMIT_FILE

TEMPLATES = os.path.join(os.path.dirname(__file__), 'templates')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DATABASES = ('keystone', 'placement', 'glance', 'nova_api', 'nova',
             'nova_cell0', 'cinder', 'neutron')
KEYSTONE_URL = 'http://127.0.0.1:5000/v3'


SECRETS = ('db', 'rabbit', 'admin', 'service', 'rsync')


def write_private(path, text):
    """Write ``text`` to ``path``, readable by its owner only."""
    part = path + '.part'
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.rename(part, path)


class State:
    """Where the cloud keeps its data, config, logs, PIDs and secrets."""

    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, 'etc')
        self.logs = os.path.join(root, 'logs')
        self.pids = os.path.join(root, 'pids')
        self.data = os.path.join(root, 'data')
        self.venv_bin = os.path.dirname(sys.executable)
        for path in (self.etc, self.logs, self.pids, self.data):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self._secrets_file = os.path.join(root, 'secrets.json')

    def secrets(self):
        """Passwords generated once per cloud, kept in a 0600 file."""
        try:
            with open(self._secrets_file) as f:
                values = json.load(f)
        except FileNotFoundError:
            values = {}
        missing = [n for n in SECRETS if n not in values]
        if missing:
            values.update({n: secrets.token_urlsafe(18) for n in missing})
            write_private(self._secrets_file, json.dumps(values))
        return values

    def render(self, template, dest=None, **values):
        """``templates/<template>`` with $names filled, into ``dest``
        (default etc/<template>), mode 0600."""
        with open(os.path.join(TEMPLATES, template)) as f:
            text = string.Template(f.read()).substitute(
                state=self.root, venv=os.path.dirname(self.venv_bin),
                **self.secrets(), **values)
        path = dest or os.path.join(self.etc, template)
        write_private(path, text)
        return path

    def tool(self, name):
        return os.path.join(self.venv_bin, name)


def _port_open(port, host='127.0.0.1'):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class MariaDB:
    name = 'mariadb'

    def __init__(self, state):
        self.state = state
        self.daemon = Daemon(state, self.name)
        self.datadir = os.path.join(state.data, 'mysql')
        self.socket = os.path.join(state.root, 'mysql.sock')

    def sql(self, statements):
        """Run SQL as the database's root over its socket (on stdin)."""
        subprocess.run(['mariadb', '--no-defaults', '--user=root',
                        f'--socket={self.socket}'], input=statements,
                       text=True, check=True, capture_output=True)

    def up(self):
        if self.daemon.pid():
            return 'already up'
        fresh = not os.path.isdir(os.path.join(self.datadir, 'mysql'))
        if fresh:
            subprocess.run(['mariadb-install-db', '--no-defaults',
                            '--user=root', f'--datadir={self.datadir}',
                            '--auth-root-authentication-method=socket'],
                           check=True, capture_output=True)
        self.daemon.start(['mariadbd', '--no-defaults', '--user=root',
                           f'--datadir={self.datadir}',
                           f'--socket={self.socket}', '--port=3306',
                           '--bind-address=127.0.0.1',
                           '--max-connections=500'])
        wait_for('MariaDB', lambda: os.path.exists(self.socket) and
                 self.sql('SELECT 1;') is None, timeout=60)
        password = self.state.secrets()['db']
        self.sql(''.join(
            f'CREATE DATABASE IF NOT EXISTS {db};' for db in DATABASES) +
            "CREATE USER IF NOT EXISTS 'openstack'@'127.0.0.1' "
            f"IDENTIFIED BY '{password}';"
            "GRANT ALL PRIVILEGES ON *.* TO 'openstack'@'127.0.0.1';")
        return 'started' + (' (new data directory)' if fresh else '')

    def down(self):
        return self.daemon.stop(timeout=60)


class Epmd:
    """Erlang's port mapper, started here in the foreground so that it is
    recorded: RabbitMQ would otherwise start one that outlives it."""

    name = 'epmd'

    def __init__(self, state):
        self.daemon = Daemon(state, self.name)

    def up(self):
        if self.daemon.pid():
            return 'already up'
        self.daemon.start(['epmd', '-address', '127.0.0.1'],
                          env={'ERL_EPMD_ADDRESS': '127.0.0.1'})
        wait_for('epmd', lambda: _port_open(4369), timeout=20)
        return 'started'

    def down(self):
        return self.daemon.stop()


class RabbitMQ:
    name = 'rabbitmq'

    def __init__(self, state):
        self.state = state
        self.daemon = Daemon(state, self.name)
        base = os.path.join(state.data, 'rabbitmq')
        self.env = {'RABBITMQ_NODENAME': 'rabbit@localhost',
                    'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
                    'RABBITMQ_MNESIA_BASE': os.path.join(base, 'mnesia'),
                    'RABBITMQ_LOG_BASE': state.logs,
                    'RABBITMQ_PID_FILE': os.path.join(base, 'erlang.pid'),
                    'ERL_EPMD_ADDRESS': '127.0.0.1',
                    'HOME': base}
        os.makedirs(base, exist_ok=True)

    def ctl(self, *args, stdin=None):
        return subprocess.run(['/usr/lib/rabbitmq/bin/rabbitmqctl', *args],
                              env=dict(os.environ, **self.env), input=stdin,
                              text=True, check=True, capture_output=True)

    def up(self):
        if self.daemon.pid():
            return 'already up'
        # The server script execs the Erlang VM: this PID is the broker.
        self.daemon.start(['/usr/lib/rabbitmq/bin/rabbitmq-server'],
                          env=self.env)
        wait_for('RabbitMQ', lambda: self.ctl('await_startup', '--timeout',
                                              '5') is not None, timeout=90)
        users = self.ctl('list_users', '--quiet').stdout.split()
        if 'openstack' in users:
            self.ctl('delete_user', 'openstack')
        self.ctl('add_user', 'openstack',
                 stdin=self.state.secrets()['rabbit'] + '\n')
        self.ctl('set_permissions', 'openstack', '.*', '.*', '.*')
        return 'started'

    def down(self):
        return self.daemon.stop(timeout=60)


class WsgiService:
    """A WSGI app of an OpenStack service under gunicorn, one worker."""

    name = None
    port = None
    # Requests served at once by the worker (gunicorn's gthread above 1).
    threads = 1
    app = None          # realhost.cloud.wsgi:<name>
    config = None       # template rendered into etc/
    # Keystone's catalog: the service's type (None: not registered), its
    # user (default: name) and the path of its endpoint.
    service_type = None
    user = None
    endpoint_path = ''

    def __init__(self, state):
        self.state = state
        self.daemon = Daemon(state, self.name)

    def prepare(self, config_path):
        """Database schema and the like, before the app starts."""

    def run(self, *argv):
        subprocess.run(argv, check=True, capture_output=True)

    def up(self):
        if self.daemon.pid():
            return 'already up'
        config = self.state.render(self.config)
        if self.service_type is not None:
            # Here, not at the top: down and status run without the venv.
            from realhost.cloud import identity
            secrets_ = self.state.secrets()
            identity.register(
                identity.admin_client(secrets_['admin']),
                self.user or self.name, self.service_type,
                f'http://127.0.0.1:{self.port}{self.endpoint_path}',
                secrets_['service'])
        self.prepare(config)
        self.daemon.start(
            [self.state.tool('gunicorn'), '--bind', f'127.0.0.1:{self.port}',
             '--workers', '1', '--threads', str(self.threads),
             '--timeout', '300',
             '--pythonpath', REPO,
             f'realhost.cloud.wsgi:{self.app or self.name}()'],
            env={'NOVAEXT_CLOUD_CONFIG': config})
        wait_for(self.name, lambda: _port_open(self.port), timeout=60)
        return 'started'

    def down(self):
        return self.daemon.stop()


class Keystone(WsgiService):
    name = 'keystone'
    port = 5000
    config = 'keystone.conf'

    def prepare(self, config):
        manage = [self.state.tool('keystone-manage'), '--config-file', config]
        self.run(*manage, 'db_sync')
        for setup in ('fernet_setup', 'credential_setup'):
            self.run(*manage, setup, '--keystone-user', 'root',
                     '--keystone-group', 'root')
        subprocess.run(
            manage + ['bootstrap', '--bootstrap-admin-url', KEYSTONE_URL,
                      '--bootstrap-public-url', KEYSTONE_URL,
                      '--bootstrap-internal-url', KEYSTONE_URL,
                      '--bootstrap-region-id', 'RegionOne'],
            env=dict(os.environ,
                     OS_BOOTSTRAP_PASSWORD=self.state.secrets()['admin']),
            check=True, capture_output=True)

    def up(self):
        result = super().up()
        self.state.render('openrc')
        return result


class Placement(WsgiService):
    name = 'placement'
    port = 8778
    config = 'placement.conf'
    service_type = 'placement'

    def prepare(self, config):
        self.run(self.state.tool('placement-manage'), '--config-file',
                 config, 'db', 'sync')


class Glance(WsgiService):
    """Glance with its file store under <state>/data/glance; image data
    slowed on demand (realhost.cloud.wsgi.ImageDataThrottle), the other
    requests served beside a slowed transfer."""

    name = 'glance'
    port = 9292
    threads = 4
    config = 'glance-api.conf'
    service_type = 'image'

    def prepare(self, config):
        self.run(self.state.tool('glance-manage'), '--config-file', config,
                 'db_sync')
        # A limit left by an interrupted fault test would slow every boot.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.state.etc, IMAGE_BWLIMIT_FILE))


class Neutron(WsgiService):
    """neutron's API with ML2 and no agents (servers boot --nic none; Nova
    still asks Neutron about ports on every show, resize and delete)."""

    name = 'neutron'
    port = 9696
    config = 'neutron.conf'
    service_type = 'network'

    def prepare(self, config):
        ml2 = self.state.render('ml2_conf.ini')
        self.run(self.state.tool('neutron-db-manage'), '--config-file',
                 config, '--config-file', ml2, 'upgrade', 'head')


class NovaApi(WsgiService):
    """Nova's database schemas, cells, and its API under gunicorn."""

    name = 'nova-api'
    port = 8774
    config = 'nova.conf'
    app = 'nova_api'
    service_type = 'compute'
    user = 'nova'
    endpoint_path = '/v2.1'

    def prepare(self, config):
        manage = [self.state.tool('nova-manage'), '--config-file', config]
        self.run(*manage, 'api_db', 'sync')
        cells = subprocess.run(manage + ['cell_v2', 'list_cells'],
                               check=True, capture_output=True,
                               text=True).stdout
        if ' cell0 ' not in cells:
            self.run(*manage, 'cell_v2', 'map_cell0')
        if ' cell1 ' not in cells:
            self.run(*manage, 'cell_v2', 'create_cell', '--name', 'cell1')
        self.run(*manage, 'db', 'sync')


class ConsoleService:
    """An OpenStack console-script service (nova-conductor, cinder-volume,
    ...) reading one config file of etc/."""

    def __init__(self, state, name, config='nova.conf', env=None):
        self.state = state
        self.name = name
        self.config = config
        self.env = env
        self.daemon = Daemon(state, name)

    def up(self):
        if self.daemon.pid():
            return 'already up'
        self.daemon.start([self.state.tool(self.name), '--config-file',
                           os.path.join(self.state.etc, self.config)],
                          env=self.env(self.state) if self.env else None)
        return 'started'

    def down(self):
        return self.daemon.stop(timeout=60)


class CinderApi(WsgiService):
    name = 'cinder-api'
    port = 8776
    config = 'cinder.conf'
    app = 'cinder'
    service_type = 'volumev3'
    user = 'cinder'
    endpoint_path = '/v3/%(project_id)s'

    def prepare(self, config):
        self.run(self.state.tool('cinder-manage'), '--config-file', config,
                 'db', 'sync')


class Tgtd:
    """The machine's iSCSI target daemon, which Cinder's tgt helper drives
    (one per machine: the real tier's scripts/start-services may have
    started it; then it is used, not stopped). tgt-admin reads Cinder's
    per-volume target files through an include in /etc/tgt/conf.d."""

    name = 'tgtd'
    INCLUDE = '/etc/tgt/conf.d/novaext-cloud-cinder.conf'

    def __init__(self, state):
        self.state = state
        self.daemon = Daemon(state, self.name)
        self.volumes_dir = os.path.join(state.data, 'cinder', 'volumes')

    @staticmethod
    def running():
        return subprocess.run(
            ['tgtadm', '--lld', 'iscsi', '--mode', 'target', '--op', 'show'],
            capture_output=True).returncode == 0

    def up(self):
        os.makedirs(self.volumes_dir, mode=0o700, exist_ok=True)
        os.makedirs(os.path.dirname(self.INCLUDE), exist_ok=True)
        with open(self.INCLUDE, 'w') as f:
            f.write(f'include {self.volumes_dir}/*\n')
        if self.daemon.pid():
            return 'already up'
        if self.running():
            return 'already running (not started here: left running)'
        self.daemon.start(['tgtd', '-f'])
        wait_for('tgtd', self.running, timeout=20)
        return 'started'

    def down(self):
        return self.daemon.stop()


def root_path(state, venv_bin=None):
    """PATH for services running as root: a sudo that just runs its
    arguments first (oslo.privsep starts its helper through sudo; root
    needs none), then the venv's tools (``venv_bin``'s, else the
    cloud's)."""
    bin_dir = os.path.join(state.root, 'bin')
    os.makedirs(bin_dir, exist_ok=True)
    sudo = os.path.join(bin_dir, 'sudo')
    with open(sudo, 'w') as f:
        f.write('#!/bin/sh\nexec "$@"\n')
    os.chmod(sudo, 0o755)
    return f'{bin_dir}:{venv_bin or state.venv_bin}:{os.environ["PATH"]}'


def release_venv_bin(state, ref):
    """The bin directory of ``scripts/cloud install-release REF``'s
    virtualenv (novaext as at the git commit ``ref``)."""
    commit = subprocess.run(
        ['git', '-C', REPO, 'rev-parse', '--verify', f'{ref}^{{commit}}'],
        capture_output=True, text=True, check=True).stdout.strip()
    venv_bin = os.path.join(state.root, 'releases', commit, 'venv', 'bin')
    if not os.path.exists(os.path.join(venv_bin, 'nova-compute')):
        raise RuntimeError(f'no virtualenv of novaext {ref}: run '
                           f'scripts/cloud install-release {ref}')
    return venv_bin


def _cinder_volume_env(state):
    return {'PATH': root_path(state)}


INSTANCES = '/var/lib/novaext-cloud-instances'
COMPUTE_HOSTS = (('compute1', '127.0.0.1'), ('compute2', '127.0.0.2'))
HOST_SCRIPT = os.path.join(os.path.dirname(__file__), 'compute-host.sh')


PROFILE_ENV = 'NOVAEXT_CLOUD_PROFILE'

# novaext 0.1.0 (the tag's commit: a clone without tags has it too);
# another git ref in $NOVAEXT_CLOUD_PREVIOUS_RELEASE.
PREVIOUS_RELEASE = '31cff9024965170972a7dd14a4931d48923f21e3'
PREVIOUS_RELEASE_ENV = 'NOVAEXT_CLOUD_PREVIOUS_RELEASE'


@dataclasses.dataclass(frozen=True)
class Profile:
    """How the compute hosts run: ``virt_type`` (None: kvm where
    /dev/kvm opens, else qemu), Nova's
    ``[workarounds]disable_deep_image_inspection``, novaext's
    ``[novaext]resize_precopy``, the ``compute_driver`` and whether the
    hosts reach each other over ssh (``nova_ssh``: stock Nova copies
    disks with scp and probes shared storage with ssh)."""

    virt_type: str | None
    disable_deep_image_inspection: bool
    resize_precopy: bool = True
    compute_driver: str = 'novaext.ExtLibvirtDriver'
    nova_ssh: bool = False
    # (host name, git ref): that host runs novaext as at the ref, from
    # scripts/cloud install-release's virtualenv; the others this
    # checkout.
    releases: tuple = ()
    # [novaext]resize_precopy_min_mib (None: novaext's default).
    precopy_min_mib: int | None = None

    def release_of(self, host_name):
        """The git ref ``host_name`` runs ($NOVAEXT_CLOUD_PREVIOUS_RELEASE
        in place of PREVIOUS_RELEASE), or None: this checkout."""
        ref = dict(self.releases).get(host_name)
        if ref == PREVIOUS_RELEASE:
            ref = os.environ.get(PREVIOUS_RELEASE_ENV) or ref
        return ref


PROFILES = {
    'default': Profile(None, False),
    # The in-guest tests' cloud (tests/cloud/test_in_guest.py). TCG: this
    # machine's nested KVM does not boot a Linux kernel in useful time.
    # Inspection off: Nova 34's pre_live_migration fetches a
    # direct-kernel-boot server's kernel through fetch_to_raw, whose deep
    # inspection reads the bzImage's boot signature as an MBR and refuses
    # it (spawn fetches the same kernel uninspected), so the guest could
    # not be block live migrated.
    'guest': Profile('qemu', True),
    # Stock Nova 34 on the same cloud, for the fault tier's side-by-side
    # matrix (scripts/fault-matrix): Nova's own LibvirtDriver, its ssh
    # copy between the hosts (an sshd per host, in the host's namespaces,
    # on its own address).
    'stock': Profile(None, False, compute_driver='libvirt.LibvirtDriver',
                     nova_ssh=True),
    # A rolling upgrade half-way (tests/cloud/test_mixed_release.py):
    # compute1 on the previous release, compute2 on this checkout, and
    # every overlay pre-copied where both sides can.
    'mixed': Profile(None, False, releases=(('compute1', PREVIOUS_RELEASE),),
                     precopy_min_mib=0),
}

# The stock profile's sshd port on each host's address.
SSH_PORT = 2022
SSH_THROTTLE = os.path.join(os.path.dirname(__file__), 'ssh-throttle.py')


def profile():
    """The profile $NOVAEXT_CLOUD_PROFILE names (default: default)."""
    name = os.environ.get(PROFILE_ENV) or 'default'
    if name not in PROFILES:
        raise ValueError(f'{PROFILE_ENV}={name!r}: one of {sorted(PROFILES)}')
    return PROFILES[name]


def virt_type(wanted=None):
    """``wanted`` when given, else kvm where /dev/kvm opens, else qemu
    (TCG)."""
    if wanted:
        return wanted
    try:
        os.close(os.open('/dev/kvm', os.O_RDWR))
        return 'kvm'
    except OSError:
        return 'qemu'


class ComputeHost:
    """A compute host in its own mount+UTS namespace at ``ip``: libvirtd,
    virtlogd, novaext-rsyncd and nova-compute with novaext's driver. Both
    hosts see one instances path (each its own directory under it), as the
    domain XML keeps disk paths across block live migration."""

    def __init__(self, state, name, ip):
        self.state = state
        self.name = name
        self.ip = ip
        self.dir = os.path.join(state.root, 'hosts', name)
        pids = os.path.join(self.dir, 'pids')
        logs = os.path.join(self.dir, 'logs')
        os.makedirs(pids, exist_ok=True)
        os.makedirs(logs, exist_ok=True)
        self.daemon = Daemon(state, 'nova-compute', pids, logs)
        self.helpers = [Daemon(state, n, pids, logs)
                        for n in ('rsyncd', 'sshd', 'libvirtd', 'virtlogd')]

    def up(self):
        if self.daemon.pid():
            return 'already up'
        secret = self.state.secrets()['rsync']
        write_private(os.path.join(self.dir, 'rsyncd.secrets'),
                      f'nova:{secret}\n')
        write_private(os.path.join(self.dir, 'rsync.password'),
                      f'{secret}\n')
        chosen = profile()
        kind = virt_type(chosen.virt_type)
        release = chosen.release_of(self.name)
        venv_bin = (release_venv_bin(self.state, release) if release
                    else self.state.venv_bin)
        host_conf = self.state.render(
            'compute.conf', os.path.join(self.dir, 'compute.conf'),
            host_name=self.name, host_ip=self.ip, host_dir=self.dir,
            instances=INSTANCES, virt_type=kind,
            disable_deep_image_inspection=str(
                chosen.disable_deep_image_inspection).lower(),
            resize_precopy=str(chosen.resize_precopy).lower(),
            precopy_min_mib=(
                '' if chosen.precopy_min_mib is None else
                f'resize_precopy_min_mib = {chosen.precopy_min_mib}'),
            compute_driver=chosen.compute_driver)
        ssh_env = self._ssh_env() if chosen.nova_ssh else {}
        started = subprocess.run(
            ['unshare', '--mount', '--uts', '--propagation', 'private',
             'bash', HOST_SCRIPT],
            env=dict(os.environ, HOST_NAME=self.name, HOST_IP=self.ip,
                     HOST_DIR=self.dir, INSTANCES=INSTANCES,
                     VENV_BIN=venv_bin,
                     ROOT_PATH=root_path(self.state, venv_bin),
                     NOVA_CONF=os.path.join(self.state.etc, 'nova.conf'),
                     HOST_CONF=host_conf, **ssh_env),
            capture_output=True, text=True)
        if started.returncode:
            raise RuntimeError(
                f'{os.path.basename(HOST_SCRIPT)} failed (exit '
                f'{started.returncode}): {started.stderr.strip()[-2000:]}')
        wait_for(f'nova-compute on {self.name}', self._registered,
                 timeout=120, interval=2)
        return f'started at {self.ip} ({kind})'

    def _ssh_env(self):
        """compute-host.sh's environment for an sshd on this host: one key
        pair for the cloud (its public half the only authorized key)."""
        key = os.path.join(self.state.root, 'ssh', 'id_ed25519')
        if not os.path.exists(key + '.pub'):
            os.makedirs(os.path.dirname(key), exist_ok=True)
            for stale in (key, key + '.pub'):
                if os.path.exists(stale):
                    os.unlink(stale)
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                            '-C', 'novaext-cloud', '-f', key], check=True)
        return {'SSH_PORT': str(SSH_PORT), 'SSH_KEY': key,
                'SSH_THROTTLE': SSH_THROTTLE}

    def _registered(self):
        if self.daemon.pid() is None:
            raise Died(f'nova-compute on {self.name} exited:\n'
                       f'{self.daemon.log_tail()}')
        out = subprocess.run(
            [self.state.tool('nova-manage'), '--config-file',
             os.path.join(self.state.etc, 'nova.conf'), 'cell_v2',
             'discover_hosts', '--verbose'],
            check=True, capture_output=True, text=True).stdout
        return self.name in out or self._mapped()

    def _mapped(self):
        out = subprocess.run(
            [self.state.tool('nova-manage'), '--config-file',
             os.path.join(self.state.etc, 'nova.conf'), 'cell_v2',
             'list_hosts'], check=True, capture_output=True,
            text=True).stdout
        return f' {self.name} ' in out

    def pids(self):
        """nova-compute, its helpers, everything below them, and the
        guests' QEMUs (daemonized by libvirtd: their PID files are in the
        host's private /run/libvirt)."""
        found = []
        for daemon in (self.daemon, *self.helpers):
            pid = daemon.pid()
            if pid is not None:
                found.extend(processes.descendants(pid))
        anchor = self.daemon.pid()
        run = f'/proc/{anchor}/root/run/libvirt/qemu'
        if anchor is not None and os.path.isdir(run):
            for name in os.listdir(run):
                if name.endswith('.pid'):
                    with open(os.path.join(run, name)) as f:
                        found.append(int(f.read().strip() or 0))
        return found

    def down(self):
        if any(h.name == 'libvirtd' and h.pid() for h in self.helpers):
            try:
                import libvirt  # the cloud's venv has libvirt-python (Nova's)
            except ImportError:  # run without the venv
                self._destroy_with_virsh()
            else:
                try:
                    conn = libvirt.open(f'qemu+tcp://{self.ip}/system')
                    for dom in conn.listAllDomains():
                        if dom.isActive():
                            dom.destroy()
                    conn.close()
                except libvirt.libvirtError:
                    pass  # no libvirtd there: nothing runs
        stopped = self.daemon.stop(timeout=30)
        for helper in self.helpers:
            stopped = helper.stop() or stopped
        return stopped

    def _destroy_with_virsh(self):
        uri = f'qemu+tcp://{self.ip}/system'
        names = subprocess.run(['virsh', '-c', uri, 'list', '--name'],
                               capture_output=True, text=True).stdout
        for name in names.split():
            subprocess.run(['virsh', '-c', uri, 'destroy', name],
                           capture_output=True)


def delete_orphan_allocations(state):
    """Nova's own ``nova-manage placement audit --delete``: allocations of
    consumers that are neither an instance nor a migration in progress (a
    test run cut off between a move and its cleanup leaves them, and they
    hold the hosts' few VCPUs). Returns how many it removed."""
    out = subprocess.run(
        [state.tool('nova-manage'), '--config-file',
         os.path.join(state.etc, 'nova.conf'), 'placement', 'audit',
         '--delete', '--verbose'], capture_output=True, text=True)
    if out.returncode not in (0, 3, 4):  # 3: none found, 4: deleted some
        raise RuntimeError(f'nova-manage placement audit: {out.stderr}')
    return out.stdout.count('Deleted allocations for consumer')


# What every other service uses: stopped after them.
INFRASTRUCTURE = ('mariadb', 'epmd', 'rabbitmq')
SERVICES = (MariaDB, Epmd, RabbitMQ, Keystone, Placement, Glance, Neutron,
            NovaApi,
            lambda state: ConsoleService(state, 'nova-conductor'),
            lambda state: ConsoleService(state, 'nova-scheduler'),
            Tgtd, CinderApi,
            lambda state: ConsoleService(state, 'cinder-scheduler',
                                         'cinder.conf'),
            lambda state: ConsoleService(state, 'cinder-volume',
                                         'cinder.conf', _cinder_volume_env),
            *(lambda state, n=name, ip=ip: ComputeHost(state, n, ip)
              for name, ip in COMPUTE_HOSTS))


def services(state):
    return [cls(state) for cls in SERVICES]
