"""novaext.snapshot.quiesce: freezing the guest only when it can be,
failing only when it must be."""

from unittest import mock

import pytest
from nova import exception

from novaext.nova_internals import NovaInternals
from novaext.snapshot import quiesce as snapshot_quiesce


def _driver(can_quiesce=True, required=False, freeze_error=None):
    driver = mock.Mock()
    driver._requires_quiesce.return_value = required
    if not can_quiesce:
        driver._can_quiesce.side_effect = exception.QemuGuestAgentNotEnabled
    if freeze_error:
        driver.quiesce.side_effect = freeze_error
    return driver


def test_quiesce_required_but_impossible_fails_before_anything():
    driver = _driver(can_quiesce=False, required=True)
    with pytest.raises(exception.QemuGuestAgentNotEnabled):
        snapshot_quiesce.Quiescer(NovaInternals(driver), None, None,
                                  None).check()


def test_quiesce_impossible_not_required_goes_on_unfrozen():
    driver = _driver(can_quiesce=False)
    with snapshot_quiesce.Quiescer(NovaInternals(driver), None, None,
                                   None).check():
        pass
    driver.quiesce.assert_not_called()
    driver.unquiesce.assert_not_called()


def test_quiesce_freezes_around_the_block_and_thaws_after_failure():
    driver = _driver()
    with pytest.raises(RuntimeError):
        with snapshot_quiesce.Quiescer(NovaInternals(driver), 'ctx', 'inst',
                                       'meta').check():
            driver.quiesce.assert_called_once_with('ctx', 'inst', 'meta')
            driver.unquiesce.assert_not_called()
            raise RuntimeError('abort failed')
    driver.unquiesce.assert_called_once_with('ctx', 'inst', 'meta')


def test_failed_freeze_is_fatal_only_when_required():
    error = exception.InstanceQuiesceFailed(reason='agent gone')
    with snapshot_quiesce.Quiescer(NovaInternals(_driver(freeze_error=error)),
                                   None, None, None).check():
        pass
    q = snapshot_quiesce.Quiescer(
        NovaInternals(_driver(required=True, freeze_error=error)),
        None, None, None)
    with pytest.raises(exception.InstanceQuiesceFailed):
        with q.check():
            pass
