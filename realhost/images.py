"""Base images for the benchmarks, made with qemu-img and qemu-io."""

import subprocess


def make_raw_base(path, size_mib):
    """A raw image of ``size_mib`` MiB at ``path``, every byte 0x5a: real
    data everywhere, so a copy or download moves the whole size.

    qemu-io takes at most 2 GiB per request: it is written 1 GiB at a
    time."""
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', path,
                    f'{size_mib}M'], check=True)
    commands = []
    for offset in range(0, size_mib, 1024):
        length = min(1024, size_mib - offset)
        commands += ['-c', f'write -P 0x5a {offset}M {length}M']
    subprocess.run(['qemu-io', '-f', 'raw', *commands, path], check=True,
                   capture_output=True)
