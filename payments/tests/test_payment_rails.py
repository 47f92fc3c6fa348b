"""PAYMENT_RAILS: a rail the site does not offer is refused to donors, its callback URLs answer 404 (JSON), its
deploy checks are silent; the setting refuses a name it does not know."""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from payments.providers.registry import provider_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def without_mtn(settings):
    settings.PAYMENT_PROVIDERS = {code: cfg for code, cfg in settings.PAYMENT_PROVIDERS.items() if code != "mtn"}
    return settings


def test_a_rail_left_out_is_not_offered_to_donors(client, without_mtn):
    from patients.tests.factories import PatientFactory

    assert "mtn" not in provider_codes()
    patient = PatientFactory(currency="UGX")
    body = {
        "patient": patient.code,
        "amount": "5000",
        "currency": "UGX",
        "provider": "mtn",
        "phone_number": "0772123456",
    }
    response = client.post("/api/v1.0/donors/donations/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR" and "provider" in response.json()["errors"]


@pytest.mark.parametrize("method, path", [("put", "/webhooks/mtn/collection/"), ("get", "/webhooks/mtn/health/")])
def test_its_callback_urls_answer_404_json_and_store_nothing(client, without_mtn, method, path):
    from payments.models import CallbackEvent

    send = getattr(client, method)
    response = send(path) if method == "get" else send(path, b"{}", content_type="application/json")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert response.json()["message"] == "mtn payments are not enabled on this site."
    assert not CallbackEvent.objects.exists()


def test_its_deploy_checks_are_silent(without_mtn, capsys):
    try:
        call_command("check", "--deploy", "--tag", "security")
    except SystemCheckError as exc:
        output = str(exc)
    else:
        output = capsys.readouterr().out
    assert "payments.W02" not in output  # MTN's W020–W026


def test_an_unknown_rail_stops_the_start_with_the_choices():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", "PAYMENT_RAILS": "azampay,paypal"}
    done = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0
    assert "PAYMENT_RAILS='azampay,paypal': name one or more of azampay, mpesa, mtn, airtel." in done.stderr
