"""Fixtures of the in-guest tests: the real Linux guest image."""

import pytest

from realhost import guest


@pytest.fixture(scope='session')
def guest_image():
    """The guest image, built on first use (about 70 s), then cached."""
    return guest.GuestImage().ensure()
