"""The far side of AzamPay for tests: its hosts, its real payloads (fixtures/azampay) and a `responses` mock.

Loaded as a pytest plugin by the root conftest; a module opts in with `pytest.mark.usefixtures("azampay_settings")`.
"""

import json
from pathlib import Path

import pytest
import responses
from django.core.cache import cache

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "azampay"
AUTH = "https://authenticator-sandbox.azampay.co.tz"
API = "https://sandbox.azampay.co.tz"
TOKEN_URL = f"{AUTH}/AppRegistration/GenerateToken"
PASSWORD = "test-callback-password"  # settings_test's AZAMPAY_CALLBACK_PASSWORD


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def azampay_settings(settings):
    """AzamPay pointed at its public sandbox hosts (mocked), with the test callback password; no cached token."""
    cache.clear()  # provider tokens and rate-limit counters
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "azampay": {
            **settings.PAYMENT_PROVIDERS["azampay"],
            "auth_url": AUTH,
            "api_url": API,
            "callback_password": PASSWORD,
        },
    }
    yield settings
    cache.clear()


@pytest.fixture
def azam():
    """A `responses` mock of AzamPay that issues tokens; tests add the answers they need."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("token_success.json"))
        yield mock
