"""Cloud disk connection data: every field checked before use."""

import copy

import pytest

from novaext.volume import connection_data

GOOD = {'driver_volume_type': 'clouddisk',
        'serial': '0c6b7b2e-6a8e-4c1e-9d9a-7f1d2c3b4a5e',
        'data': {'target_portal': '10.0.0.5:3260',
                 'target_iqn': 'iqn.2010-10.org.openstack:volume-0c6b',
                 'target_lun': 1, 'auth_method': 'CHAP',
                 'auth_username': 'cinder', 'auth_password': 'S3cret!x'}}


def _with(**data):
    info = copy.deepcopy(GOOD)
    for key, value in data.items():
        if value is _MISSING:
            info['data'].pop(key)
        else:
            info['data'][key] = value
    return info


_MISSING = object()


def test_good_connection_info_parses():
    target = connection_data.parse(GOOD)
    assert (target.host, target.port, target.lun) == ('10.0.0.5', 3260, 1)
    assert target.chap.username == 'cinder'
    assert 'S3cret' not in repr(target)
    assert target.portal == '10.0.0.5:3260'


def test_ipv6_portal_and_no_auth():
    target = connection_data.parse(_with(target_portal='[fd00::5]:3260',
                                         auth_method=None))
    assert target.host == 'fd00::5' and target.chap is None
    assert target.portal == '[fd00::5]:3260'


@pytest.mark.parametrize('field, value, message', [
    ('target_portal', _MISSING, 'target_portal is missing'),
    ('target_iqn', _MISSING, 'target_iqn is missing'),
    ('target_lun', _MISSING, 'target_lun is missing'),
    ('target_portal', '10.0.0.5', 'target_portal must be <address>:<port>'),
    ('target_portal', '10.0.0.5:99999', 'port 1-65535'),
    ('target_portal', 'evil host:3260', 'not an address or host name'),
    ('target_portal', '-oProxy=x:3260', 'not an address or host name'),
    ('target_portal', 3260, 'must be a string'),
    ('target_iqn', 'iqn.2010-10.org.x:vol"/><disk', 'target_iqn must be'),
    ('target_iqn', 'iqn.2010-10.org.x:a b', 'target_iqn must be'),
    ('target_iqn', 'iqn.2010-10.org.x:a\nb', 'target_iqn must be'),
    ('target_iqn', 'iqn.2010-10.org.x:a,b', 'target_iqn must be'),
    ('target_iqn', 'not-an-iqn', 'target_iqn must be'),
    ('target_lun', '1', 'target_lun must be an integer'),
    ('target_lun', True, 'target_lun must be an integer'),
    ('target_lun', -1, 'target_lun must be an integer'),
    ('target_lun', 70000, 'target_lun must be an integer'),
    ('auth_method', 'MD5', "unknown auth_method 'MD5'"),
    ('auth_username', _MISSING, 'CHAP needs auth_username'),
    ('auth_password', _MISSING, 'CHAP needs auth_password'),
    ('auth_username', "x' or '1", 'auth_username must be'),
    ('auth_password', 'has space', 'auth_password must be'),
    ('auth_password', 'quote"d', 'auth_password must be'),
    ('auth_password', 'new\nline', 'auth_password must be'),
])
def test_bad_field_is_named_in_a_clear_error(field, value, message):
    with pytest.raises(connection_data.InvalidConnectionInfo) as err:
        connection_data.parse(_with(**{field: value}))
    assert message in str(err.value)
    assert 'Invalid cloud disk connection_info' in str(err.value)


def test_password_is_never_echoed():
    with pytest.raises(connection_data.InvalidConnectionInfo) as err:
        connection_data.parse(_with(auth_password='bad secret'))
    assert 'bad secret' not in str(err.value)


@pytest.mark.parametrize('info', [None, {}, {'data': 'x'}, []])
def test_no_data_mapping(info):
    with pytest.raises(connection_data.InvalidConnectionInfo,
                       match='no "data" mapping'):
        connection_data.parse(info)


@pytest.mark.parametrize('serial', [None, '../../etc', 'a' * 65, 'x y'])
def test_bad_serial(serial):
    info = copy.deepcopy(GOOD)
    info['serial'] = serial
    with pytest.raises(connection_data.InvalidConnectionInfo,
                       match='serial/volume_id'):
        connection_data.parse(info)
