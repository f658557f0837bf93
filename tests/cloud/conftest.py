"""Cloud tier: real Nova services as processes, driven through the API.

Needs the cloud of ``scripts/cloud up`` (scripts/test brings it up before
this tier). Where it is not running the tests skip with the reason; with
NOVAEXT_REQUIRE_CLOUD=1 (set by scripts/test, hence in CI) that is a
failure instead. A failing test gets the cloud's log lines written while
it ran (errors, warnings and lines naming its servers) in its report.
"""

import os
import subprocess
import time

import openstack
import pytest

from realhost.cloud import access
from tests.cloud.checks import FLAVORS
from tests.cloud.checks import IMAGE_DATA
from tests.cloud.checks import IMAGE_NAME
from tests.cloud.checks import IMAGE_PATTERN
from tests.cloud.checks import IMAGE_SIZE


@pytest.fixture(scope='session')
def cloud():
    try:
        return access.Cloud()
    except access.NotUp as e:
        if os.environ.get('NOVAEXT_REQUIRE_CLOUD') == '1':
            pytest.exit(f'cloud tier required but cannot run: {e}',
                        returncode=3)
        pytest.skip(f'CLOUD TIER SKIPPED: {e}')


@pytest.fixture(scope='session')
def notifications(cloud):
    listener = access.Notifications(cloud.transport_url).start()
    yield listener
    listener.stop()


@pytest.fixture(scope='session')
def flavors(cloud):
    found = {f.name: f for f in cloud.api.compute.flavors()}
    for name, disk in FLAVORS.items():
        if name not in found:
            found[name] = cloud.api.compute.create_flavor(
                name=name, ram=128, vcpus=1, disk=disk)
    return found


@pytest.fixture(scope='session')
def image_file(tmp_path_factory):
    """A 64 MiB qcow2 whose first 32 MiB hold IMAGE_PATTERN (no OS: the
    tests read and write disks through QEMU, not a guest)."""
    path = str(tmp_path_factory.mktemp('image') / 'image.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path,
                    str(IMAGE_SIZE)], check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                    f'write -P {IMAGE_PATTERN} 0 {IMAGE_DATA}', path],
                   check=True, capture_output=True)
    return path


def _uploaded(cloud, path, name, **properties):
    for old in cloud.api.image.images(name=name):
        cloud.api.image.delete_image(old)
    created = cloud.api.image.create_image(
        name=name, filename=path, disk_format='qcow2',
        container_format='bare', wait=True, **properties)
    return cloud.api.image.get_image(created.id)


@pytest.fixture(scope='session')
def image(cloud, image_file):
    uploaded = _uploaded(cloud, image_file, IMAGE_NAME)
    yield uploaded
    cloud.api.image.delete_image(uploaded.id, ignore_missing=True)


@pytest.fixture(scope='session')
def scsi_image(cloud, image_file):
    """The same disk with its servers' disks on virtio-scsi: a guest with
    no OS never consents to a virtio-blk hot-unplug (a volume detach),
    while a SCSI disk is removed by QEMU alone."""
    uploaded = _uploaded(cloud, image_file, IMAGE_NAME + '-scsi',
                         hw_disk_bus='scsi', hw_scsi_model='virtio-scsi')
    yield uploaded
    cloud.api.image.delete_image(uploaded.id, ignore_missing=True)


class Servers:
    """Creates servers for one test and deletes them (and waits until
    they are gone) after it; snapshot images too."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.ids = []
        self.image_ids = []

    def boot(self, image_id, flavor, host, name='novaext-cloud-tier'):
        """A server from ``image_id`` on ``host``, ACTIVE."""
        server = self.cloud.api.compute.create_server(
            name=name, image_id=image_id, flavor_id=flavor.id,
            networks='none', availability_zone=f'nova:{host}')
        self.ids.append(server.id)
        return self.wait(server, 'ACTIVE')

    def wait(self, server, status, timeout=300):
        api = self.cloud.api.compute
        try:
            api.wait_for_server(server, status=status, failures=['ERROR'],
                                interval=1, wait=timeout)
        except Exception as e:
            current = api.get_server(server.id)
            raise AssertionError(
                f'server {server.id} did not reach {status}: {e}; '
                f'status {current.status}, fault {current.fault}') from e
        return api.get_server(server.id)

    def wait_for(self, server, done, what, timeout=300):
        """Poll the server until ``done(server)``; fail on ERROR."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.cloud.api.compute.get_server(server.id)
            if done(current):
                return current
            if current.status == 'ERROR' or time.monotonic() > deadline:
                raise AssertionError(
                    f'server {server.id} not {what}: status '
                    f'{current.status}, task {current.task_state}, host '
                    f'{current.compute_host}, fault {current.fault}')
            time.sleep(1)

    def snapshot(self, server, name, timeout=300, **properties):
        """``openstack server image create --property k=v ...``: the new
        image once active; fails as soon as the snapshot has failed
        (image killed or gone, or the server's task ended without it)."""
        image = self.cloud.api.compute.create_server_image(
            server, name, metadata=properties)
        self.image_ids.append(image.id)
        deadline = time.monotonic() + timeout
        task_over_since = None
        while True:
            try:
                image = self.cloud.api.image.get_image(image.id)
            except openstack.exceptions.NotFoundException:
                raise AssertionError(f'snapshot {image.id} was deleted: '
                                     'the snapshot failed') from None
            if image.status == 'active':
                return image
            if image.status in ('killed', 'deleted'):
                raise AssertionError(f'snapshot {image.id} {image.status}')
            if self.cloud.api.compute.get_server(server.id).task_state:
                task_over_since = None
            elif task_over_since is None:
                task_over_since = time.monotonic()
            elif time.monotonic() - task_over_since > 10:
                raise AssertionError(
                    f'the snapshot task of {server.id} ended, image '
                    f'{image.id} is {image.status}: the upload failed')
            if time.monotonic() > deadline:
                raise AssertionError(f'snapshot {image.id} still '
                                     f'{image.status} after {timeout} s')
            time.sleep(1)

    def cleanup(self):
        api = self.cloud.api.compute
        for server_id in self.ids:
            api.delete_server(server_id, ignore_missing=True)
        for server_id in self.ids:
            try:
                server = api.get_server(server_id)
            except openstack.exceptions.NotFoundException:
                continue
            api.wait_for_delete(server, interval=1, wait=120)
        for image_id in self.image_ids:
            self.cloud.api.image.delete_image(image_id, ignore_missing=True)


@pytest.fixture
def servers(cloud, request):
    made = Servers(cloud)
    request.node.cloud_servers = made
    yield made
    made.cleanup()


# -- the cloud's logs in a failing test's report --------------------------

def _log_sizes(cloud):
    return {path: os.path.getsize(path) for path in cloud.logs()}


@pytest.fixture(autouse=True)
def _cloud_log_marks(request):
    if 'cloud' not in request.fixturenames:
        yield
        return
    cloud = request.getfixturevalue('cloud')
    request.node.cloud_log_marks = (cloud, _log_sizes(cloud))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marks = getattr(item, 'cloud_log_marks', None)
    if not report.failed or marks is None:
        return
    cloud, sizes = marks
    servers = getattr(item, 'cloud_servers', None)
    ids = servers.ids if servers is not None else []
    for path in cloud.logs():
        with open(path, errors='replace') as f:
            f.seek(sizes.get(path, 0))
            lines = [line for line in f if
                     any(w in line for w in ('ERROR', 'WARNING',
                                             'Traceback', *ids))]
        if lines:
            report.sections.append(
                (f'cloud log {path} (while the test ran)',
                 ''.join(lines[-80:])))
