"""Network links for the benchmarks: loopback, or a veth pair into a
network namespace of our own, shaped with tc tbf.

    with links.Link('1gbit', rate='1gbit') as link:
        link.dest_address          # where the "destination host" listens
        link.in_dest(['cmd', ...]) # a command run in its namespace

The namespace, the veth pair and the addresses (198.18.<n>.0/30, the
benchmarking range of RFC 2544) are created on entry and removed on exit.
The local end stays in this process's namespace, so the benchmark's own
client code (novaext's rsync client, Nova's copy) runs unchanged and
crosses the link. tbf shapes egress on both ends; this kernel has no
netem, so there is no added latency beyond the queue.
"""

import os
import subprocess

_COUNT = [0]


def _ip(*args):
    subprocess.run(['ip', *args], check=True, capture_output=True)


class Link:
    """``rate``: a tc rate ('1gbit', '10gbit'); None: loopback.
    ``burst``: tbf's bucket, at least rate/HZ bytes (tc size syntax)."""

    def __init__(self, name, rate=None, burst='1mb'):
        self.name = name
        self.rate = rate
        self.burst = burst
        self.namespace = None
        self.local_address = self.dest_address = '127.0.0.1'

    def __enter__(self):
        if self.rate is None:
            return self
        _COUNT[0] += 1
        n = _COUNT[0]
        tag = f'{os.getpid() % 10000}x{n}'
        self.namespace = f'novaext-bench-{tag}'
        local, peer = f'nxb{tag}a', f'nxb{tag}b'
        self.local_address = f'198.18.{n}.1'
        self.dest_address = f'198.18.{n}.2'
        _ip('netns', 'add', self.namespace)
        try:
            _ip('link', 'add', local, 'type', 'veth', 'peer', 'name', peer)
            _ip('link', 'set', peer, 'netns', self.namespace)
            _ip('addr', 'add', f'{self.local_address}/30', 'dev', local)
            _ip('link', 'set', local, 'up')
            ns = ['-n', self.namespace]
            _ip(*ns, 'addr', 'add', f'{self.dest_address}/30', 'dev', peer)
            _ip(*ns, 'link', 'set', peer, 'up')
            _ip(*ns, 'link', 'set', 'lo', 'up')
            for prefix, dev in (([], local), (ns, peer)):
                subprocess.run(
                    ['tc', *prefix, 'qdisc', 'add', 'dev', dev, 'root',
                     'tbf', 'rate', self.rate, 'burst', self.burst,
                     'latency', '20ms'], check=True, capture_output=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.namespace:
            # Deleting the namespace deletes the veth pair with it.
            subprocess.run(['ip', 'netns', 'del', self.namespace],
                           check=False, capture_output=True)
            self.namespace = None
        return False

    def in_dest(self, cmd):
        """``cmd`` run in the destination's namespace."""
        if self.namespace is None:
            return list(cmd)
        return ['ip', 'netns', 'exec', self.namespace, *cmd]
