"""Fixtures of the MTN MoMo adapter tests."""

import pytest

from payments.providers.mtn.provider import MtnProvider
from payments.tests.providers.mtn.support import KWARGS


@pytest.fixture
def provider() -> MtnProvider:
    """Built from test credentials (not from settings), pointed at https://momo.test (mocked)."""
    return MtnProvider(**KWARGS)
