"""M-Pesa C2B confirmations against a real MariaDB/MySQL server: strict mode and concurrent deliveries.

Skipped on SQLite (conftest). Strict mode refuses a value longer than its column (SQLite keeps it), and InnoDB's
row locks are what keep two payments naming one donation from both completing it. Each thread has its own
test Client and database connection.
"""

import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.tests.helpers import credited, encode, post, poster, run_together
from payments.tests.mpesa_fakes import ACK, C2B_TOKEN, fixture

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.django_db(transaction=True),
    # `daraja` is patched process-wide, so every thread sees it: nothing here may call out.
    pytest.mark.usefixtures("mpesa_settings", "paybill_rules", "daraja"),
]

HASHED = "c2b_confirmation_hashed_msisdn.json"
CONFIRMATION = f"/webhooks/mpesa/c2b/confirmation/{C2B_TOKEN}/"
VALIDATION = f"/webhooks/mpesa/c2b/validation/{C2B_TOKEN}/"
THREADS = 20
SETTLED_OK = {CallbackEvent.Status.PROCESSED, CallbackEvent.Status.IGNORED, CallbackEvent.Status.DUPLICATE}


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-KE-07", currency="KES", funding_goal=Decimal("1000000"))


def c2b_body(bill_ref="PAT-KE-07", amount="500.00", trans_id="RKL51ZDR4F", **overrides) -> dict:
    body = fixture(HASHED) | {"TransID": trans_id, "TransAmount": amount, "BillRefNumber": bill_ref}
    body.update(overrides)
    return body


def assert_ledger_ok() -> None:
    call_command("verify_ledger")  # CommandError (the test fails) on any drift


# --- strict mode ------------------------------------------------------------------------------------------


def test_confirmation_with_a_hashed_msisdn_is_credited_under_strict_mode(patient):
    body = fixture(HASHED)
    assert post(CONFIRMATION, body) == (200, ACK)
    payment = Payment.objects.get()
    assert payment.payer_reference == body["MSISDN"] and payment.msisdn == ""
    assert payment.donation.donor.phone == ""
    assert payment.status == Payment.Status.SUCCEEDED and payment.amount == Decimal("1500.00")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(patient) == Decimal("1500.00")
    assert_ledger_ok()


def over_long_body() -> dict:
    return c2b_body(
        bill_ref="B" * 300,
        trans_id="T" * 150,
        FirstName="F" * 500,
        MiddleName="M" * 500,
        LastName="L" * 500,
        MSISDN="e" * 300,
        InvoiceNumber="I" * 300,
        ThirdPartyTransID="P" * 300,
    )


def test_over_long_provider_values_are_stored_fitted_to_their_columns_under_strict_mode(patient):
    assert post(CONFIRMATION, over_long_body()) == (200, ACK)
    payment = Payment.objects.get()
    assert payment.provider_reference == "T" * 100
    assert payment.payer_reference == "e" * 128 and payment.msisdn == ""
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_review
    donation = payment.donation
    assert donation.patient is None and donation.needs_review  # "BBB…" is no account we know
    assert donation.donor.name == ("F" * 500)[:200]
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and "unknown account" in event.error
    assert event.our_reference == "B" * 64 and event.provider_reference == "T" * 100
    assert Allocation.objects.get().amount == Decimal("500.00")
    assert credited(patient) == 0
    assert_ledger_ok()


def test_over_long_provider_values_held_for_review_are_stored_under_strict_mode(patient, settings):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert post(CONFIRMATION, over_long_body()) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert event.provider_reference == "T" * 100
    assert Payment.objects.count() == 0


def test_over_long_provider_values_in_a_validation_are_answered_under_strict_mode(patient):
    assert post(VALIDATION, over_long_body()) == (200, {"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_a_resent_confirmation_with_an_over_long_trans_id_is_ignored_under_strict_mode(patient):
    body = over_long_body()
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, json.dumps(body, indent=2).encode()) == (200, ACK)
    assert Payment.objects.count() == 1
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.IGNORED


# --- concurrency ------------------------------------------------------------------------------------------


def test_two_trans_ids_naming_one_pending_donation_at_once_complete_it_once_and_credit_both(patient):
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    bodies = [c2b_body(bill_ref=pending.reference, trans_id=trans_id) for trans_id in ("TL7QW2XK9P", "TL7QW2XK9Q")]
    answers = run_together([poster(CONFIRMATION, body) for body in bodies])
    assert answers == [(200, ACK)] * 2

    pending.refresh_from_db()
    assert pending.status == Donation.Status.COMPLETED and not pending.needs_review
    [completing] = pending.payments.all()
    assert completing.status == Payment.Status.SUCCEEDED and not completing.needs_review
    other = Donation.objects.exclude(pk=pending.pk).get()
    assert other.patient == patient and other.amount == Decimal("500.00")
    assert other.status == Donation.Status.COMPLETED and other.needs_review
    [flagged] = other.payments.all()
    assert flagged.needs_review and flagged.status == Payment.Status.SUCCEEDED
    assert {completing.provider_reference, flagged.provider_reference} == {"TL7QW2XK9P", "TL7QW2XK9Q"}

    events = dict(CallbackEvent.objects.values_list("provider_reference", "status"))
    assert events == {
        completing.provider_reference: CallbackEvent.Status.PROCESSED,
        flagged.provider_reference: CallbackEvent.Status.REVIEW,
    }
    assert CallbackEvent.objects.get(provider_reference=flagged.provider_reference).error.startswith(
        f"names donation {pending.reference}"
    )
    assert Allocation.objects.count() == 2
    assert credited(patient) == Decimal("1000.00")
    assert_ledger_ok()


def test_many_trans_ids_naming_one_patient_by_code_and_by_pending_donation_at_once_are_all_credited(patient):
    """Some name the patient's code, some its pending donation: locks taken in different orders must not lose
    a payment (InnoDB deadlock victims are retried)."""
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    bodies = [
        c2b_body(bill_ref=pending.reference if i % 2 else "PAT-KE-07", trans_id=f"TL7QW2X{i:03d}")
        for i in range(THREADS)
    ]
    answers = run_together([poster(CONFIRMATION, body) for body in bodies])
    assert answers == [(200, ACK)] * THREADS

    assert Payment.objects.count() == THREADS
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == THREADS
    pending.refresh_from_db()
    assert pending.status == Donation.Status.COMPLETED
    assert pending.payments.count() == 1
    assert Donation.objects.filter(status=Donation.Status.COMPLETED).count() == THREADS
    assert Allocation.objects.count() == THREADS
    assert credited(patient) == Decimal("500.00") * THREADS
    statuses = list(CallbackEvent.objects.values_list("status", flat=True))
    assert CallbackEvent.Status.FAILED not in statuses and len(statuses) == THREADS
    # Half named the donation: one of them completed it, the other half-minus-one are flagged new donations.
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.REVIEW).count() == THREADS // 2 - 1
    assert_ledger_ok()


def test_copies_of_one_confirmation_naming_a_pending_donation_at_once_complete_it_and_nothing_else(patient):
    """The losers find the donation completed, start a new one, meet the unique TransID and roll it all back."""
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    data = c2b_body(bill_ref=pending.reference)
    answers = run_together([poster(CONFIRMATION, json.dumps(data, indent=i).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    pending.refresh_from_db()
    assert pending.status == Donation.Status.COMPLETED and not pending.needs_review
    assert Donation.objects.count() == 1  # no half-made donation left by a rolled-back loser
    assert Payment.objects.get().donation_id == pending.pk
    assert Allocation.objects.count() == 1
    assert credited(patient) == Decimal("500.00")
    events = list(CallbackEvent.objects.values_list("status", flat=True))
    assert events.count(CallbackEvent.Status.PROCESSED) == 1
    assert events.count(CallbackEvent.Status.IGNORED) == THREADS - 1, events
    assert_ledger_ok()


def test_twenty_identical_hashed_msisdn_confirmations_at_once_make_one_payment_and_one_credit(patient):
    body = encode(fixture(HASHED))
    answers = run_together([poster(CONFIRMATION, body)] * THREADS)
    assert answers == [(200, ACK)] * THREADS
    payment = Payment.objects.get()
    assert payment.provider_reference == "TL7QW2XK9P" and payment.payer_reference == fixture(HASHED)["MSISDN"]
    assert Donation.objects.count() == 1 and Allocation.objects.count() == 1
    assert credited(patient) == Decimal("1500.00")
    events = list(CallbackEvent.objects.values_list("status", flat=True))
    assert len(events) == THREADS
    assert set(events) <= SETTLED_OK, events  # none left failed/received for the sweeper
    assert events.count(CallbackEvent.Status.PROCESSED) == 1
    assert_ledger_ok()


def test_twenty_differently_encoded_hashed_msisdn_confirmations_at_once_make_one_credit(patient):
    """Bytes differ, so the inbox's dedup key cannot help: the unique TransID must."""
    data = fixture(HASHED)
    answers = run_together([poster(CONFIRMATION, json.dumps(data, indent=i).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    assert Payment.objects.count() == 1 and Allocation.objects.count() == 1
    assert credited(patient) == Decimal("1500.00")
    events = list(CallbackEvent.objects.values_list("status", flat=True))
    assert events.count(CallbackEvent.Status.PROCESSED) == 1
    assert events.count(CallbackEvent.Status.IGNORED) == THREADS - 1, events
    assert_ledger_ok()


def test_an_amount_that_would_overflow_the_patients_total_is_held_for_review_not_left_failed(patient):
    Patient.objects.filter(pk=patient.pk).update(funding_received=Decimal("1.00"))
    assert post(CONFIRMATION, c2b_body(amount="9999999999.99")) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW, event.error
    assert credited(patient) == Decimal("1.00")


def masked_confirmation(trans_id: str = "RKL51ZDR4F") -> dict:
    """Daraja's C2B v2 confirmation with the masked MSISDN of 2022–2024."""
    return {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": "20231121121325",
        "TransAmount": "500.00",
        "BusinessShortCode": "600984",
        "BillRefNumber": "pat-ke-09",
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "NICHOLAS",
        "MiddleName": "",
        "LastName": "",
    }


def test_concurrent_duplicate_c2b_confirmations_create_one_donation():
    patient = PatientFactory(code="PAT-KE-09", currency="KES", funding_goal=Decimal("100000"))
    data = masked_confirmation()
    answers = run_together([poster(CONFIRMATION, json.dumps(data, indent=i % 3).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    assert Donation.objects.count() == 1
    assert Payment.objects.filter(provider_reference="RKL51ZDR4F").count() == 1
    assert Allocation.objects.count() == 1
    assert credited(patient) == Decimal("500.00")
