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
