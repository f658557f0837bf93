"""WSGI app factories of the cloud's services, for gunicorn
(``realhost.cloud.wsgi:<service>()``).

oslo.config parses ``sys.argv``: a worker importing an app would see
gunicorn's own arguments and exit, so they are dropped first; the config
file comes from NOVAEXT_CLOUD_CONFIG.
"""

import os
import sys


def _config():
    sys.argv = sys.argv[:1]
    return os.environ['NOVAEXT_CLOUD_CONFIG']


def keystone():
    os.environ['OS_KEYSTONE_CONFIG_FILES'] = _config()
    from keystone.wsgi import api
    return api.application


def placement():
    os.environ['OS_PLACEMENT_CONFIG_DIR'] = os.path.dirname(_config())
    from placement.wsgi import api
    return api.application


def glance():
    os.environ['OS_GLANCE_CONFIG_DIR'] = os.path.dirname(_config())
    from glance.wsgi import api
    return api.application


def nova_api():
    # Nova loads its paste pipeline from the first of its config files.
    paste = os.path.join(os.path.dirname(os.path.dirname(sys.executable)),
                         'etc', 'nova', 'api-paste.ini')
    os.environ['OS_NOVA_CONFIG_FILES'] = f'{paste};{_config()}'
    from nova.wsgi import osapi_compute
    return osapi_compute.application


def neutron():
    config = _config()
    os.environ['OS_NEUTRON_CONFIG_FILES'] = (
        f'{config};{os.path.join(os.path.dirname(config), "ml2_conf.ini")}')
    from neutron.wsgi import api
    from sqlalchemy import orm
    # The models' backrefs (Port.port_forwardings, which get_ports reads)
    # exist once the mappers are configured; the API alone never does it.
    orm.configure_mappers()
    return api.application


def cinder():
    config = _config()
    sys.argv += ['--config-file', config]
    from cinder.wsgi import api
    return api.application
