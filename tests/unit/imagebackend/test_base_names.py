"""The grammar of the image cache's names (novaext.imagebackend.base_names)."""

import pytest
from oslo_utils import units

from novaext.imagebackend import base_names

SHA1 = 'a9993e364706816aba3e25717850c26c9cd0d89d'


def test_an_image_s_base_is_named_by_the_sha1_of_its_id():
    assert base_names.of_image('abc') == SHA1


@pytest.mark.parametrize('name, image_base, host_made', [
    (SHA1, True, False),
    (SHA1 + '_20', True, False),
    ('ephemeral_1_0706d66', False, True),
    ('swap_512', False, True),
    (SHA1.upper(), False, False),
    (SHA1 + '.part', False, False),
    (SHA1 + '_20_20', False, False),
    ('../' + SHA1, False, False),
    ('', False, False),
])
def test_names_are_told_apart(name, image_base, host_made):
    assert base_names.is_image_base(name) is image_base
    assert base_names.is_host_made(name) is host_made


def test_a_legacy_name_gives_its_sha1_and_size():
    assert base_names.parse_legacy(SHA1 + '_20') == (SHA1, 20 * units.Gi)
    assert base_names.parse_legacy(SHA1) is None


def test_is_sha1_takes_only_strings_of_40_lower_hex():
    assert base_names.is_sha1(SHA1)
    assert not base_names.is_sha1(None)
    assert not base_names.is_sha1(SHA1[:-1])


def test_the_cache_is_under_instances_path(monkeypatch):
    import nova.conf  # noqa: F401  (registers Nova's options)
    from oslo_config import cfg
    from oslo_config import fixture as config_fixture
    with config_fixture.Config(cfg.CONF) as conf:
        conf.config(instances_path='/srv/nova')
        conf.config(subdirectory_name='_cache', group='image_cache')
        assert base_names.base_dir() == '/srv/nova/_cache'
    assert base_names.part_of('/x/' + SHA1) == '/x/' + SHA1 + '.part'
