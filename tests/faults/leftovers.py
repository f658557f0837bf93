"""What an interrupted operation must not leave behind, on real facts:
the hosts' files, libvirt domains and processes."""

import os

# Files of novaext's and Nova's own windows: redirect layers, pre-copied
# and caught-up files, partial downloads, resize directories.
LEFTOVER_MARKS = ('.novaext-', '.part', '_resize')


def leftover_files(host, server_id):
    """Files and directories of ``server_id`` on ``host`` that belong to
    an operation's window (none belongs to a disk chain in use)."""
    found = []
    for name in os.listdir(host.instances_dir):
        if not name.startswith(server_id):
            continue
        if any(m in name for m in LEFTOVER_MARKS):
            found.append(name)
        path = os.path.join(host.instances_dir, name)
        if os.path.isdir(path):
            found += [os.path.join(name, n) for n in os.listdir(path)
                      if any(m in n for m in LEFTOVER_MARKS)]
    found += [os.path.join('_base', n) for n in host.base_files()
              if n.endswith('.part')]
    return sorted(found)


def processes_about(server_id, commands=('rsync', 'stunnel', 'qemu-img',
                                         'scp', 'ssh')):
    """Live processes among ``commands`` whose command line names the
    server (an rsync push, stock Nova's scp, a qemu-img run on its
    disks)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if not argv or not argv[0]:
            continue
        name = os.path.basename(argv[0].decode(errors='replace'))
        if name in commands and server_id.encode() in b' '.join(argv):
            found.append((int(entry), b' '.join(argv).decode(
                errors='replace')))
    return found


def assert_nothing_left(cloud, server, runs_on):
    """No window's file of ``server`` on any host, its directory and
    domain only on ``runs_on``, no process working on it."""
    for host in cloud.hosts.values():
        assert leftover_files(host, server.id) == [], host.name
        if host.name == runs_on:
            continue
        assert host.instance_files(server.id) == [], (
            f'{host.name} still has {host.instance_files(server.id)}')
        names = [d.UUIDString() for d in host.libvirt().listAllDomains()]
        assert server.id not in names, f'{host.name} still has its domain'
    assert processes_about(server.id) == []


def allocations(cloud, consumer):
    """Placement's allocations of ``consumer``: {provider name:
    resources}."""
    found = cloud.api.placement.get(
        f'/allocations/{consumer}',
        headers={'OpenStack-API-Version': 'placement 1.28'}).json()
    names = {}
    for rp in found.get('allocations', {}):
        names[rp] = cloud.api.placement.get(
            f'/resource_providers/{rp}').json()['name']
    return {names[rp]: alloc['resources']
            for rp, alloc in found.get('allocations', {}).items()}


def assert_allocated_only_on(cloud, server, host_name, disk_gb):
    """The server holds resources on ``host_name`` alone, its flavor's
    disk, and none of its migrations still holds any."""
    held = allocations(cloud, server.id)
    assert list(held) == [host_name], held
    assert held[host_name]['DISK_GB'] == disk_gb, held
    migrations = cloud.api.compute.get(
        f'/os-migrations?instance_uuid={server.id}',
        microversion='2.59').json()['migrations']
    for migration in migrations:
        assert allocations(cloud, migration['uuid']) == {}, migration
