"""AzamPay's client: the hosts it is configured with, its token (fetched once, cached, refreshed, refused).
HTTP only, no database; the far side is `responses`."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from payments.providers.base import ProviderError
from payments.providers.registry import get_provider
from payments.tests.azampay_fakes import API, AUTH, MNO_URL, PASSWORD, TOKEN_URL, fixture
from payments.tests.providers.azampay.support import KWARGS, calls_to, make_provider, mno_charge, token_payload

# --- settings -------------------------------------------------------------------------------------------


def test_the_configured_provider_talks_to_the_azampay_sandbox_hosts():
    provider = get_provider("azampay")
    assert provider.client.auth.base_url == AUTH
    assert provider.client.api.base_url == API
    assert provider.callback_auth.password == PASSWORD


# --- token ----------------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached_for_every_instance(azam):
    token = azam.post(TOKEN_URL, json=token_payload(token="cached-token"))
    assert make_provider().access_token() == "cached-token"
    assert make_provider().access_token() == "cached-token"
    assert token.call_count == 1
    assert json.loads(azam.calls[0].request.body) == {
        "appName": KWARGS["app_name"],
        "clientId": KWARGS["client_id"],
        "clientSecret": KWARGS["client_secret"],
    }


def test_token_is_fetched_again_once_its_expiry_has_passed(azam, monkeypatch):
    expire = datetime.now(UTC) + timedelta(hours=1)
    azam.post(TOKEN_URL, json=token_payload(token="first", expire=expire))
    azam.post(TOKEN_URL, json=token_payload(token="second", expire=expire + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "first"
    assert provider.access_token() == "first"

    an_hour_later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: an_hour_later)  # the cache measures expiry with time.time()
    assert provider.access_token() == "second"
    assert len(calls_to(azam, TOKEN_URL)) == 2


def test_token_is_refreshed_a_margin_before_it_expires(azam, monkeypatch):
    expire = datetime.now(UTC) + timedelta(minutes=10)
    azam.post(TOKEN_URL, json=token_payload(token="first", expire=expire))
    azam.post(TOKEN_URL, json=token_payload(token="second", expire=expire + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "first"
    thirty_seconds_before_expiry = time.time() + 570
    monkeypatch.setattr(time, "time", lambda: thirty_seconds_before_expiry)
    assert provider.access_token() == "second"


def test_token_that_arrives_already_expired_is_not_reused(azam):
    azam.post(TOKEN_URL, json=token_payload(token="stale", expire=datetime.now(UTC) - timedelta(minutes=5)))
    azam.post(TOKEN_URL, json=token_payload(token="fresh", expire=datetime.now(UTC) + timedelta(hours=1)))
    provider = make_provider()
    assert provider.access_token() == "stale"
    assert provider.access_token() == "fresh"


def test_token_refused_with_423_is_a_provider_error(azam):
    azam.post(TOKEN_URL, status=423, json=fixture("token_failure_423.json"))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().access_token()
    assert excinfo.value.status_code == 423
    assert "credentials" in excinfo.value.message
    assert cache.get(make_provider().tokens.key) is None


def test_a_refused_token_stops_the_charge_before_any_checkout_call(azam):
    azam.post(TOKEN_URL, status=423, json=fixture("token_failure_423.json"))
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    with pytest.raises(ProviderError):
        make_provider().start_charge(mno_charge())
    assert checkout.call_count == 0
