"""The [novaext] options, their entry point and the sample config."""

import importlib.metadata
import pathlib
import subprocess
import sys

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


def test_rsyncd_sample_is_current():
    out = subprocess.run(
        [sys.executable, '-m', 'novaext.cmd.rsyncd', '--config-file',
         '/dev/null', 'show-config'],
        check=True, capture_output=True, text=True).stdout
    committed = (REPO / 'etc/novaext-rsyncd.conf.sample').read_text()
    assert out == committed, (
        'etc/novaext-rsyncd.conf.sample is stale: regenerate it with '
        'novaext-rsyncd --config-file /dev/null show-config')
