"""AzamPay's own ways (the shared ones, a missing password included, are test_pipeline.py's; the database going away and
a failed event's replay test_inbox.py's): card payments matched by the externalId we sent, a failure it has no final
word on, the password never stored. MariaDB: many donations to one patient at once, an unwritable verdict."""

import json
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.test import Client

from donor.models import Allocation, Donation
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.services import callbacks
from payments.services.dispatch import callback_replay
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, PASSWORD, POST_CHECKOUT_URL, callback_body, fixture
from payments.tests.drivers import THREADS, AzamPay, deliver, driver_fixtures
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited, poster, run_together

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

rail, payment = driver_fixtures(AzamPay)


def test_failure_callback_fails_the_donation_with_its_reason_when_the_provider_has_no_final_word(rail, payment):
    name, changes = rail.pending
    rail.answer(name, **changes)
    assert deliver(CALLBACK_URL, callback_body(payment, status="failure")) == (200, ACK)
    assert rail.asked() == 1  # a failure is re-checked before the donation is given up
    payment.refresh_from_db()
    donation = Donation.objects.get(pk=payment.donation_id)
    assert payment.status == Payment.Status.FAILED
    assert donation.status == Donation.Status.FAILED
    assert donation.status_reason == "Insufficient balance"
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(payment) == 0 and not Allocation.objects.exists()


@pytest.mark.parametrize(
    ("name", "field"),
    [("callback_real_sandbox.json", "utilityref"), ("callback_externalreference_variant.json", "externalreference")],
    ids=["in-utilityref", "in-externalreference"],  # the variant has no utilityref at all
)
@pytest.mark.parametrize("prefix", ["", "KIDS-HEART-FUND"], ids=["short-reference", "reference-over-30"])
def test_card_payment_callback_is_matched_by_the_external_id_we_sent(api_client, rail, settings, prefix, name, field):
    if prefix:
        settings.DONATION_REFERENCE_PREFIX = prefix
    page = rail.mock.post(POST_CHECKOUT_URL, body=fixture("post_checkout_url.json"), content_type="text/plain")
    patient = PatientFactory(currency="TZS", funding_goal=Decimal("1000000"))
    request = {"patient": patient.code, "amount": "5000", "currency": "TZS", "provider": "azampay", "channel": "card"}
    response = api_client.post("/api/v1.0/donors/donations/", request, format="json")
    assert response.status_code == 201, response.json()
    payment = Payment.objects.get(reference=response.json()["reference"])
    external_id = json.loads(page.calls[0].request.body)["externalId"]  # the id AzamPay was given
    assert payment.provider_reference is None and (len(payment.reference) > 30) == bool(prefix)
    body = fixture(name) | dict.fromkeys(("reference", "externalreference", "transid"), "d" * 32)  # AzamPay's ids
    assert deliver(CALLBACK_URL, body | {field: external_id, "amount": "5000", "password": PASSWORD}) == (200, ACK)
    payment.refresh_from_db()
    assert (payment.status, payment.provider_reference) == (Payment.Status.SUCCEEDED, "d" * 32)
    assert credited(payment) == Decimal("5000")


def test_callback_password_never_reaches_the_stored_event(client, payment):
    bodies = [callback_body(payment), callback_body(payment, status="failure"), callback_body(payment, amount="1")]
    bodies.append(callback_body(PaymentFactory(), password=PASSWORD.upper()))  # rejected: the near-miss is not kept
    for body in bodies:
        client.post(CALLBACK_URL, data=body, content_type="application/json")

    events = list(CallbackEvent.objects.all())
    assert len(events) == 4
    for event in events:
        assert PASSWORD not in event.body
        assert PASSWORD.upper() not in event.body
        assert PASSWORD not in json.dumps(event.headers)
        if event.body_kept:  # the rejected near-miss keeps no body at all (a fixed-size record)
            assert json.loads(event.body)["password"] == "***"
    assert [event.body_kept for event in events].count(False) == 1


# --- on MariaDB ---------------------------------------------------------------------------------------------


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_twenty_donations_to_one_patient_completing_at_once_all_land():
    patient = PatientFactory(funding_goal=Decimal("10000000"))
    payments = [PaymentFactory(donation__patient=patient, donation__amount=Decimal(1000 + i)) for i in range(THREADS)]
    answers = run_together([poster(CALLBACK_URL, callback_body(p)) for p in payments])

    assert answers == [(200, ACK)] * THREADS
    assert credited(patient) == sum(p.amount for p in payments)
    assert Allocation.objects.filter(patient=patient).count() == THREADS
    assert Donation.objects.filter(status=Donation.Status.COMPLETED).count() == THREADS
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == THREADS


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_a_credit_whose_verdict_cannot_be_written_is_undone_then_credited_once_by_the_retry(monkeypatch):
    """The credit and the inbox row's `processed` commit together: if the second fails, neither happened, and
    the delivery stays open for the sweeper (before, the money was credited while the delivery read `failed`)."""
    payment = PaymentFactory(donation__patient__funding_goal=Decimal("1000000"))
    real_mark = callbacks.callback_event_mark

    def verdict_fails(event, status, **kwargs):
        if status == CallbackEvent.Status.PROCESSED:
            raise OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
        return real_mark(event, status, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "callback_event_mark", verdict_fails)
        response = Client().post(CALLBACK_URL, data=callback_body(payment), content_type="application/json")

    assert response.status_code == 200  # stored and due for a retry: nothing for the provider to resend
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.FAILED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert Allocation.objects.count() == 0 and credited(payment) == 0  # read from the database, not the factory's

    assert callback_replay(event=event).code == "accepted"  # what the sweeper runs
    assert callback_replay(event=event).code == "accepted"  # and once more: nothing changes
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == payment.amount and Allocation.objects.count() == 1
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.IGNORED  # the second replay found it done
