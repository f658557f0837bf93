"""novaext.snapshot.upload: the metadata, the base's label, the
progress reader."""

import io
from unittest import mock

import pytest
from nova import exception

from novaext import progress as novaext_progress
from novaext.nova_internals import NovaInternals
from novaext.snapshot import base as snapshot_base
from novaext.snapshot import upload as snapshot_upload

SHA1 = 'a' * 40

def _metadata_driver():
    driver = mock.Mock()
    driver._create_snapshot_metadata.side_effect = (
        lambda meta, inst, fmt, name: {
            'name': name, 'disk_format': fmt, 'container_format': 'bare',
            'properties': {'kernel_id': None, 'ramdisk_id': None}})
    return driver


def test_full_snapshot_drops_inherited_delta_properties():
    snapshot = {'name': 's', 'properties': {
        'base_image_id_sha1': SHA1, 'image_id_sha1': SHA1,
        'hw_qemu_guest_agent': 'yes'}}
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(), snapshot, 'raw')
    assert kept == {'hw_qemu_guest_agent': 'yes'}
    assert metadata['disk_format'] == 'raw'
    assert metadata['properties'] == {
        'hw_qemu_guest_agent': 'yes', 'kernel_id': None, 'ramdisk_id': None}


def test_inherited_labels_are_dropped_in_an_update_before_the_upload(
        tmp_path):
    """A delta of a server booted from a labelled base inherits
    image_id_sha1=X and gets base_image_id_sha1=X: the removal goes in an
    update of its own (in one, glanceclient sends a JSON-patch "move",
    which Glance refuses)."""
    base = snapshot_base.DeltaBase(path='/b/' + SHA1, sha1=SHA1,
                                   image_id='base-id', image={})
    snapshot = {'name': 's', 'properties': {'image_id_sha1': SHA1,
                                            'os_distro': 'debian'}}
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(), snapshot, 'qcow2',
        base)
    path = tmp_path / 'delta'
    path.write_bytes(b'x' * 10)
    api = mock.Mock()
    snapshot_upload.upload(api, 'ctx', 'snap', metadata, str(path),
                           mock.Mock(), kept=kept)
    first, second = api.update.call_args_list
    assert first == mock.call('ctx', 'snap',
                              {'properties': {'os_distro': 'debian'}},
                              purge_props=True)
    assert second.kwargs == {'purge_props': False}
    assert isinstance(second.args[3], snapshot_upload.ProgressReader)
    assert second.args[2]['properties']['base_image_id_sha1'] == SHA1
    assert 'image_id_sha1' not in second.args[2]['properties']


def test_delta_snapshot_names_its_base_and_merges_properties():
    base = snapshot_base.DeltaBase(path='/b/' + SHA1, sha1=SHA1,
                                   image_id='base-id', image={})
    metadata, kept = snapshot_upload.snapshot_metadata(
        NovaInternals(_metadata_driver()), mock.Mock(),
        {'name': 's', 'properties': {}}, 'qcow2', base)
    assert kept is None
    assert metadata['disk_format'] == 'qcow2'
    assert metadata['properties']['base_image_id_sha1'] == SHA1


def test_base_is_labelled_once():
    api = mock.Mock()
    base = snapshot_base.DeltaBase(path='p', sha1=SHA1, image_id='b',
                                   image={'properties': {}})
    snapshot_upload.label_base(api, 'ctx', base, mock.Mock())
    api.update.assert_called_once_with(
        'ctx', 'b', {'properties': {'image_id_sha1': SHA1}},
        purge_props=False)
    api.reset_mock()
    labelled = snapshot_base.DeltaBase(
        path='p', sha1=SHA1, image_id='b',
        image={'properties': {'image_id_sha1': SHA1}})
    snapshot_upload.label_base(api, 'ctx', labelled, mock.Mock())
    api.update.assert_not_called()


def test_progress_reader_counts_every_byte():
    phase = novaext_progress.Progress(
        None, mock.Mock(uuid='u'), 'snapshot', {'image_id': 'img'},
        interval=1.0, clock=lambda: 0.0).phase('upload')
    reader = snapshot_upload.ProgressReader(io.BytesIO(b'x' * 200000),
                                            200000, phase)
    assert sum(len(c) for c in reader) == 200000
    assert reader.bytes_read == 200000
    reports = [payload for event, payload in phase.operation.events
               if event == 'progress']
    assert reports[-1]['bytes_done'] == 200000
    assert reports[-1]['percent'] == 100.0


def test_base_that_may_not_be_labelled_turns_the_snapshot_full():
    api = mock.Mock()
    api.update.side_effect = exception.ImageNotAuthorized(image_id='b')
    base = snapshot_base.DeltaBase(path='p', sha1=SHA1, image_id='b',
                                   image={'properties': {}})
    assert not snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())
    api.update.side_effect = None
    assert snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())
    api.update.side_effect = exception.ImageNotFound(image_id='b')
    with pytest.raises(exception.ImageNotFound):
        snapshot_upload.try_label_base(api, 'ctx', base, mock.Mock())
