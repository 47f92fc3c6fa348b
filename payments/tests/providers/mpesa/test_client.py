"""Daraja's client: the provider as the registry builds it, the helpers every request needs (phone format,
STK password, Nairobi timestamp, account reference) and the OAuth token. HTTP only, no database."""

import base64

import pytest
import responses

from payments.callback_urls import callback_url
from payments.providers.base import CallbackRole, ProviderError
from payments.providers.mpesa.client import normalize_phone, stk_password
from payments.providers.mpesa.provider import MpesaProvider
from payments.providers.mpesa.stk import account_reference
from payments.providers.registry import PROVIDER_CLASSES, get_provider
from payments.tests.mpesa_fakes import PASSKEY, TOKEN_URL, fixture
from payments.tests.providers.mpesa.support import KWARGS, token_ok

# --- registry, settings, helpers -----------------------------------------------------------------------


def test_registered_and_configured_from_settings():
    assert PROVIDER_CLASSES["mpesa"] is MpesaProvider
    assert isinstance(get_provider("mpesa"), MpesaProvider)


def test_the_stk_callback_url_carries_the_token_under_stkpush(settings):
    from payments.providers.azampay.provider import AzamPayProvider

    settings.SITE_URL = "https://donate.example.org"
    assert (
        callback_url(MpesaProvider, CallbackRole.PAYMENT, "abc")
        == "https://donate.example.org/webhooks/mpesa/stkpush/abc/"
    )
    assert callback_url(AzamPayProvider, CallbackRole.PAYMENT, "abc") == ""  # AzamPay's URL is a dashboard setting


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0712345678", "254712345678"),
        ("0112345678", "254112345678"),
        ("+254 712 345 678", "254712345678"),
        ("254712345678", "254712345678"),
        ("712345678", "254712345678"),
    ],
)
def test_phone_normalised_to_2547_or_2541(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["255712345678", "0212345678", "12345", "", "2547123456789"])
def test_non_kenyan_mobile_numbers_refused(raw):
    with pytest.raises(ProviderError):
        normalize_phone(raw)


def test_password_is_base64_of_shortcode_passkey_timestamp():
    # The official sample (docs/providers/mpesa.md) decodes to 174379 + the sandbox passkey + 20210628092408.
    official = (
        "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZi"
        "NzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4"
    )
    assert stk_password("174379", PASSKEY, "20210628092408") == official


def test_timestamp_is_nairobi_time():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    stamp = MpesaProvider(**KWARGS).client.timestamp()
    assert len(stamp) == 14 and stamp.isdigit()
    now = datetime.now(ZoneInfo("Africa/Nairobi")).strftime("%Y%m%d%H")
    assert stamp[:10] == now or abs(int(stamp[:10]) - int(now)) <= 1


def test_account_reference_fits_twelve_characters():
    assert account_reference("RHCI-DN-123-20251219120000") == "DN123"
    assert account_reference("RHCI-DN-123-20251219120000-2") == "DN123-2"
    assert len(account_reference("SOMETHING-VERY-LONG-AND-ODD-###")) <= 12


# --- token ----------------------------------------------------------------------------------------------


@responses.activate
def test_token_uses_basic_auth_and_is_cached(provider):
    token_ok()
    assert provider.access_token() == "c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert provider.access_token() == "c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert len(responses.calls) == 1
    expected = base64.b64encode(b"test-consumer-key:test-consumer-secret").decode()
    assert responses.calls[0].request.headers["Authorization"] == f"Basic {expected}"


@responses.activate
def test_token_with_numeric_expiry(provider):
    responses.get(TOKEN_URL, json=fixture("token_success_numeric_expiry.json"))
    assert provider.access_token()


@responses.activate
def test_token_refused_is_a_provider_error(provider):
    responses.get(TOKEN_URL, json=fixture("token_invalid_authentication.json"), status=400)
    with pytest.raises(ProviderError, match="credentials"):
        provider.access_token()
