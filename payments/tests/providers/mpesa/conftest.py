"""Fixtures of the M-Pesa adapter tests."""

import pytest

from payments.providers.mpesa.provider import MpesaProvider
from payments.tests.providers.mpesa.support import KWARGS


@pytest.fixture
def provider() -> MpesaProvider:
    """Built from test credentials (not from settings), its Nairobi clock stopped at 2026-01-01 12:00:00."""
    p = MpesaProvider(**KWARGS)
    p.client.timestamp = lambda: "20260101120000"
    return p
