"""createImage through Nova's REST API on novaext's driver (fake libvirt).

The fake libvirt copies no data and never reports a block copy ready, so
these tests take the cold path (Nova's workaround option) and let the
extraction write a small file; what they prove is the wiring: the API's
createImage reaches ExtLibvirtDriver.snapshot through the compute
manager, the task states move as the manager expects, the image gets
Nova's snapshot metadata plus the requested mode, and a failure deletes
the image and leaves the server ACTIVE. Data movement is proven on the
real libvirtd (tests/real/snapshot/). What the snapshot did is read where
an operator reads it: the novaext.snapshot.* notifications.
"""

from unittest import mock

import fixtures
from nova.compute import task_states

from novaext.snapshot import extract as snapshot_extract
from novaext.virt import driver as ext_driver
from tests.functional import base


class SnapshotThroughApiTestCase(base.ExtServersTestBase):

    def setUp(self):
        super().setUp()
        self.flags(disable_libvirt_livesnapshot=True, group='workarounds')
        self.start_compute('compute1')
        self.server = self._create_server(networks='none')
        # The task states the driver sets, through the callback the
        # compute manager hands it.
        self.task_updates = []
        real_snapshot = ext_driver.ExtLibvirtDriver.snapshot

        def snapshot(driver, context, instance, image_id, update_task_state):
            def update(**kw):
                self.task_updates.append(kw)
                return update_task_state(**kw)
            return real_snapshot(driver, context, instance, image_id, update)

        self.useFixture(fixtures.MockPatchObject(
            ext_driver.ExtLibvirtDriver, 'snapshot', snapshot))
        # Nova's functional base hands every opened file out empty; the
        # snapshot's own file is real here.
        self.mock_file_open.side_effect = open
        # Nova's GlanceFixture drops uploaded data; keep it.
        self.uploaded = {}
        real_update = self.glance.update

        def update(context, image_id, metadata, data=None, **kwargs):
            if data is not None:
                self.uploaded[image_id] = data.read()
            return real_update(context, image_id, metadata, **kwargs)
        self.glance.update = update

    def _create_image(self, **metadata):
        body = {'createImage': {'name': 'snap', 'metadata': metadata}}
        return self.api.post_server_action(self.server['id'],
                                           body)['image_id']

    def test_create_image_runs_novaext_snapshot_with_nova_metadata(self):
        class MockedBackendDisk:
            """Nova's mocked image backend extracts nothing; this writes."""

            def __init__(self, root_disk):
                self.root_disk = root_disk

            def snapshot_extract(self, out, fmt):
                self.root_disk.snapshot_extract(out, fmt)
                with open(out, 'wb') as f:
                    f.write(b'disk bytes')

        real_extract = snapshot_extract.extract_backend_disk

        def extract(root_disk, out, fmt, progress):
            real_extract(MockedBackendDisk(root_disk), out, fmt, progress)

        with mock.patch.object(snapshot_extract, 'extract_backend_disk',
                               side_effect=extract) as fake_extract:
            image_id = self._create_image(novaext_snapshot_mode='full')
            image = self._wait_for_image_active(image_id)

        fake_extract.assert_called_once()
        self.assertEqual(['start', 'end'], [
            event for event, _ in self._snapshot_events()
            if event != 'progress'])
        end = self._snapshot_events()[-1][1]
        self.assertEqual(
            {'image_id': image_id, 'method': 'cold_saved', 'upload': 'full',
             'bytes_uploaded': len(b'disk bytes')},
            {k: end[k] for k in ('image_id', 'method', 'upload',
                                 'bytes_uploaded')})
        self.assertEqual(
            [{'task_state': task_states.IMAGE_PENDING_UPLOAD},
             {'task_state': task_states.IMAGE_UPLOADING,
              'expected_state': task_states.IMAGE_PENDING_UPLOAD}],
            self.task_updates)
        self.assertEqual({image_id: b'disk bytes'}, self.uploaded)
        self.assertEqual('snapshot', image['properties']['image_location'])
        self.assertEqual('snapshot', image['properties']['image_type'])
        # Nova's metadata: container format of the server's image
        source = self.glance.show(None, self.server['image']['id'])
        self.assertEqual(source['container_format'],
                         image['container_format'])
        self.assertIn(image['disk_format'], ('raw', 'qcow2'))
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        # Progress went out as oslo.messaging notifications too.
        progress = [payload for event, payload in self._snapshot_events()
                    if event == 'progress']
        self.assertEqual({'extract', 'upload'},
                         {p['phase'] for p in progress})
        self.assertTrue(all(p['image_id'] == image_id for p in progress))
        last_upload = [p for p in progress if p['phase'] == 'upload'][-1]
        self.assertEqual(len(b'disk bytes'), last_upload['bytes_done'])
        self.assertEqual(100.0, last_upload['percent'])

    def test_failed_extraction_deletes_image_and_server_stays_active(self):
        with mock.patch.object(snapshot_extract, 'extract_backend_disk',
                               side_effect=OSError('disk unreadable')):
            image_id = self._create_image()
            self._wait_for_image_gone(image_id)
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual(['start', 'error'], [
            event for event, _ in self._snapshot_events()
            if event != 'progress'])
        self.assertIn('disk unreadable', self._snapshot_events()[-1][1]
                      ['error'])

    def test_too_little_free_space_refuses_before_the_guest_is_touched(
            self):
        """The snapshots directory's file system has less free than the
        reserve plus what the snapshot would write: the snapshot fails
        before its task reaches IMAGE_PENDING_UPLOAD (the guest is never
        saved), the image is deleted and the server stays ACTIVE."""
        self.flags(snapshot_min_free_mib=1024, group='novaext')
        saved = []
        with mock.patch('novaext.space.free_bytes',
                        return_value=1000 * 1024 * 1024), \
                mock.patch.object(
                    ext_driver.nova_internals.NovaInternals,
                    'save_guest_for_cold_snapshot',
                    side_effect=lambda *a: saved.append(a)):
            image_id = self._create_image()
            self._wait_for_image_gone(image_id)
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertIsNone(server['OS-EXT-STS:task_state'])
        self.assertEqual([], saved)
        self.assertNotIn(task_states.IMAGE_PENDING_UPLOAD,
                         [u.get('task_state') for u in self.task_updates])
        error = self._snapshot_events()[-1][1]['error']
        self.assertIn('The snapshot needs 1024 MiB free', error)
        self.assertIn('which has 1000 MiB: free space there or lower '
                      '[novaext]snapshot_min_free_mib', error)

    # -- helpers ---------------------------------------------------------
    def _snapshot_events(self):
        """(event, payload) of the novaext.snapshot.* notifications."""
        prefix = 'novaext.snapshot.'
        return [(n.event_type[len(prefix):], n.payload)
                for n in self.notifier.notifications
                if n.event_type.startswith(prefix)]

    def _wait_for_image_active(self, image_id):
        for _ in range(100):
            image = self.glance.show(None, image_id)
            if image['status'] == 'active' and 'image_location' in \
                    image.get('properties', {}):
                return image
            self._sleep()
        self.fail(f'image {image_id} never became active')

    def _wait_for_image_gone(self, image_id):
        for _ in range(100):
            if image_id not in self.glance.images:
                return
            self._sleep()
        self.fail(f'image {image_id} was not deleted')

    @staticmethod
    def _sleep():
        import time
        time.sleep(0.1)

