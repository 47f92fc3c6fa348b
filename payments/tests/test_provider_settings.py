"""Provider settings a provider cannot work with (docs/api.md, the check table and "Settings"): a system check error
with its own id on every `manage.py check`, and never a 500 — the donation API answers 503 SERVICE_UNAVAILABLE for
that provider, the others keep working, the portal leaves it out, its callbacks are answered 503."""

import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core import checks

from patients.tests.factories import PatientFactory
from payments.checks import provider_settings
from payments.models import CallbackEvent, IdempotencyRecord
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.base import ProviderSettingsInvalid
from payments.providers.mpesa.provider import MpesaProvider
from payments.providers.mtn.provider import MtnProvider
from payments.providers.registry import get_provider
from payments.tests.azampay_fakes import MNO_URL, fixture

pytestmark = pytest.mark.django_db

DONATIONS_URL = "/api/v1.0/donors/donations/"
BAD = {
    "mpesa": ({"transaction_type": "CustomerPaybillOnline"}, "payments.E002", "MPESA_TRANSACTION_TYPE"),
    "mtn": ({"currency": "KES"}, "payments.E003", "MTN_CURRENCY"),
    "airtel-country": ({"country": "US"}, "payments.E004", "AIRTEL_COUNTRY"),
    "airtel-currency": ({"country": "UG", "currency": "KES"}, "payments.E005", "AIRTEL_CURRENCY"),
    "airtel-padding": ({"pin_padding": "pss"}, "payments.E006", "AIRTEL_PIN_PADDING"),
}


def provider_of(case: str) -> str:
    return case.split("-")[0]


def misconfigure(settings, code: str, **overrides) -> None:
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        code: {**settings.PAYMENT_PROVIDERS[code], **overrides},
    }


# --- the system check -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD))
def test_an_invalid_provider_setting_is_a_check_error_naming_it(settings, case):
    overrides, check_id, variable = BAD[case]
    misconfigure(settings, provider_of(case), **overrides)
    [error] = provider_settings(None)
    assert isinstance(error, checks.Error) and error.id == check_id
    assert error.msg.startswith(f"{variable}={list(overrides.values())[-1]!r} ")
    assert error.hint
    assert error in checks.run_checks()  # registered: on every `check`, not only --deploy


def test_the_messages_say_what_is_accepted(settings):
    misconfigure(settings, "mpesa", transaction_type="Paybill")
    misconfigure(settings, "mtn", currency="shillings")
    misconfigure(settings, "airtel", country="Uganda", pin_padding="pss")
    messages = {error.id: error.msg for error in provider_settings(None)}
    assert messages == {
        "payments.E002": "MPESA_TRANSACTION_TYPE='Paybill' is not one of Daraja's transaction types "
        "(CustomerPayBillOnline, CustomerBuyGoodsOnline): M-Pesa cannot be used.",
        "payments.E003": "MTN_CURRENCY='shillings' is not a currency MTN MoMo collects (EUR, GHS, GNF, LRD, NGN, "
        "RWF, SSP, SZL, UGX, XAF, XOF, ZAR, ZMW): MTN MoMo cannot be used.",
        "payments.E004": "AIRTEL_COUNTRY='Uganda' is not a country Airtel Money serves (CD, CG, GA, KE, MG, MW, NE, "
        "NG, RW, SC, TD, TZ, UG, ZM): Airtel Money cannot be used.",
        "payments.E006": "AIRTEL_PIN_PADDING='pss' is not one of pkcs1, oaep (or pkcs1v15): Airtel Money cannot be "
        "used.",
    }


def test_valid_settings_give_no_error(settings):
    misconfigure(settings, "mtn", currency="ugx")
    misconfigure(settings, "airtel", country="cd", currency="USD", pin_padding="PKCS#1 v1.5")
    assert provider_settings(None) == []


def test_the_constructors_refuse_what_the_check_reports():
    with pytest.raises(ProviderSettingsInvalid) as mpesa:
        MpesaProvider(
            consumer_key="", consumer_secret="", shortcode="174379", passkey="", api_url="", transaction_type="x"
        )
    assert [p.id for p in mpesa.value.problems] == ["payments.E002"]
    assert MtnProvider.settings_problems({"currency": "ZMW"}) == []
    assert [p.setting for p in AirtelProvider.settings_problems({"country": "ZM", "currency": "UGX"})] == [
        "AIRTEL_CURRENCY"
    ]


def test_check_stops_the_start_and_check_deploy_reports_instead_of_crashing():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", "MTN_CURRENCY": "KES"}
    env.pop("PAYMENTS_SANDBOX_URL", None)
    env["DATABASE_URL"] = "sqlite:///:memory:"  # the checks, not the test run's database
    for command in (["check"], ["check", "--deploy"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode != 0
        assert "payments.E003" in done.stderr and "Traceback" not in done.stderr


# --- the donation API and the portal ----------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD))
def test_a_donation_on_a_misconfigured_provider_is_503_in_the_error_shape(api_client, settings, case):
    overrides, _, _ = BAD[case]
    code = provider_of(case)
    misconfigure(settings, code, **overrides)
    currency = {"mpesa": "KES", "mtn": "EUR", "airtel": "UGX"}[code]
    patient = PatientFactory(currency=currency, funding_goal=Decimal("1000000"))
    body = {
        "patient": patient.code,
        "amount": "5000",
        "currency": currency,
        "provider": code,
        "phone_number": "0712345678",
    }
    response = api_client.post(DONATIONS_URL, body, format="json")
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["code"] == "SERVICE_UNAVAILABLE" and answer["error"] == "Service Unavailable"
    assert "unavailable" in answer["message"]
    assert not patient.donations.exists()  # nothing created, nothing sent


@pytest.mark.usefixtures("azampay_settings")
def test_the_other_providers_keep_working(api_client, settings, azam):
    misconfigure(settings, "mtn", currency="KES")
    misconfigure(settings, "airtel", pin_padding="pss")
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    body = {
        "patient": patient.code,
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
    }
    assert api_client.post(DONATIONS_URL, body, format="json").status_code == 201
    schema = api_client.get("/api/schema/?format=json").json()["components"]["schemas"]
    variants = [schema[ref["$ref"].rsplit("/", 1)[1]] for ref in schema["DonationRequest"]["oneOf"]]
    assert {tuple(v["properties"]["provider"]["enum"]) for v in variants} == {("azampay",), ("mpesa",)}
    misconfigure(settings, "mtn", currency="EUR")  # fixed: the next schema has its variant again
    schema = api_client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert "DonationMtnEUR" in schema and "DonationAirtelUGX" not in schema


def test_a_503_is_not_kept_with_its_idempotency_key(api_client, settings):
    patient = PatientFactory(currency="EUR", funding_goal=Decimal("1000000"))
    body = {
        "patient": patient.code,
        "amount": "10",
        "currency": "EUR",
        "provider": "mtn",
        "phone_number": "46733123450",
    }
    misconfigure(settings, "mtn", currency="KES")
    first = api_client.post(DONATIONS_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    assert first.status_code == 503
    assert not IdempotencyRecord.objects.exists()  # a retry after the fix runs afresh


def test_the_portal_leaves_a_misconfigured_provider_out(client, settings):
    misconfigure(settings, "airtel", country="XX")
    patient = PatientFactory(currency="UGX", funding_goal=Decimal("1000000"))
    response = client.get(f"/patients/{patient.code}/")
    assert response.status_code == 200
    assert b"Airtel Money" not in response.content
    with pytest.raises(ProviderSettingsInvalid):
        get_provider("airtel")


def test_a_callback_for_a_misconfigured_provider_is_503(client, settings):
    misconfigure(settings, "airtel", currency="EUR")
    response = client.post("/webhooks/airtel/payment/", b"{}", content_type="application/json")
    assert response.status_code == 503 and response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert not CallbackEvent.objects.exists()
