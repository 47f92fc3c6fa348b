"""Fixtures of the AzamPay adapter tests: AzamPay's far side starts without a token here (the plugin's `azam`
issues one); `with_token` adds it."""

import pytest
import responses

from payments.tests.azampay_fakes import TOKEN_URL
from payments.tests.providers.azampay.support import token_payload


@pytest.fixture
def azam():
    """Overrides azampay_fakes' `azam`: no token endpoint until a test (or `with_token`) adds one."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def with_token(azam):
    return azam.post(TOKEN_URL, json=token_payload())
