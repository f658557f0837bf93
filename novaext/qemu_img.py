"""The qemu-img commands novaext runs itself (Nova's helpers do the rest:
nova.virt.images.qemu_img_info, convert_image, libvirt_utils).

Every command is argv through oslo.concurrency, never a shell; a secret
reaches qemu-img in a file named by ``--object secret``, never on its
command line.
"""

import json

from nova.compute import utils as compute_utils
from oslo_concurrency import processutils


def rebase_unsafe(path, backing_file, backing_format):
    """Point qcow2 ``path`` at ``backing_file`` by rewriting its header
    only (``rebase -u``): the caller vouches that the new backing file
    holds the same bytes as the old one."""
    processutils.execute('qemu-img', 'rebase', '-u', '-f', 'qcow2',
                         '-F', backing_format, '-b', backing_file, path)


def detach_backing(path):
    """Make qcow2 ``path`` name no backing file (header only)."""
    processutils.execute('qemu-img', 'rebase', '-u', '-f', 'qcow2',
                         '-b', '', path)


def grow(path, disk_format, size):
    """Grow the virtual size of ``path`` to ``size`` bytes."""
    processutils.execute('qemu-img', 'resize', '-q', '-f', disk_format,
                         path, str(size))


def convert_above(source, base_path, base_format, out, compress=False):
    """Write to ``out`` a qcow2 of what ``source`` holds above
    ``base_path`` (``convert -B``), under Nova's disk I/O semaphore."""
    args = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'qcow2',
            '-B', base_path, '-F', base_format]
    if compress:
        args.append('-c')
    with compute_utils.disk_ops_semaphore:
        processutils.execute(*args, source, out)


def virtual_size(image_opts, objects=()):
    """Virtual size in bytes of the image ``--image-opts`` names (e.g. an
    iSCSI LUN through QEMU's initiator); ``objects`` are ``--object``
    definitions (a secret read from a file)."""
    args = []
    for definition in objects:
        args += ['--object', definition]
    out, _err = processutils.execute(
        'qemu-img', 'info', '--output=json', *args, '--image-opts',
        ','.join(image_opts))
    return json.loads(out)['virtual-size']


def create_overlay(path, backing_name, cluster_size):
    """Create qcow2 ``path`` over the qcow2 ``backing_name`` of the same
    directory (recorded by that relative name), with ``cluster_size``."""
    processutils.execute(
        'qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2',
        '-b', backing_name, '-o', f'cluster_size={cluster_size}', path)


def commit(top, base=None):
    """Write what qcow2 ``top`` holds into its backing file, or with
    ``base`` (a file of its backing chain) what ``top`` and the layers
    between them hold into ``base`` (``commit -d``: ``top`` is left as it
    was), under Nova's disk I/O semaphore."""
    cmd = ['qemu-img', 'commit', '-q', '-d', '-f', 'qcow2']
    if base is not None:
        cmd += ['-b', base]
    with compute_utils.disk_ops_semaphore:
        processutils.execute(*cmd, top)


def commit_into(top, base):
    """Write what qcow2 ``top`` holds into qcow2 ``base`` (``commit -d``),
    whatever backing file ``top`` names, and opening ``base`` without its
    own backing file. Safe only when each cluster of ``top`` covers whole
    clusters of ``base`` (``top``'s cluster size is not smaller, no
    subclusters): ``base`` then never reads through its backing file."""
    spec = {'driver': 'qcow2',
            'file': {'driver': 'file', 'filename': top},
            'backing': {'driver': 'qcow2',
                        'file': {'driver': 'file', 'filename': base},
                        'backing': None}}
    with compute_utils.disk_ops_semaphore:
        processutils.execute('qemu-img', 'commit', '-q', '-d',
                             'json:' + json.dumps(spec))
