"""Airtel's far side, as `responses`: no endpoint until a test (or `with_token`) adds one."""

import pytest
import responses

from payments.tests.providers.airtel.support import TOKEN_URL, fixture


@pytest.fixture
def airtel():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def with_token(airtel):
    return airtel.post(TOKEN_URL, json=fixture("token_success.json"))
