"""A private sshd for Nova's own ssh/rsync paths in benchmarks: keys of
its own, no PAM, root by key only, on one address and port."""

import os
import shutil
import socket
import subprocess
import time


def prepare(work, address, port):
    """Keys and authorized_keys in ``work``; return (sshd command, client
    key path). The command runs sshd in the foreground, logging to
    stderr."""
    host_key = os.path.join(work, 'ssh_host_key')
    client_key = os.path.join(work, 'client_key')
    for key in (host_key, client_key):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                        '-f', key], check=True, capture_output=True)
    authorized = os.path.join(work, 'authorized_keys')
    shutil.copyfile(client_key + '.pub', authorized)
    os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
    command = [shutil.which('sshd') or '/usr/sbin/sshd', '-D', '-e',
               '-f', '/dev/null', '-p', str(port),
               '-o', f'ListenAddress={address}',
               '-o', f'HostKey={host_key}',
               '-o', f'AuthorizedKeysFile={authorized}',
               '-o', 'PermitRootLogin=prohibit-password',
               '-o', 'StrictModes=no', '-o', 'UsePAM=no',
               '-o', f'PidFile={work}/sshd.pid']
    return command, client_key


def wait_listening(address, port, proc, timeout=10):
    """True once ``address``:``port`` accepts connections; False if
    ``proc`` (the sshd) exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex((address, port)) == 0:
                return True
        time.sleep(0.1)
    return False
