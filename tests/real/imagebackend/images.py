"""Real image files for the image-backend tests, made with qemu-img/qemu-io."""

import hashlib
import json
import os
import subprocess
import uuid

MiB = 1024 ** 2


def qemu_io(path, fmt, *commands, force_share=False):
    args = ['qemu-io', '-f', fmt] + (['-U', '-r'] if force_share else [])
    for command in commands:
        args += ['-c', command]
    out = subprocess.run(args + [str(path)], capture_output=True, text=True)
    if out.returncode or 'Pattern verification failed' in out.stdout:
        raise AssertionError(f'qemu-io {commands} on {path}: '
                             f'{out.stdout}{out.stderr}')
    return out.stdout


def make_base_and_delta(workdir, size='64M', detached=True):
    """A base image and a delta snapshot over it, like a real snapshot.

    Returns (base_id, base_sha1, base_file, delta_file). The base holds
    0x5a in its first MiB; the delta writes 0xa5 into its second MiB and
    has no backing file (``detached``, as novaext uploads deltas) or names
    it by the bare sha1 (as novaext did before glance refused that).
    """
    base_id = str(uuid.uuid4())
    base_sha1 = hashlib.sha1(base_id.encode()).hexdigest()
    base_file = os.path.join(workdir, 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base_file,
                    size], check=True)
    qemu_io(base_file, 'qcow2', 'write -P 0x5a 0 1M')
    # The delta's backing is the raw form of the base under its sha1 name.
    chain_dir = os.path.join(workdir, 'chain')
    os.makedirs(chain_dir)
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', base_file,
                    os.path.join(chain_dir, base_sha1)], check=True)
    delta_file = os.path.join(chain_dir, 'delta.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
                    base_sha1, '-F', 'raw', delta_file], check=True)
    qemu_io(delta_file, 'qcow2', 'write -P 0xa5 1M 1M')
    if detached:
        subprocess.run(['qemu-img', 'rebase', '-u', '-f', 'qcow2', '-b', '',
                        delta_file], check=True)
    return base_id, base_sha1, base_file, delta_file


def make_legacy_backed(disk, root_gb):
    """Leave ``disk`` as an older Nova did: backed by ``<sha1>_<GB>``, its
    base copied and grown to ``root_gb``, and the plain base removed.

    :returns: the legacy base's path
    """
    info = json.loads(subprocess.run(
        ['qemu-img', 'info', '-U', '--output=json', str(disk)],
        check=True, capture_output=True, text=True).stdout)
    base = info['full-backing-filename']
    legacy = f'{base}_{root_gb}'
    subprocess.run(['cp', '--sparse=always', base, legacy], check=True)
    subprocess.run(['qemu-img', 'resize', '-q', '-f', 'raw', legacy,
                    f'{root_gb}G'], check=True)
    subprocess.run(['qemu-img', 'rebase', '-u', '-F', 'raw', '-b', legacy,
                    str(disk)], check=True)
    os.unlink(base)
    return legacy
