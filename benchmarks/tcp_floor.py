"""The transfer floor over a link: the same bytes over one TCP stream,
written and fsync'd at the destination.

    python benchmarks/tcp_floor.py sink ADDRESS PORT FILE   # destination
    tcp_floor.send(address, port, path) -> bytes             # source

The sink accepts one connection, writes what arrives to FILE, fsyncs it,
then answers one byte; the sender's time ends with that byte, so it
covers the transfer and the destination's fsync, as rsync --fsync does.
Large socket buffers; the sender uses sendfile.
"""

import os
import socket
import sys

BUFFER = 4 * 1024 * 1024


def sink(address, port, path):
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        server.bind((address, int(port)))
        server.listen(1)
        print('ready', flush=True)
        conn, _ = server.accept()
        with conn, open(path, 'wb') as out:
            view = memoryview(bytearray(BUFFER))
            while True:
                n = conn.recv_into(view)
                if not n:
                    break
                out.write(view[:n])
            out.flush()
            os.fsync(out.fileno())
            conn.sendall(b'k')


def send(address, port, path, timeout=600):
    """Send ``path`` to a sink that said 'ready'; return the bytes sent
    once the sink has fsync'd."""
    with socket.create_connection((address, port), timeout=timeout) as conn, \
            open(path, 'rb') as f:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        sent = conn.sendfile(f)
        conn.shutdown(socket.SHUT_WR)
        if conn.recv(1) != b'k':
            raise RuntimeError('the sink did not confirm the fsync')
    return sent


if __name__ == '__main__' and sys.argv[1] == 'sink':
    sink(*sys.argv[2:5])
