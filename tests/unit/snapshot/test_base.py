"""novaext.snapshot.base: which backing files can carry a delta."""

from novaext.snapshot import base as snapshot_base

SHA1 = 'a' * 40

def test_only_sha1_named_bases_in_base_dir_can_carry_a_delta(tmp_path):
    from nova.tests import fixtures as nova_fixtures
    from oslo_config import cfg
    fx = nova_fixtures.ConfFixture(cfg.CONF)
    fx.setUp()
    try:
        cfg.CONF.set_override('instances_path', str(tmp_path))
        base_dir = str(tmp_path / '_base')
        assert snapshot_base.base_sha1_of(f'{base_dir}/{SHA1}') == SHA1
        assert snapshot_base.base_sha1_of(f'{base_dir}/{SHA1}_20') == SHA1
        assert snapshot_base.base_sha1_of(f'{base_dir}/ephemeral_1_0706d66'
                                          ) is None
        assert snapshot_base.base_sha1_of(f'/elsewhere/{SHA1}') is None
        assert snapshot_base.base_sha1_of(
            f'{base_dir}/../_base/{SHA1}') is None
        assert snapshot_base.base_sha1_of(None) is None
    finally:
        fx.cleanUp()
