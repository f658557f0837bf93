"""The [novaext] options, their entry point and the sample config."""

import importlib.metadata
import pathlib
import subprocess
import sys

import pytest
from oslo_config import cfg

from novaext import conf

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_every_option_has_help_text():
    for group, opts in conf.list_opts():
        assert group.name == 'novaext'
        for opt in opts:
            assert opt.help and len(opt.help) > 20, opt.name


def test_options_register_under_novaext_group():
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    c([])
    assert c.novaext.rsync_module == 'nova_instances'
    assert c.novaext.rsync_hosts_allow == ['127.0.0.1']


def test_oslo_config_opts_entry_point_points_at_list_opts():
    eps = importlib.metadata.entry_points(group='oslo.config.opts')
    ours = [ep for ep in eps if ep.name == 'novaext']
    assert len(ours) == 1
    assert ours[0].load() is conf.list_opts


def test_sample_config_is_current(tmp_path):
    out = tmp_path / 'novaext.conf.sample'
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--config-file', str(REPO / 'etc/novaext-config-generator.conf'),
         '--output-file', str(out)],
        check=True, cwd=REPO)
    committed = (REPO / 'etc/novaext.conf.sample').read_text()
    assert out.read_text() == committed, (
        'etc/novaext.conf.sample is stale: run tox -e genconfig')


def _rsyncd_config(*config_files):
    argv = [sys.executable, '-m', 'novaext.cmd.rsyncd']
    for path in config_files:
        argv += ['--config-file', str(path)]
    return subprocess.run(argv + ['show-config'], check=True,
                          capture_output=True, text=True).stdout


def test_rsyncd_sample_is_current():
    out = _rsyncd_config(REPO / 'etc/novaext-rsyncd-sample.conf')
    committed = (REPO / 'etc/novaext-rsyncd.conf.sample').read_text()
    assert out == committed, (
        'etc/novaext-rsyncd.conf.sample is stale: regenerate it with '
        'novaext-rsyncd --config-file etc/novaext-rsyncd-sample.conf '
        'show-config')


def _module_paths(config):
    return [line.split('=', 1)[1].strip() for line in config.splitlines()
            if line.startswith('path =')]


@pytest.mark.parametrize('nova_conf, instances', [
    # Nova's state_path moves the instances with it, as in nova-compute.
    ('[DEFAULT]\nstate_path = /srv/nova\n', '/srv/nova/instances'),
    ('[DEFAULT]\nstate_path = /srv/nova\n'
     'instances_path = $state_path/vms\n', '/srv/nova/vms'),
    ('[DEFAULT]\ninstances_path = /data/instances\n'
     '[image_cache]\nsubdirectory_name = cache\n', '/data/instances'),
])
def test_rsyncd_serves_the_paths_nova_compute_uses(tmp_path, nova_conf,
                                                    instances):
    """One source of truth: the daemon reads Nova's own option
    definitions from the same nova.conf (issue 32)."""
    path = tmp_path / 'nova.conf'
    path.write_text(nova_conf)
    base = 'cache' if 'subdirectory_name' in nova_conf else '_base'
    assert _module_paths(_rsyncd_config(path)) == [
        instances, f'{instances}/{base}']
