"""Validated iSCSI connection data of a cloud disk.

Cinder hands Nova ``connection_info['data']`` with the target's portal,
IQN and LUN and, optionally, CHAP credentials. Each field reaches libvirt
XML, a QEMU URI or an iscsiadm command line, so each is checked against
the rule for its field (a table, ``_RULES``) before anything is touched;
the first field that breaks its rule is named in the error.
"""

import dataclasses
import ipaddress
import re

from novaext.exception import InvalidConnectionInfo

_IQN = re.compile(
    r'iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]*(:[A-Za-z0-9._:-]{1,200})?'
    r'|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?')
_HOSTNAME = re.compile(r'[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?')
_CHAP_USER = re.compile(r'[A-Za-z0-9._@:-]{1,255}')
# Printable ASCII without quotes, backslash or whitespace.
_CHAP_SECRET = re.compile(r'[!#-&(-\[\]-~]{1,255}')
_SERIAL = re.compile(r'[A-Za-z0-9-]{1,64}')
AUTH_METHODS = ('CHAP',)


@dataclasses.dataclass(frozen=True)
class Chap:
    username: str
    secret: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Target:
    """One iSCSI LUN, every field safe for XML and command lines."""
    host: str
    port: int
    iqn: str
    lun: int
    serial: str
    chap: Chap | None = None

    @property
    def portal(self):
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'{host}:{self.port}'


def _split_portal(value):
    host, sep, port = value.rpartition(':')
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('must be <address>:<port> with a port 1-65535')
    if host.startswith('[') and host.endswith(']'):
        ipaddress.IPv6Address(host[1:-1])
        return host[1:-1], int(port)
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise ValueError('not an address or host name') from None
    return host, int(port)


def _matches(pattern, what):
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f'must be {what}')
        return value
    return check


def _lun(value):
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 0 <= value <= 16383:
        raise ValueError('must be an integer 0-16383')
    return value


def _portal(value):
    if not isinstance(value, str):
        raise ValueError('must be a string <address>:<port>')
    return _split_portal(value)


# field -> (required, check): the check returns the parsed value or raises
# ValueError saying what the field must be.
_RULES = {
    'target_portal': (True, _portal),
    'target_iqn': (True, _matches(_IQN, 'an iqn., eui. or naa. name')),
    'target_lun': (True, _lun),
}
_CHAP_RULES = {
    'auth_username': _matches(_CHAP_USER, '1-255 letters, digits or ._@:-'),
    'auth_password': _matches(_CHAP_SECRET,
                              '1-255 printable characters without quotes, '
                              'backslash or white space'),
}


def parse(connection_info):
    """Return the ``Target`` of ``connection_info`` or raise.

    :raises: InvalidConnectionInfo naming the first bad field
    """
    if not isinstance(connection_info, dict) or not isinstance(
            connection_info.get('data'), dict):
        raise InvalidConnectionInfo(reason='no "data" mapping')
    data = connection_info['data']
    values = {}
    for field, (required, check) in _RULES.items():
        if data.get(field) is None:
            if required:
                raise InvalidConnectionInfo(reason=f'{field} is missing')
            continue
        try:
            values[field] = check(data[field])
        except ValueError as e:
            raise InvalidConnectionInfo(
                reason=f'{field} {e}: {data[field]!r:.80}') from None
    serial = connection_info.get('serial') or data.get('volume_id')
    try:
        serial = _matches(_SERIAL, 'a volume id')(serial)
    except ValueError:
        raise InvalidConnectionInfo(
            reason=f'serial/volume_id must be a volume id: {serial!r:.80}'
        ) from None
    host, port = values['target_portal']
    return Target(host=host, port=port, iqn=values['target_iqn'],
                  lun=values['target_lun'], serial=serial,
                  chap=_chap(data))


def _chap(data):
    method = data.get('auth_method')
    if method in (None, '', 'None'):
        return None
    if method not in AUTH_METHODS:
        raise InvalidConnectionInfo(
            reason=f'unknown auth_method {method!r:.40} (supported: '
                   f'{", ".join(AUTH_METHODS)})')
    values = {}
    for field, check in _CHAP_RULES.items():
        if data.get(field) is None:
            raise InvalidConnectionInfo(
                reason=f'auth_method CHAP needs {field}')
        try:
            values[field] = check(data[field])
        except ValueError as e:
            shown = '<hidden>' if field == 'auth_password' else \
                repr(data[field])[:80]
            raise InvalidConnectionInfo(
                reason=f'{field} {e}: {shown}') from None
    return Chap(values['auth_username'], values['auth_password'])
