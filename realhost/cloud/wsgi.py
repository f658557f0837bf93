"""WSGI app factories of the cloud's services, for gunicorn
(``realhost.cloud.wsgi:<service>()``).

oslo.config parses ``sys.argv``: a worker importing an app would see
gunicorn's own arguments and exit, so they are dropped first; the config
file comes from NOVAEXT_CLOUD_CONFIG.
"""

import os
import sys
import time

# Beside the image service's config: KiB/s for image data (0 or absent:
# no limit). realhost.cloud.faults.limit_image_service writes it.
IMAGE_BWLIMIT_FILE = 'image-bwlimit-kib'
CHUNK = 64 * 1024


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
    return ImageDataThrottle(
        api.application,
        os.path.join(os.environ['OS_GLANCE_CONFIG_DIR'], IMAGE_BWLIMIT_FILE))


def _rate(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) * 1024
    except (FileNotFoundError, ValueError):
        return 0


class _Pace:
    """Sleeps so that the bytes counted stay within ``rate`` per second."""

    def __init__(self, rate):
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    def count(self, n):
        self.sent += n
        ahead = self.sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


class _SlowInput:
    """A request body read at a paced rate (an image upload)."""

    def __init__(self, stream, rate):
        self.stream = stream
        self.pace = _Pace(rate)

    def read(self, size=-1):
        data = self.stream.read(CHUNK if size is None or size < 0 or
                                size > CHUNK else size)
        self.pace.count(len(data))
        return data

    def readline(self, size=-1):
        data = self.stream.readline(size)
        self.pace.count(len(data))
        return data

    def __iter__(self):
        return iter(lambda: self.read(CHUNK), b'')


class ImageDataThrottle:
    """WSGI middleware: image data (``/v2/images/<id>/file``, both ways)
    at the KiB/s that the file at ``path`` holds when the request comes,
    so that a fault can land in a base's download or a snapshot's upload;
    every other request as it is. The stand-in for a slow link to the
    image service."""

    def __init__(self, app, path):
        self.app = app
        self.path = path

    def __call__(self, environ, start_response):
        rate = _rate(self.path)
        if rate <= 0 or not environ.get('PATH_INFO', '').endswith('/file'):
            return self.app(environ, start_response)
        if environ.get('REQUEST_METHOD') == 'PUT':
            environ['wsgi.input'] = _SlowInput(environ['wsgi.input'], rate)
            return self.app(environ, start_response)
        return self._paced(self.app(environ, start_response), rate)

    @staticmethod
    def _paced(body, rate):
        pace = _Pace(rate)
        try:
            for chunk in body:
                # Glance's chunks can be large: pace them in CHUNK pieces.
                for at in range(0, len(chunk), CHUNK):
                    piece = chunk[at:at + CHUNK]
                    yield piece
                    pace.count(len(piece))
        finally:
            close = getattr(body, 'close', None)
            if close is not None:
                close()


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
