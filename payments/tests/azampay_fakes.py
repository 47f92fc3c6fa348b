"""The far side of AzamPay for tests: its hosts, its real payloads (fixtures/azampay) and a `responses` mock.

Loaded as a pytest plugin by the root conftest; a module opts in with `pytest.mark.usefixtures("azampay_settings")`.
"""

import json
from functools import partial
from typing import TYPE_CHECKING

import pytest
import responses
from django.core.cache import cache

from payments.tests.fixtures import load_fixture, provider_fixtures
from payments.tests.fixtures import raw_fixture as _raw_fixture

if TYPE_CHECKING:
    from payments.models import Payment

FIXTURES = provider_fixtures("azampay")
AUTH = "https://authenticator-sandbox.azampay.co.tz"
API = "https://sandbox.azampay.co.tz"
TOKEN_URL = f"{AUTH}/AppRegistration/GenerateToken"
MNO_URL = f"{API}/azampay/mno/checkout"
BANK_URL = f"{API}/azampay/bank/checkout"
POST_CHECKOUT_URL = f"{API}/api/v1/Partner/PostCheckout"
STATUS_URL = f"{API}/azampay/gettransactionstatus"
CALLBACK_URL = "/api/v1.0/donors/payment/azampay/callback/"  # the one URL set on AzamPay's dashboard
PASSWORD = "test-callback-password"  # settings_test's AZAMPAY_CALLBACK_PASSWORD
ACK = {"success": True, "message": "Callback received"}

fixture = partial(load_fixture, "azampay")  # fixture("token_success.json") → a fresh dict
raw_fixture = partial(_raw_fixture, "azampay")  # the bytes as AzamPay sent them


def callback_body(payment: "Payment", *, status: str = "success", password: str | None = PASSWORD, **fields) -> bytes:
    """The real sandbox callback (docs/providers/azampay.md), pointed at one of our payments."""
    data = fixture("callback_real_sandbox.json")
    data.update(
        transactionstatus=status,
        message="success" if status == "success" else "Insufficient balance",
        utilityref=payment.reference,
        reference=payment.provider_reference,
        externalreference=payment.provider_reference,
        transid=payment.provider_reference,
        amount=f"{payment.amount:.0f}",
    )
    if password is not None:
        data["password"] = password
    data.update(fields)
    return json.dumps(data).encode()


SETTINGS = {"auth_url": AUTH, "api_url": API, "callback_password": PASSWORD}  # over the test defaults


def configure(settings) -> None:
    """AzamPay pointed at its public sandbox hosts (mocked), with the test callback password."""
    providers = settings.PAYMENT_PROVIDERS
    settings.PAYMENT_PROVIDERS = {**providers, "azampay": {**providers["azampay"], **SETTINGS}}


@pytest.fixture
def azampay_settings(settings):
    """`configure`d, with no cached token."""
    cache.clear()  # provider tokens and rate-limit counters
    configure(settings)
    yield settings
    cache.clear()


@pytest.fixture
def no_callback_password(azampay_settings):
    """`azampay_settings` without the callback password: a callback is only a reason to ask (the status query
    decides)."""
    providers = azampay_settings.PAYMENT_PROVIDERS
    azampay_settings.PAYMENT_PROVIDERS = {**providers, "azampay": {**providers["azampay"], "callback_password": ""}}
    return azampay_settings


@pytest.fixture
def azam():
    """A `responses` mock of AzamPay that issues tokens; tests add the answers they need."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("token_success.json"))
        yield mock


@pytest.fixture
def azam_says_paid(azam):
    """`azam`, whose status query answers that the payment succeeded (fixtures/azampay/status_success.json)."""
    azam.get(STATUS_URL, json=fixture("status_success.json"))
    return azam
