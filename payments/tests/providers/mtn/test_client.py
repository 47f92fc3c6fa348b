"""MTN MoMo's client: one token per product (Basic API user:key, the product's subscription key, no body),
cached until ten minutes before it expires, dropped on a 401; and the helpers every request needs (the
MSISDN, the X-Reference-Id, payerMessage/payeeNote). HTTP only, no database; the far side is `responses`."""

import pytest
import responses

from payments.providers.base import ProviderError
from payments.providers.mtn.client import normalize_msisdn, reference_id, safe_text, token_ttl
from payments.providers.mtn.provider import MtnProvider
from payments.tests.providers.mtn.support import (
    API_KEY,
    API_USER,
    COLLECTION_KEY,
    COLLECTION_TOKEN_URL,
    DISBURSEMENT_KEY,
    DISBURSEMENT_TOKEN_URL,
    KWARGS,
    RTP_URL,
    TOKEN,
    X_REFERENCE_ID,
    basic,
    fixture,
    token_ok,
)

STATUS_URL = f"{RTP_URL}/{X_REFERENCE_ID}"

# --- tokens ---------------------------------------------------------------------------------------------


@responses.activate
def test_token_uses_basic_auth_the_product_key_and_no_body_and_is_cached(provider):
    token_ok()
    assert provider.access_token() == TOKEN
    assert provider.access_token() == TOKEN
    assert len(responses.calls) == 1
    request = responses.calls[0].request
    assert request.method == "POST" and request.url == COLLECTION_TOKEN_URL  # the trailing slash as MTN writes it
    assert request.headers["Authorization"] == basic()
    assert request.headers["Ocp-Apim-Subscription-Key"] == COLLECTION_KEY
    assert not request.body  # a body → 400


def test_token_is_kept_ten_minutes_less_than_it_lives():
    assert token_ttl(3600) == 3000
    assert token_ttl("3600") == 3000
    assert token_ttl(None) == 3000  # MTN's one hour when the answer does not say
    assert token_ttl(300) == 150  # a short-lived token is still cached, for half its life


@responses.activate
def test_each_product_has_its_own_token_key_and_credentials():
    provider = MtnProvider(**KWARGS, disbursement_api_user="disb-user", disbursement_api_key="disb-key")
    token_ok(COLLECTION_TOKEN_URL, "collection-token")
    token_ok(DISBURSEMENT_TOKEN_URL, "disbursement-token")
    assert provider.access_token("collection") == "collection-token"
    assert provider.access_token("disbursement") == "disbursement-token"
    disbursement = responses.calls[1].request
    assert disbursement.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_KEY
    assert disbursement.headers["Authorization"] == basic("disb-user", "disb-key")


@responses.activate
def test_disbursement_uses_the_collection_api_user_by_default(provider):
    token_ok(DISBURSEMENT_TOKEN_URL)
    provider.access_token("disbursement")
    assert responses.calls[0].request.headers["Authorization"] == basic(API_USER, API_KEY)


@responses.activate
def test_bad_api_user_or_key_is_a_500_login_failed_and_a_provider_error(provider):
    responses.post(COLLECTION_TOKEN_URL, status=500, json=fixture("token_login_failed_500.json"))
    with pytest.raises(ProviderError, match="refused our collection credentials") as caught:
        provider.access_token()
    assert caught.value.status_code == 500
    assert not caught.value.retryable  # wrong credentials do not heal by themselves
    assert not caught.value.ambiguous


@responses.activate
def test_bad_subscription_key_on_the_token_is_a_provider_error(provider):
    responses.post(COLLECTION_TOKEN_URL, status=401, json=fixture("error_invalid_subscription_key_401.json"))
    with pytest.raises(ProviderError) as caught:
        provider.access_token()
    assert caught.value.status_code == 401


@responses.activate
def test_a_401_drops_the_cached_token_and_asks_once_more_with_a_fresh_one(provider):
    token_ok(token="stale")
    assert provider.access_token() == "stale"
    responses.replace(responses.POST, COLLECTION_TOKEN_URL, json={**fixture("token_success.json")})
    responses.get(STATUS_URL, status=401, json={"statusCode": 401, "message": "Unauthorized"})
    responses.get(STATUS_URL, json=fixture("status_successful.json"))
    result = provider.fetch_status(_ref())
    assert result.status == "succeeded"
    gets = [c.request for c in responses.calls if c.request.method == "GET"]
    assert [g.headers["Authorization"] for g in gets] == ["Bearer stale", f"Bearer {TOKEN}"]
    assert provider.access_token() == TOKEN  # the fresh one is cached now


@responses.activate
def test_two_401s_leave_no_token_cached_and_fail(provider):
    token_ok()
    responses.get(STATUS_URL, status=401, json={"statusCode": 401, "message": "Unauthorized"})
    with pytest.raises(ProviderError) as caught:
        provider.fetch_status(_ref())
    assert caught.value.status_code == 401
    token_calls = [c for c in responses.calls if c.request.url == COLLECTION_TOKEN_URL]
    assert len(token_calls) == 2
    provider.access_token()
    assert len([c for c in responses.calls if c.request.url == COLLECTION_TOKEN_URL]) == 3  # dropped again


# --- helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("46733123450", "46733123450"),
        ("+256 772 123 456", "256772123456"),
        ("256-772-123456", "256772123456"),
    ],
)
def test_msisdn_is_international_digits_without_plus(raw, expected):
    assert normalize_msisdn(raw) == expected


@pytest.mark.parametrize("raw", ["", "1234567", "1234567890123456", "abc"])
def test_msisdn_that_cannot_be_one_is_refused(raw):
    with pytest.raises(ProviderError):
        normalize_msisdn(raw)


def test_the_chosen_reference_id_is_kept_and_must_be_a_uuid():
    assert reference_id(X_REFERENCE_ID, "test") == X_REFERENCE_ID
    assert reference_id(X_REFERENCE_ID.upper(), "test") == X_REFERENCE_ID  # MTN's canonical lower case
    with pytest.raises(ProviderError, match="UUID"):
        reference_id("RHCI-DN-12", "test")
    fresh = reference_id("", "test")
    assert len(fresh) == 36 and fresh[14] == "4"  # a new UUID4 when none was stored


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Amani's gift", "Amanis gift"),
        ("Tom & Jerry", "Tom Jerry"),
        ("Amani\u2019s gift", "Amanis gift"),
        ("   ", "Donation"),
        ("", "Donation"),
        ("x" * 200, "x" * 160),
    ],
)
def test_texts_have_no_apostrophe_or_ampersand_and_fit_160(text, expected):
    assert safe_text(text, "Donation") == expected


def _ref():
    from payments.providers.base import PaymentRef

    return PaymentRef(reference="RHCI-DN-12-20261201101500", provider_reference=X_REFERENCE_ID)
