"""novaext-status: is this compute host ready for novaext (oslo.upgradecheck,
as ``nova-status``)?

    novaext-status --config-file /etc/nova/nova.conf upgrade check [--json]

Run it on each compute host before (re)starting nova-compute with a new
Nova or a new novaext, with nova-compute's own config files. Exit status
0: all checks passed; 1: a warning; 2: a failure (the details say what to
do).
"""

import os
import re
import stat
import subprocess
import sys

from oslo_upgradecheck import upgradecheck

from novaext import nova_internals
from novaext.cmd import rsyncd as rsyncd_cmd
from novaext.imagebackend import base_names
from novaext.rsync import daemon as rsync_daemon

Code = upgradecheck.Code
Result = upgradecheck.Result

# The client's options that need a recent rsync: --mkpath (3.2.3),
# --fsync (3.2.4); --info=progress2 and --outbuf (3.1.0).
RSYNC_MINIMUM = (3, 2, 4)
# A TLS certificate expiring within this many days is a warning.
CERT_WARN_DAYS = 30
# What novaext (and Nova) keep in _base besides bases: records, downloads
# in progress, quarantined bases.
_BASE_EXTRAS = re.compile(
    r'(?P<base>[^/]+?)(\.verified|\.part|\.quarantined-[0-9TZ.]+)?')


def rsync_version(output):
    """(major, minor, patch) from ``rsync --version``'s first line."""
    found = re.search(r'version\s+(\d+)\.(\d+)\.(\d+)', output)
    if found is None:
        raise ValueError(f'no version in {output.splitlines()[:1]}')
    return tuple(int(n) for n in found.groups())


def _mode_problem(path, what, owners, whose):
    """Why ``path`` is not a secret file owned by one of the uids
    ``owners`` (``whose``: who reads it), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f'{what} {path} does not exist'
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f'{what} {path} is mode {stat.S_IMODE(st.st_mode):o}: '
                f'others can read it (chmod 600)')
    if st.st_uid not in owners:
        return (f'{what} {path} belongs to uid {st.st_uid}; {whose} reads '
                f'it (uid {" or ".join(map(str, sorted(owners)))})')
    return None


def _module_paths(config_text):
    """{module: path} of an rsyncd.conf's text."""
    paths, module = {}, None
    for line in config_text.splitlines():
        header = re.fullmatch(r'\s*\[(.+)\]\s*', line)
        if header:
            module = header.group(1)
        elif module and re.match(r'\s*path\s*=', line):
            paths[module] = line.split('=', 1)[1].strip()
    return paths


class Checks(upgradecheck.UpgradeCommands):
    """novaext's readiness checks on ``conf`` (Nova's and novaext's
    options, parsed from nova-compute's config files)."""

    def __init__(self, conf, run=subprocess.run):
        self.conf = conf
        self._run = run

    def _settings(self):
        return rsync_daemon.RsyncDaemonSettings.from_conf(self.conf)

    def _check_nova_names(self):
        moved = nova_internals.moved_names()
        if moved:
            return Result(Code.FAILURE, 'The installed Nova lacks what '
                          'novaext relies on: ' + '; '.join(moved) +
                          '. Install the novaext release made for this '
                          'Nova.')
        return Result(Code.SUCCESS, f'{len(nova_internals.PINNED_NAMES)} '
                      'Nova names in place')

    def _check_rsync_version(self):
        try:
            out = self._run(['rsync', '--version'], capture_output=True,
                            text=True, check=True).stdout
            found = rsync_version(out)
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            return Result(Code.FAILURE, f'rsync cannot be run ({e}): '
                          'install rsync')
        wanted = '.'.join(map(str, RSYNC_MINIMUM))
        if found < RSYNC_MINIMUM:
            return Result(Code.FAILURE, f'rsync {".".join(map(str, found))}'
                          f' lacks --mkpath/--fsync: install {wanted} or '
                          'newer')
        return Result(Code.SUCCESS, f'rsync {".".join(map(str, found))}')

    def _check_daemon(self):
        settings = self._settings()
        pid = rsync_daemon.running_pid(settings)
        address = settings.listen_address or '127.0.0.1'
        if pid is None or not rsync_daemon.answers(settings, address):
            return Result(Code.FAILURE, 'The rsync daemon does not run or '
                          f'answer on {address}:{settings.port}: start '
                          'novaext-rsyncd (run, or start) with nova.conf')
        try:
            with open(settings.config_file) as f:
                running = f.read()
        except FileNotFoundError:
            running = ''
        if running != rsync_daemon.render_config(settings):
            return Result(Code.WARNING, f'{settings.config_file} differs '
                          'from what nova.conf says now: restart '
                          'novaext-rsyncd so that it serves the modules '
                          'nova.conf describes')
        return Result(Code.SUCCESS, f'pid {pid}, modules '
                      f'{settings.module} (write only) and '
                      f'{settings.base_module} (read only)')

    def _check_instances_path(self):
        settings = self._settings()
        try:
            with open(settings.config_file) as f:
                served = _module_paths(f.read()).get(settings.module)
        except FileNotFoundError:
            return Result(Code.WARNING, f'{settings.config_file} does not '
                          'exist: the daemon was never set up here')
        if served != os.path.abspath(self.conf.instances_path):
            return Result(Code.FAILURE, f'nova-compute uses '
                          f'{self.conf.instances_path} but the daemon '
                          f'serves {served}: resizes to this host would '
                          'fail. Start novaext-rsyncd with nova-compute\'s '
                          'config files')
        return Result(Code.SUCCESS, served)

    def _check_secret_files(self):
        opts = self.conf.novaext
        # The daemon reads the secrets file: root under the shipped
        # systemd unit, or nova-compute's user where it runs as that
        # (rsync's strict modes want it private to the daemon's user).
        # nova-compute's rsync client reads the password file.
        problems = [p for p in (
            _mode_problem(opts.rsync_secrets_file, 'rsync_secrets_file',
                          {0, os.getuid()}, 'the rsync daemon'),
            _mode_problem(opts.rsync_password_file, 'rsync_password_file',
                          {os.getuid()}, 'nova-compute (the user checking)'),
        ) if p]
        if problems:
            return Result(Code.FAILURE, '; '.join(problems))
        return Result(Code.SUCCESS, 'rsync_secrets_file (the daemon\'s) '
                      'and rsync_password_file (nova-compute\'s): mode '
                      '600, owned by who reads them')

    def _check_tls(self):
        opts = self.conf.novaext
        if opts.rsync_transport != 'tls':
            return Result(Code.SUCCESS, 'plain transport: nothing to check')
        verify = self._run(['openssl', 'verify', '-CAfile',
                            opts.rsync_tls_ca_file, opts.rsync_tls_cert_file],
                           capture_output=True, text=True)
        if verify.returncode != 0:
            return Result(Code.FAILURE, f'{opts.rsync_tls_cert_file} does not '
                          f'chain to {opts.rsync_tls_ca_file}: '
                          f'{(verify.stdout + verify.stderr).strip()}')
        names = self._run(['openssl', 'x509', '-noout', '-ext',
                           'subjectAltName', '-in', opts.rsync_tls_cert_file],
                          capture_output=True, text=True).stdout
        address = opts.rsync_address
        if address and address not in names:
            return Result(Code.FAILURE, f'{opts.rsync_tls_cert_file} does '
                          f'not name {address} (rsync_address), which peers '
                          f'check: {names.strip() or "no subjectAltName"}')
        seconds = CERT_WARN_DAYS * 86400
        ends = self._run(['openssl', 'x509', '-noout', '-checkend',
                          str(seconds), '-in', opts.rsync_tls_cert_file],
                         capture_output=True, text=True)
        if ends.returncode != 0:
            return Result(Code.WARNING, f'{opts.rsync_tls_cert_file} '
                          f'expires within {CERT_WARN_DAYS} days: renew it')
        return Result(Code.SUCCESS, f'chains to {opts.rsync_tls_ca_file}, '
                      f'names {address}, valid beyond {CERT_WARN_DAYS} '
                      'days')

    def _check_base_entries(self):
        base = os.path.join(self.conf.instances_path,
                            self.conf.image_cache.subdirectory_name)
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            return Result(Code.SUCCESS, f'{base} does not exist yet')
        foreign = []
        for name in names:
            core = _BASE_EXTRAS.fullmatch(name).group('base')
            if not (base_names.is_image_base(core) or
                    base_names.is_host_made(core)):
                foreign.append(name)
        if foreign:
            return Result(Code.WARNING, f'{base} holds what is no base of '
                          f'the image cache: {foreign[:10]}. The cache '
                          'manager never removes them and peers cannot '
                          'pull them; move them elsewhere')
        return Result(Code.SUCCESS, f'{len(names)} entries')

    _upgrade_checks = (
        ('Nova names novaext relies on', _check_nova_names),
        ('rsync version', _check_rsync_version),
        ('rsync daemon', _check_daemon),
        ('instances_path of nova-compute and the daemon',
         _check_instances_path),
        ('Secret files', _check_secret_files),
        ('TLS certificate', _check_tls),
        ('Image cache entries', _check_base_entries),
    )


def main(argv=None):
    """Console script entry point; returns the exit status."""
    conf = rsyncd_cmd.build_conf()
    return upgradecheck.main(conf, project='nova',
                             upgrade_command=Checks(conf),
                             argv=sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
