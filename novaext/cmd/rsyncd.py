"""novaext-rsyncd: set up and run this host's rsync daemon from nova.conf.

    novaext-rsyncd --config-file /etc/nova/nova.conf show-config
    novaext-rsyncd --config-file /etc/nova/nova.conf write-config
    novaext-rsyncd --config-file /etc/nova/nova.conf start
    novaext-rsyncd --config-file /etc/nova/nova.conf run
    novaext-rsyncd --config-file /etc/nova/nova.conf check

``show-config`` prints the config; ``write-config`` writes it to
``[novaext]rsyncd_config_file``; ``start`` writes the config and starts
the daemon in the background if it is not running, then prints its PID;
``run`` runs it in the foreground as a service's main process until
SIGTERM (rsync.foreground: systemd, containers); ``check`` exits 0 only
if the daemon runs and answers.
"""

import sys

from nova.conf import compute as nova_compute_conf
from nova.conf import imagecache as nova_imagecache_conf
from nova.conf import paths as nova_paths_conf
from oslo_config import cfg
from oslo_log import log as logging

from novaext import conf as novaext_conf
from novaext import exception as novaext_exception
from novaext.rsync import daemon as rsync_daemon
from novaext.rsync import foreground as rsync_foreground
from novaext.rsync import tls as rsync_tls

CONF = cfg.CONF


def _show_config(settings):
    print(rsync_daemon.render_config(settings), end='')
    return 0


def _write_config(settings):
    print(rsync_daemon.write_config(settings))
    return 0


def _start(settings):
    print(rsync_daemon.start(settings))
    return 0


def _run(settings):
    return rsync_foreground.ForegroundDaemon(settings).run()


def _check(settings):
    pid = rsync_daemon.running_pid(settings)
    ok = pid is not None and rsync_daemon.answers(
        settings, settings.listen_address or '127.0.0.1')
    if ok and settings.transport == 'tls':
        ok = rsync_tls.stunnel_running_pid(settings) is not None
    print(f'rsync daemon: {"running, pid %d" % pid if ok else "not running"}'
          f' (port {settings.port}, modules {settings.module} and '
          f'{settings.base_module})')
    return 0 if ok else 1


COMMANDS = {
    'show-config': _show_config,
    'write-config': _write_config,
    'start': _start,
    'run': _run,
    'check': _check,
}


def _add_parsers(subparsers):
    for name in COMMANDS:
        subparsers.add_parser(name)


def build_conf():
    """novaext's options and Nova's own definitions of the ones the
    daemon shares with nova-compute (state_path, instances_path, [image_cache]
    subdirectory_name), so that the same nova.conf files resolve to the
    same paths here as in nova-compute ($state_path, every default)."""
    conf = cfg.ConfigOpts()
    novaext_conf.register_opts(conf)
    nova_paths_conf.register_opts(conf)
    nova_compute_conf.register_opts(conf)
    nova_imagecache_conf.register_opts(conf)
    return conf


def main(argv=None):
    """Console script entry point; returns the process exit status."""
    conf = build_conf()
    conf.register_cli_opt(cfg.SubCommandOpt(
        'command', handler=_add_parsers, help='what to do'))
    logging.register_options(conf)
    conf.set_default('use_stderr', True)
    conf(sys.argv[1:] if argv is None else argv, project='nova')
    logging.setup(conf, 'novaext-rsyncd')
    try:
        settings = rsync_daemon.RsyncDaemonSettings.from_conf(conf)
        return COMMANDS[conf.command.name](settings)
    except novaext_exception.ConfigError as e:
        print(f'novaext-rsyncd: {e}', file=sys.stderr)
        return 2
    except novaext_exception.DaemonDidNotStart as e:
        print(f'novaext-rsyncd: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
