"""How the cloud tier and the demo reach a running cloud.

- ``Cloud``: the OpenStack API as the cloud's admin (openstacksdk), and
  the compute hosts.
- ``Host``: one compute host's facts: its files (seen from outside its
  namespace), commands run inside its mount namespace (qemu-img sees the
  backing paths the host sees), its libvirtd, its logs.
- ``Notifications``: a real oslo.messaging notification listener on the
  cloud's RabbitMQ, collecting what Nova and novaext publish.

Nothing here starts or stops a service (that is ``realhost.cloud``).
"""

import configparser
import json
import os
import re
import subprocess
import threading
import time

import libvirt
import libvirt_qemu
import openstack
import oslo_messaging
from oslo_config import cfg

from realhost.cloud import processes
from realhost.cloud import services

DEFAULT_STATE = '/var/lib/novaext-cloud'


def state_root():
    return os.environ.get('NOVAEXT_CLOUD_STATE', DEFAULT_STATE)


class NotUp(Exception):
    """The cloud, or part of it, is not running."""


class Cloud:
    """The running cloud under ``root`` (default: $NOVAEXT_CLOUD_STATE)."""

    def __init__(self, root=None):
        self.root = root or state_root()
        secrets_file = os.path.join(self.root, 'secrets.json')
        if not os.path.exists(secrets_file):
            raise NotUp(f'no cloud at {self.root}: scripts/cloud up')
        with open(secrets_file) as f:
            self.secrets = json.load(f)
        self.hosts = {name: Host(self.root, name, ip)
                      for name, ip in services.COMPUTE_HOSTS}
        down = [n for n, h in self.hosts.items() if h.nova_compute_pid()
                is None]
        if down:
            raise NotUp(f'nova-compute is not running on {down}: '
                        'scripts/cloud up')
        self.api = openstack.connect(
            auth_url=services.KEYSTONE_URL, username='admin',
            password=self.secrets['admin'], project_name='admin',
            user_domain_name='Default', project_domain_name='Default',
            region_name='RegionOne', compute_api_version='2.95',
            block_storage_api_version='3.71',
            load_yaml_config=False, load_envvars=False)

    @property
    def transport_url(self):
        return (f'rabbit://openstack:{self.secrets["rabbit"]}'
                '@127.0.0.1:5672/')

    def log(self, name):
        """A control-plane service's log file (nova-api, glance, ...)."""
        return os.path.join(self.root, 'logs', name + '.log')

    def logs(self):
        """Every log file of the cloud: control plane and hosts."""
        files = [self.log(n) for n in ('nova-api', 'nova-conductor',
                                       'nova-scheduler', 'glance',
                                       'placement', 'neutron', 'keystone',
                                       'cinder-api', 'cinder-scheduler',
                                       'cinder-volume')]
        for host in self.hosts.values():
            files.append(host.log('nova-compute'))
            files.append(host.log('rsyncd'))
        return [f for f in files if os.path.exists(f)]

    def volume_file(self, volume_id):
        """The sparse file behind a volume (realhost.cloud's Cinder
        driver, ``[file] file_volumes_dir``)."""
        return os.path.join(self.root, 'data', 'cinder', 'files',
                            f'volume-{volume_id}')

    def host_of(self, server):
        return self.hosts[server.compute_host]


class Host:
    """One compute host of the cloud."""

    def __init__(self, root, name, ip):
        self.name = name
        self.ip = ip
        self.dir = os.path.join(root, 'hosts', name)
        # The instances path as this host sees it, and where it really is.
        self.instances_path = services.INSTANCES
        self.instances_dir = os.path.join(self.dir, 'instances')
        self.base_dir = os.path.join(self.instances_dir, '_base')

    def nova_compute_pid(self):
        return processes.Daemon(None, 'nova-compute',
                                os.path.join(self.dir, 'pids'),
                                os.path.join(self.dir, 'logs')).pid()

    def _in_nova_compute_python(self, code):
        """``code`` run by the python this host's nova-compute runs on
        (its virtualenv's: the checkout's, or a release's in the mixed
        profile)."""
        with open(f'/proc/{self.nova_compute_pid()}/cmdline', 'rb') as f:
            python = f.read().split(b'\0')[0].decode()
        return subprocess.run([python, '-I', '-c', code],
                              capture_output=True, text=True)

    def novaext_version(self):
        """The novaext version this host's nova-compute runs."""
        found = self._in_nova_compute_python(
            'import importlib.metadata as m; print(m.version("novaext"))')
        found.check_returncode()
        return found.stdout.strip()

    def novaext_traits(self):
        """The placement traits this host's novaext release adds (none
        for a release from before resize.capabilities)."""
        found = self._in_nova_compute_python(
            'from novaext.resize import capabilities as c; '
            'print(" ".join(c.TRAITS))')
        return set(found.stdout.split()) if found.returncode == 0 else set()

    def log(self, name):
        return os.path.join(self.dir, 'logs', name + '.log')

    def option(self, section, name):
        """An option of this host's own compute.conf, as written."""
        conf = configparser.ConfigParser(interpolation=None, strict=False)
        conf.read(os.path.join(self.dir, 'compute.conf'))
        return conf.get(section, name)

    @property
    def stock_nova(self):
        """True when this host runs stock Nova's LibvirtDriver (the
        cloud's stock profile), not novaext's."""
        return self.option('DEFAULT', 'compute_driver') == \
            'libvirt.LibvirtDriver'

    def path(self, *parts):
        """A path under this host's instances path, as the host sees it."""
        return os.path.join(self.instances_path, *parts)

    def outside(self, path):
        """Where a path under the host's instances path really is."""
        rel = os.path.relpath(path, self.instances_path)
        if rel.startswith('..'):
            raise ValueError(f'{path} is not under {self.instances_path}')
        return os.path.join(self.instances_dir, rel)

    def run(self, *argv, check=True):
        """Run ``argv`` in this host's mount namespace (as nova-compute
        sees the files); returns the CompletedProcess (text)."""
        pid = self.nova_compute_pid()
        if pid is None:
            raise NotUp(f'nova-compute is not running on {self.name}')
        return subprocess.run(
            ['nsenter', f'--target={pid}', '--mount', '--uts', *argv],
            capture_output=True, text=True, check=check)

    def qemu_img_info(self, path):
        """``qemu-img info`` of a path the host sees (shared lock, so a
        running guest's disk can be read)."""
        out = self.run('qemu-img', 'info', '-U', '--output=json', path)
        return json.loads(out.stdout)

    def disk_of(self, server, name='disk'):
        return self.path(server.id, name)

    def instance_files(self, server_id):
        """What is left of an instance on this host: its directory and any
        resize directory (``<uuid>_resize``)."""
        return sorted(n for n in os.listdir(self.instances_dir)
                      if n.startswith(server_id))

    def base_files(self):
        try:
            return sorted(os.listdir(self.base_dir))
        except FileNotFoundError:
            return []

    def libvirt(self):
        return libvirt.open(f'qemu+tcp://{self.ip}/system')

    def domain(self, server):
        """The server's libvirt domain on this host, or None."""
        conn = self.libvirt()
        try:
            return conn.lookupByName(server.instance_name)
        except libvirt.libvirtError:
            return None

    def guest_log(self, server):
        """The guest's QEMU log (its stdout and stderr, through virtlogd),
        where this host's private /var/log/libvirt really is."""
        return os.path.join(self.dir, 'root', 'var', 'log', 'libvirt',
                            'qemu', f'{server.instance_name}.log')

    def guest_io(self, server, command, device='virtio-disk0', timeout=10):
        """Run a qemu-io command on one of the running guest's disks
        through its QEMU (HMP), as the guest's own reads and writes would
        go: ``device`` is the disk's device id (a virtio root disk's is
        ``virtio-disk0``, a SCSI one's ``scsi0-0-0-0``; a volume's
        ``ua-<volume id>``).

        QEMU prints qemu-io's report on its stdout, not on the monitor: it
        is read from the guest's log, where it arrives through virtlogd.

        :returns: qemu-io's report
        :raises AssertionError: when qemu-io reports an error or a
            pattern mismatch, or no report arrives within ``timeout``
        """
        dom = self.domain(server)
        if dom is None:
            raise AssertionError(f'{server.id} has no domain on {self.name}')
        log = self.guest_log(server)
        offset = os.path.getsize(log)
        hmp = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        info = libvirt_qemu.qemuMonitorCommand(dom, 'info block', hmp)
        # virtio-blk: /machine/peripheral/<id>/virtio-backend; SCSI: <id>
        found = re.search(
            rf'Attached to:\s+((?:/machine/peripheral/)?{re.escape(device)}'
            r'(?:/virtio-backend)?)\s', info)
        if found is None:
            raise AssertionError(f'{server.id} has no disk {device}: {info}')
        qdev = found.group(1)
        out = libvirt_qemu.qemuMonitorCommand(
            dom, f'qemu-io -d {qdev} "{command}"', hmp)
        deadline = time.monotonic() + timeout
        while True:
            with open(log, errors='replace') as f:
                f.seek(offset)
                out += f.read()
            bad = [w for w in ('error', 'fail', 'mismatch')
                   if w in out.lower()]
            if bad:
                raise AssertionError(
                    f'qemu-io {command!r} on {server.id}: {out}')
            # Each command's report ends with its speed (flush: nothing).
            if 'ops/sec' in out or command == 'flush':
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f'qemu-io {command!r} on {server.id}: '
                                     f'no report in {log} after {timeout} s')
            time.sleep(0.05)


class Notifications:
    """Every notification published on the cloud's ``notifications``
    topic while the listener runs (real oslo.messaging, RabbitMQ)."""

    def __init__(self, transport_url, topic='notifications'):
        conf = cfg.ConfigOpts()
        conf([], project='novaext-cloud-listener')
        transport = oslo_messaging.get_notification_transport(
            conf, url=transport_url)
        self.events = []
        self._lock = threading.Lock()
        self._listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [self],
            executor='threading', allow_requeue=False)

    def start(self):
        self._listener.start()
        return self

    def stop(self):
        self._listener.stop()
        self._listener.wait()

    def _record(self, priority, publisher_id, event_type, payload):
        with self._lock:
            self.events.append({'priority': priority,
                                'publisher_id': publisher_id,
                                'event_type': event_type,
                                'payload': payload,
                                'received': time.time()})

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record('info', publisher_id, event_type, payload)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record('warn', publisher_id, event_type, payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record('error', publisher_id, event_type, payload)

    def of(self, instance_uuid, prefix='novaext.'):
        """Events about ``instance_uuid`` whose type starts with ``prefix``."""
        with self._lock:
            return [e for e in self.events
                    if e['event_type'].startswith(prefix) and
                    isinstance(e['payload'], dict) and
                    e['payload'].get('instance_uuid') == instance_uuid]

    def wait(self, instance_uuid, event_type, timeout=30, since=0.0,
             **payload):
        """The events of ``event_type`` about ``instance_uuid`` received
        after ``since``, once at least one whose payload has the items of
        ``payload`` arrived (the listener handles messages in a thread
        pool: their order is not the order they were sent in)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.of(instance_uuid, event_type)
                     if e['event_type'] == event_type and
                     e['received'] >= since]
            if not any(payload.items() <= e['payload'].items()
                       for e in found):
                found = []
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f'no {event_type} about {instance_uuid} within '
                    f'{timeout} s; novaext events about it: '
                    f'{[e["event_type"] for e in self.of(instance_uuid)]}')
            time.sleep(0.2)
