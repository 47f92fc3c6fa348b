"""Airtel Money's own ways (the shared properties are test_pipeline.py's and test_pipeline_money_out.py's): its
legacy callback shape, malformed bodies with no secret configured, the hash redacted before storing, the id a
timed-out payout is known by (which its result then settles, as every rail's does: test_pipeline_money_out.py)."""

import json
from decimal import Decimal

import pytest
import requests

from payments.models import CallbackEvent, Payment, Payout
from payments.providers.airtel.client import airtel_id
from payments.services.payouts import payout_approve, payout_request
from payments.tests.drivers import Airtel, deliver, driver_fixtures, funded_patient
from payments.tests.helpers import credited
from payments.tests.providers.airtel.support import AIRTEL_ID, DISBURSEMENT_URL, fixture, public_pem

pytestmark = pytest.mark.django_db

ACK = Airtel.ack
PAYMENT = "/webhooks/airtel/payment/"

rail, payment = driver_fixtures(Airtel)


@pytest.mark.parametrize("name", ["callback_success.json", "callback_legacy_shape.json"], ids=["current", "legacy"])
def test_a_signed_success_in_either_shape_is_stored_without_its_hash_and_with_our_id(rail, payment, name):
    rail.says_paid(payment)
    assert deliver(PAYMENT, Airtel.signed(name)) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert (event.kind, event.status) == ("payment", CallbackEvent.Status.PROCESSED)
    assert "hash" not in json.loads(event.body)  # keyed with our secret: redacted before it is stored
    assert event.our_reference == AIRTEL_ID and event.payment == payment
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and credited(payment) == Airtel.amount
    assert payment.provider_reference == Airtel.receipt  # learnt from the enquiry


@pytest.mark.parametrize("name", [f"callback_malformed_{n}.json" for n in ("no_id", "no_status", "no_transaction")])
def test_malformed_bodies_without_a_secret_configured_are_400(rail, payment, settings, name):
    settings.PAYMENT_PROVIDERS["airtel"]["callback_secret"] = ""
    status, answer = deliver(PAYMENT, fixture(name))
    assert (status, answer["code"]) == (400, "INVALID_FORMAT")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED


def test_a_payout_whose_send_timed_out_keeps_the_id_airtel_knows_it_by(rail, settings, maker, checker):
    """The id is stored before the request, so the result callback and the enquiry find an ambiguous payout."""
    settings.PAYMENT_PROVIDERS["airtel"].update(disbursement_pin="1234", public_key_pem=public_pem())  # the rail's
    patient = funded_patient(provider="airtel", msisdn="256700160185", amount=Decimal("1000"), currency="UGX")
    requested = payout_request(patient=patient, amount=Decimal("1000"), requested_by=maker)
    rail.mock.post(DISBURSEMENT_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    sent = payout_approve(payout_id=requested.pk, approved_by=checker)
    assert sent.status == Payout.Status.AMBIGUOUS
    assert sent.provider_reference == airtel_id(sent.reference)
