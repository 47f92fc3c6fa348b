"""The far side of M-Pesa (Daraja) for tests: its host, our test credentials and secrets, its real payloads
(fixtures/mpesa) and a `responses` mock.

Loaded as a pytest plugin by the root conftest; a module opts in with `pytest.mark.usefixtures("mpesa_settings")`
(add "daraja" too when nothing may reach the network unmocked).
"""

from functools import partial

import pytest
import responses
from django.core.cache import cache

from payments.tests.fixtures import load_fixture, provider_fixtures
from payments.tests.fixtures import raw_fixture as _raw_fixture

FIXTURES = provider_fixtures("mpesa")
API = "https://daraja.test"
TOKEN_URL = f"{API}/oauth/v1/generate"
STK_URL = f"{API}/mpesa/stkpush/v1/processrequest"
QUERY_URL = f"{API}/mpesa/stkpushquery/v1/query"
C2B_REGISTER_URL = f"{API}/mpesa/c2b/v2/registerurl"
B2C_URL = f"{API}/mpesa/b2c/v3/paymentrequest"
SITE_URL = "https://donate.example.org"
SHORTCODE = "174379"  # the STK shortcode (Safaricom's public sandbox one)
PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"  # the sandbox's published passkey
C2B_SHORTCODE = "600984"  # the paybill
B2C_SHORTCODE = "600992"
C2B_TOKEN = "c2b-secret-token"  # the secret in the registered paybill URLs (MPESA_C2B_TOKEN)
B2C_TOKEN = "b2c-secret-token"  # the secret in the payout result/timeout URLs (MPESA_B2C_TOKEN)
INITIATOR = "testapi"
SECURITY_CREDENTIAL = "encrypted-credential"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}  # our answer to every callback but a paybill validation
ACCEPT = {"ResultCode": "0", "ResultDesc": "Accepted"}  # a paybill validation accepted

fixture = partial(load_fixture, "mpesa")  # fixture("query_success.json") → a fresh dict
raw_fixture = partial(_raw_fixture, "mpesa")  # the bytes as Daraja sent them


SETTINGS = {  # M-Pesa's settings over the test defaults
    "consumer_key": "k",
    "consumer_secret": "s",
    "shortcode": SHORTCODE,
    "passkey": "p",
    "api_url": API,
    "trust_callbacks": False,
    "allowed_ips": [],
    "ip_allowlist_strict": False,
    "c2b_shortcode": C2B_SHORTCODE,
    "c2b_token": C2B_TOKEN,
    "b2c_shortcode": B2C_SHORTCODE,
    "b2c_token": B2C_TOKEN,
    "initiator_name": INITIATOR,
    "security_credential": SECURITY_CREDENTIAL,
}


def configure(settings) -> None:
    """M-Pesa pointed at https://daraja.test (mocked) with test credentials, both callback secrets and the
    B2C initiator; callbacks are not trusted on their word, no IP allowlist."""
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mpesa": {**settings.PAYMENT_PROVIDERS["mpesa"], **SETTINGS},
    }
    settings.SITE_URL = SITE_URL


@pytest.fixture
def mpesa_settings(settings):
    """`configure`d, with no cached token."""
    cache.clear()  # provider tokens and rate-limit counters
    configure(settings)
    yield settings
    cache.clear()


@pytest.fixture
def daraja():
    """A `responses` mock of Daraja that issues tokens; tests add the answers they need. Patched process-wide
    (every thread sees it); a request to anything not added fails loudly with a ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TOKEN_URL, json=fixture("token_success.json"))
        yield mock
