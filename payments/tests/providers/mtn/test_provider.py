"""MtnProvider as a whole: its settings (and the simulator's test values), its callback routes, its
per-deployment currency and the deploy warnings (payments.W020–W026). No HTTP, no database."""

import pytest

from payments.providers.base import CallbackRole, Collections, Payouts, Refunds, RouteToken
from payments.providers.config import provider_settings
from payments.providers.mtn.config import CONFIG
from payments.providers.mtn.provider import MtnProvider
from payments.tests.providers.mtn.support import KWARGS


class FakeEnv:
    """django-environ's reader over a plain dict."""

    def __init__(self, values: dict):
        self.values = values

    def __call__(self, var, default=None):
        return self.values.get(var, default)

    str = __call__

    def bool(self, var, default=None):
        return self.values.get(var, default)

    int = float = list = bool


def blocks(values: dict, sandbox_url: str = "") -> dict:
    return provider_settings(FakeEnv(values), sandbox_url=sandbox_url, configs=(CONFIG,), shared={})["mtn"]


def test_the_provider_has_every_capability_it_claims():
    provider = MtnProvider(**KWARGS)
    assert isinstance(provider, Collections) and isinstance(provider, Payouts) and isinstance(provider, Refunds)
    assert (MtnProvider.code, MtnProvider.display_name, MtnProvider.public_name) == (
        "mtn",
        "MTN MoMo",
        "mtn_mobile_money",
    )
    assert MtnProvider.whole_amounts_only


def test_settings_defaults_build_a_provider():
    block = blocks({"MTN_API_USER": "user"})
    assert block["api_url"] == "https://sandbox.momodeveloper.mtn.com"
    assert block["target_environment"] == "sandbox"
    assert block["currency"] == "UGX"
    assert block["disbursement_api_user"] == "" and block["disbursement_api_key"] == ""
    MtnProvider(**block)


def test_sandbox_mode_points_at_the_simulator_with_its_test_values_in_eur():
    block = blocks({}, sandbox_url="http://127.0.0.1:8001")
    assert block["api_url"] == "http://127.0.0.1:8001/mtn"
    assert block["currency"] == "EUR"  # as MTN's own sandbox
    creds = CONFIG.sandbox_credentials()
    for key in ("api_user", "api_key", "collection_subscription_key", "disbursement_subscription_key"):
        assert block[key] == creds[key] and creds[key]


def test_a_real_api_user_wins_over_the_sandbox():
    block = blocks({"MTN_API_USER": "real-user", "MTN_API_URL": "https://proxy.momoapi.mtn.com"}, "http://sb")
    assert block["api_user"] == "real-user" and block["api_url"] == "https://proxy.momoapi.mtn.com"
    assert block["currency"] == "UGX"


def test_currencies_are_the_configured_one_per_instance():
    ugx = MtnProvider(**{**KWARGS, "currency": "ugx"})
    eur = MtnProvider(**KWARGS)
    assert ugx.currencies == frozenset({"UGX"}) and ugx.payout_currencies == frozenset({"UGX"})
    assert eur.currencies == frozenset({"EUR"})
    assert [m.currencies for m in ugx.payment_methods()] == [frozenset({"UGX"})]
    assert ugx.payment_methods()[0].channel == ""


def test_a_currency_that_is_not_a_code_fails_at_start_up():
    with pytest.raises(ValueError, match="MTN_CURRENCY"):
        MtnProvider(**{**KWARGS, "currency": "shillings"})


def test_routes_accept_put_and_post_with_and_without_the_token():
    routes = {route.kind: route for route in MtnProvider.callback_routes}
    assert set(routes) == {"collection", "disbursement", "remittance", "refund"}
    assert routes["collection"].role == CallbackRole.PAYMENT
    assert routes["disbursement"].role == CallbackRole.PAYOUT_RESULT
    assert routes["remittance"].role == CallbackRole.NOTICE
    assert routes["refund"].role == CallbackRole.REFUND_RESULT
    for route in routes.values():
        assert route.path == f"webhooks/mtn/{route.kind}"
        assert route.token == RouteToken.OPTIONAL
        assert set(route.methods) == {"post", "put"}
    assert MtnProvider.route_for(CallbackRole.PAYMENT) is routes["collection"]


def ids(provider: MtnProvider, site_url: str = "https://donate.example.org") -> set[str]:
    return {w.id for w in provider.deploy_warnings(site_url=site_url)}


def test_production_settings_raise_no_warning():
    provider = MtnProvider(
        **{**KWARGS, "api_url": "https://proxy.momoapi.mtn.com", "target_environment": "mtnuganda", "currency": "UGX"}
    )
    assert ids(provider) == set()


def test_the_simulator_raises_only_what_w001_does_not_say():
    provider = MtnProvider(**{**KWARGS, "api_url": "http://127.0.0.1:8001/mtn"})
    assert ids(provider) == set()


@pytest.mark.parametrize(
    ("overrides", "site_url", "expected"),
    [
        ({"api_url": "https://sandbox.momodeveloper.mtn.com"}, "https://x.org", {"payments.W020"}),
        (
            {"api_url": "https://sandbox.momodeveloper.mtn.com", "target_environment": "mtnuganda", "currency": "UGX"},
            "https://x.org",
            {"payments.W021"},
        ),
        ({"api_url": "https://proxy.momoapi.mtn.com"}, "https://x.org", {"payments.W020", "payments.W021"}),
        (
            {"api_url": "https://ericssonbasicapi2.azure-api.net", "target_environment": "mtnghana", "currency": "GHS"},
            "https://x.org",
            {"payments.W022"},
        ),
        (
            {"api_url": "https://proxy.momoapi.mtn.com", "target_environment": "mtnuganda"},
            "http://x.org",
            {"payments.W023"},
        ),
        (
            {
                "api_url": "https://proxy.momoapi.mtn.com",
                "target_environment": "mtnuganda",
                "disbursement_subscription_key": "",
            },
            "https://x.org",
            {"payments.W024"},
        ),
        ({"api_url": "http://127.0.0.1:8001/mtn", "currency": "UGX"}, "https://x.org", {"payments.W025"}),
        (
            {"api_url": "https://proxy.momoapi.mtn.com", "target_environment": "mtnuganda", "api_key": ""},
            "https://x.org",
            {"payments.W026"},
        ),
    ],
)
def test_deploy_warnings(overrides, site_url, expected):
    provider = MtnProvider(**{**KWARGS, **overrides})
    assert ids(provider, site_url) == expected


def test_deploy_warning_ids_are_in_mtns_range():
    provider = MtnProvider(**{**KWARGS, "api_url": "https://ericssonbasicapi2.azure-api.net", "api_key": ""})
    for warning in provider.deploy_warnings(site_url="http://x"):
        assert "payments.W020" <= warning.id <= "payments.W029"


# --- the registry, the settings and the routes it generates -------------------------------------------------


def test_registered_and_configured_from_settings():
    from payments.providers.registry import PROVIDER_CLASSES, get_provider

    assert PROVIDER_CLASSES["mtn"] is MtnProvider
    assert isinstance(get_provider("mtn"), MtnProvider)


def test_the_collection_callback_url_carries_the_payments_token(settings):
    from payments.callback_urls import callback_url

    settings.SITE_URL = "https://donate.example.org"
    assert (
        callback_url(MtnProvider, CallbackRole.PAYMENT, "abc")
        == "https://donate.example.org/webhooks/mtn/collection/abc/"
    )
    assert callback_url(MtnProvider, CallbackRole.REFUND_RESULT, "r1") == (
        "https://donate.example.org/webhooks/mtn/refund/r1/"
    )
    assert (
        callback_url(MtnProvider, CallbackRole.PAYOUT_RESULT) == "https://donate.example.org/webhooks/mtn/disbursement/"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/mtn/collection",
        "/webhooks/mtn/collection/tok_123/",
        "/webhooks/mtn/disbursement/",
        "/webhooks/mtn/remittance/tok",
        "/webhooks/mtn/refund/",
        "/webhooks/mtn/health/",
    ],
)
def test_the_paths_resolve_with_and_without_the_slash(path):
    from django.urls import resolve

    assert resolve(path) is not None


def test_the_sandbox_serves_mtn():
    from payments.sandbox.mtn import MtnSimulator
    from payments.sandbox.server import SIMULATOR_CLASSES

    assert MtnSimulator in SIMULATOR_CLASSES
