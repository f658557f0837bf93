"""The snapshot decision tables: every case present, the main ones right."""

import itertools

import pytest
from nova.compute import power_state

from novaext.snapshot import plan as plan
from novaext.snapshot.plan import GuestState
from novaext.snapshot.plan import Method
from novaext.snapshot.plan import Upload


def test_every_state_and_capability_has_a_method():
    for state, live in itertools.product(GuestState, (False, True)):
        assert isinstance(plan.method_for(state, live), Method)


def test_running_or_paused_guest_is_copied_live_when_possible():
    assert plan.method_for(GuestState.RUNNING, True) is Method.LIVE
    assert plan.method_for(GuestState.PAUSED, True) is Method.LIVE


def test_running_or_paused_guest_is_saved_when_live_impossible():
    assert plan.method_for(GuestState.RUNNING, False) is Method.COLD_SAVED
    assert plan.method_for(GuestState.PAUSED, False) is Method.COLD_SAVED


def test_stopped_guest_is_never_saved_nor_copied_live():
    for live in (False, True):
        assert plan.method_for(GuestState.STOPPED, live) is \
            Method.COLD_STOPPED


def test_power_states_map_to_three_guest_states():
    assert GuestState.from_power_state(power_state.RUNNING) is \
        GuestState.RUNNING
    assert GuestState.from_power_state(power_state.PAUSED) is \
        GuestState.PAUSED
    for other in (power_state.SHUTDOWN, power_state.CRASHED,
                  power_state.SUSPENDED, power_state.NOSTATE):
        assert GuestState.from_power_state(other) is GuestState.STOPPED


def test_delta_only_when_asked_and_base_known():
    assert plan.upload_for('delta', True) is Upload.DELTA
    assert plan.upload_for('delta', False) is Upload.FULL
    assert plan.upload_for('full', True) is Upload.FULL
    assert plan.upload_for('full', False) is Upload.FULL


def test_live_needs_file_disk_on_kvm_or_qemu_not_disabled_not_encrypted():
    assert plan.live_possible('qcow2', 'qemu', False, False)
    assert plan.live_possible('qcow2', 'kvm', False, False)
    assert plan.live_possible('raw', 'qemu', False, False)
    assert not plan.live_possible('rbd', 'qemu', False, False)
    assert not plan.live_possible('lvm', 'kvm', False, False)
    assert not plan.live_possible('qcow2', 'lxc', False, False)
    assert not plan.live_possible('qcow2', 'kvm', True, False)
    assert not plan.live_possible('qcow2', 'kvm', False, True)


def test_requested_mode_request_first_then_image_then_default():
    prop = plan.MODE_PROPERTY
    assert plan.requested_mode('full', {prop: 'delta'}, {}) == 'delta'
    assert plan.requested_mode('full', {}, {prop: 'delta'}) == 'delta'
    assert plan.requested_mode('delta', {prop: 'full'},
                               {prop: 'delta'}) == 'full'
    assert plan.requested_mode('full', None, None) == 'full'
    # unknown values are ignored, never used as a mode
    assert plan.requested_mode('full', {prop: '../x'}, {}) == 'full'


@pytest.mark.parametrize('method, upload, expected', [
    (plan.Method.LIVE, plan.Upload.DELTA, 2 * 100),
    (plan.Method.LIVE, plan.Upload.FULL, 100 + 700),
    (plan.Method.COLD_SAVED, plan.Upload.DELTA, 100),
    (plan.Method.COLD_STOPPED, plan.Upload.FULL, 700),
])
def test_scratch_is_the_live_copy_plus_the_file_uploaded(method, upload,
                                                          expected):
    assert plan.scratch_bytes(method, upload, top_bytes=100,
                              chain_bytes=700) == expected
