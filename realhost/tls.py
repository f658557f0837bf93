"""Certificates and a TLS-fronted rsync daemon for the real tests."""

import os
import signal
import subprocess

from realhost import rsyncd


def _openssl(*args):
    subprocess.run(['openssl', *args], check=True, capture_output=True)


def make_ca(directory, name):
    key, cert = directory / f'{name}.key', directory / f'{name}.pem'
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
             'ec_paramgen_curve:P-256', '-nodes', '-keyout', str(key),
             '-out', str(cert), '-days', '2', '-subj', f'/CN={name}')
    return cert, key


def make_host_cert(directory, name, ca, addresses=('127.0.0.1',
                                                   '127.0.0.2'), days=2):
    """A host certificate signed by ``ca`` (cert, key), valid as server
    and client for ``addresses``, for ``days``."""
    key, csr = directory / f'{name}.key', directory / f'{name}.csr'
    cert, ext = directory / f'{name}.pem', directory / f'{name}.ext'
    _openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
             '-nodes', '-keyout', str(key), '-out', str(csr), '-subj',
             f'/CN={name}')
    ext.write_text(
        'subjectAltName=' + ','.join(f'IP:{a}' for a in addresses) +
        '\nextendedKeyUsage=serverAuth,clientAuth\n')
    _openssl('x509', '-req', '-in', str(csr), '-CA', str(ca[0]), '-CAkey',
             str(ca[1]), '-CAcreateserial', '-out', str(cert), '-days',
             str(days),
             '-extfile', str(ext))
    os.chmod(key, 0o600)
    return cert, key


class TlsPki:
    """One CA with a host certificate, and an intruder's CA with its own."""

    def __init__(self, directory, addresses=('127.0.0.1', '127.0.0.2')):
        """``addresses``: what the host certificate names."""
        directory.mkdir(exist_ok=True)
        self.ca = make_ca(directory, 'compute-ca')
        self.host = make_host_cert(directory, 'compute', self.ca, addresses)
        self.other_ca = make_ca(directory, 'intruder-ca')
        self.intruder = make_host_cert(directory, 'intruder', self.other_ca)

    def client_conf(self, port, cert=None, ca=None):
        """[novaext] options of a client using the TLS transport."""
        cert = cert or self.host
        return {'rsync_transport': 'tls', 'rsync_tls_port': port,
                'rsync_tls_cert_file': str(cert[0]),
                'rsync_tls_key_file': str(cert[1]),
                'rsync_tls_ca_file': str((ca or self.ca)[0])}


def start_tls_daemon(tmp_path, instances, pki):
    """A daemon behind stunnel, started by novaext-rsyncd; returns the
    fixture dict the resize tests take (``port`` is the TLS port)."""
    port = rsyncd.free_port()
    tls_port = rsyncd.free_port()
    workdir = tmp_path / 'tls-daemon'
    workdir.mkdir()
    conf = pki.client_conf(tls_port)
    cmd, pid = rsyncd.start_daemon(workdir, instances, port, tls_conf=conf)
    with open(workdir / 'stunnel.pid') as f:
        stunnel_pid = int(f.read().strip())
    return {'cmd': cmd, 'port': port, 'tls_port': tls_port,
            'instances': instances, 'tmp': tmp_path, 'pid': pid,
            'stunnel_pid': stunnel_pid, 'client_conf': conf,
            'client_files': (conf['rsync_tls_cert_file'],
                             conf['rsync_tls_key_file'],
                             conf['rsync_tls_ca_file'])}


def stop_tls_daemon(daemon):
    for pid in (daemon['stunnel_pid'], daemon['pid']):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
