"""The class the registry knows: its names, capabilities, routes, settings and deploy warnings."""

import pytest

from payments.providers.airtel.config import CONFIG
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import (
    CallbackRole,
    Collections,
    PaymentProvider,
    Payouts,
    Refunds,
    RouteToken,
)
from payments.tests.providers.airtel.support import SECRET, make_provider, public_pem

PRODUCTION = {"api_url": "https://openapi.airtel.africa", "callback_secret": SECRET}
SITE = "https://donate.example.org"


def test_names_and_capabilities():
    provider = make_provider()
    assert (provider.code, provider.display_name, provider.public_name) == ("airtel", "Airtel Money", "airtel_money")
    assert all(isinstance(provider, cls) for cls in (PaymentProvider, Collections, Payouts, Refunds))
    assert provider.whole_amounts_only and not provider.refunds_partial
    assert provider.currencies == provider.payout_currencies == frozenset({"UGX"})
    assert [m.key for m in provider.payment_methods()] == ["airtel"]
    assert provider.reference_before_request() == ""  # Airtel takes our id; nothing to store beforehand


def test_currency_is_a_setting_per_instance():
    assert make_provider(currency="zmw", country="zm").currencies == frozenset({"ZMW"})
    assert make_provider().currencies == frozenset({"UGX"})


@pytest.mark.parametrize(
    "overrides", [{"pin_padding": "pss"}, {"country": "Uganda"}, {"currency": "SH"}], ids=["padding", "country", "ccy"]
)
def test_bad_settings_fail_at_start_up(overrides):
    with pytest.raises(ValueError):
        make_provider(**overrides)


def test_callback_routes():
    routes = {route.kind: route for route in AirtelProvider.callback_routes}
    assert {kind: (r.path, r.role, r.token, r.methods) for kind, r in routes.items()} == {
        "payment": ("webhooks/airtel/payment", CallbackRole.PAYMENT, RouteToken.NONE, ("post",)),
        "disbursement": ("webhooks/airtel/disbursement", CallbackRole.PAYOUT_RESULT, RouteToken.NONE, ("post",)),
        "notification": ("webhooks/airtel/notification", CallbackRole.NOTICE, RouteToken.NONE, ("post",)),
    }
    assert make_provider().callback_secret("payment") is None  # no secret of ours in Airtel's portal URL


def test_settings_declaration():
    variables = {setting.var: setting for setting in CONFIG.settings}
    assert set(variables) == {
        "AIRTEL_API_URL",
        "AIRTEL_CLIENT_ID",
        "AIRTEL_CLIENT_SECRET",
        "AIRTEL_COUNTRY",
        "AIRTEL_CURRENCY",
        "AIRTEL_CALLBACK_SECRET",
        "AIRTEL_COLLECTION_PATH",
        "AIRTEL_SIGN_REQUESTS",
        "AIRTEL_PUBLIC_KEY",
        "AIRTEL_DISBURSEMENT_PIN",
        "AIRTEL_PIN_PADDING",
    }
    assert variables["AIRTEL_API_URL"].default == "https://openapiuat.airtel.africa"
    assert (variables["AIRTEL_COUNTRY"].default, variables["AIRTEL_CURRENCY"].default) == ("UG", "UGX")
    assert variables["AIRTEL_COLLECTION_PATH"].default == "/merchant/v1/payments/"
    assert variables["AIRTEL_SIGN_REQUESTS"].cast is bool and variables["AIRTEL_SIGN_REQUESTS"].default is False
    assert variables["AIRTEL_PIN_PADDING"].default == "pkcs1"
    assert (CONFIG.code, CONFIG.real_when, dict(CONFIG.sandbox_urls)) == (
        "airtel",
        "AIRTEL_CLIENT_ID",
        {"api_url": "/airtel"},
    )
    # Every constructor argument the declaration feeds exists, and the sandbox values build a provider.
    AirtelProvider(**{s.key: s.default for s in CONFIG.settings} | CONFIG.sandbox_credentials())
    assert set(CONFIG.sandbox_credentials()) == {"client_id", "client_secret", "callback_secret", "disbursement_pin"}


def ids(provider: AirtelProvider, site_url: str = SITE) -> set[str]:
    return {warning.id for warning in provider.deploy_warnings(site_url=site_url)}


def test_no_warnings_while_the_rail_is_off():
    assert ids(make_provider(client_id="", api_url="http://x"), "http://x") == set()


def test_a_well_configured_production_rail_is_clean():
    assert ids(make_provider(**PRODUCTION)) == set()
    assert ids(make_provider(**PRODUCTION, disbursement_pin="1234", public_key_pem=public_pem())) == set()


def test_weak_settings_warn():
    assert ids(make_provider()) >= {"payments.W030", "payments.W033"}  # no secret, the UAT host
    assert "payments.W031" in ids(make_provider(**PRODUCTION, disbursement_pin="1234"))  # PIN, no pinned key
    assert "payments.W032" in ids(make_provider(**PRODUCTION), "http://donate.example.org")
    assert "payments.W034" in ids(make_provider(**{**PRODUCTION, "api_url": "http://openapi.airtel.africa"}))
    for provider in (make_provider(), make_provider(**PRODUCTION, disbursement_pin="1")):
        assert all("W03" in w.id and w.hint for w in provider.deploy_warnings(site_url="http://x"))


@pytest.mark.parametrize(
    ("written", "padding"),
    [("pkcs1", "pkcs1"), ("pkcs1v15", "pkcs1"), ("PKCS#1 v1.5", "pkcs1"), ("", "pkcs1"), ("OAEP", "oaep")],
)
def test_pin_padding_as_operators_write_it(written, padding):
    assert make_provider(pin_padding=written).disbursement.pin_padding == padding
