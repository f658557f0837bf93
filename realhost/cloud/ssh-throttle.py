#!/usr/bin/python3
"""sshd's ForceCommand on the stock-Nova cloud's compute hosts: runs the
command the client asked for (``$SSH_ORIGINAL_COMMAND``: Nova's
``mkdir``/``rm``/``touch``, scp's sink or the sftp server) and, when the
host's ``ssh-bwlimit-kib`` file (argv[1]) holds a positive number, feeds
it the client's data at that many KiB/s: the stand-in for a slow link
that novaext's own pushes get from ``[novaext]rsync_bwlimit_kib``, so a
fault can land in stock Nova's copy too. Standard library only (it runs
with the machine's python3)."""

import os
import subprocess
import sys
import time

CHUNK = 64 * 1024


def _rate(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) * 1024
    except (FileNotFoundError, ValueError):
        return 0


def main():
    command = os.environ.get('SSH_ORIGINAL_COMMAND', '')
    argv = ['/bin/sh', '-c', command] if command else ['/bin/sh']
    rate = _rate(sys.argv[1])
    if rate <= 0:
        os.execv(argv[0], argv)
    child = subprocess.Popen(argv, stdin=subprocess.PIPE)
    started = time.monotonic()
    sent = 0
    try:
        while data := os.read(0, CHUNK):
            child.stdin.write(data)
            child.stdin.flush()
            sent += len(data)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        child.stdin.close()
    except BrokenPipeError:
        pass
    sys.exit(child.wait())


if __name__ == '__main__':
    main()
