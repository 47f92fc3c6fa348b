"""Paybill (M-Pesa C2B): validation, and confirmations (money that already moved) always recorded, credited by
a clear rule or flagged for review, never a 500 (the rules: payments/services/paybill.py's module docstring);
the URL registration command.

Runs on SQLite and on MariaDB; the strict-mode and concurrency cases are in test_paybill_mysql.py. Nothing here
may call out: `daraja` answers only the token, any other request fails the test loudly.
"""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from donor.models import Allocation, Donation
from donor.tests.factories import DonationFactory
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.services.inbox import callback_record
from payments.services.reconcile import payments_reconcile
from payments.tests.factories import staff_user
from payments.tests.helpers import credited, encode, post
from payments.tests.mpesa_fakes import (
    ACCEPT,
    ACK,
    C2B_REGISTER_URL,
    C2B_SHORTCODE,
    C2B_TOKEN,
    SITE_URL,
    fixture,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "paybill_rules", "daraja")]

HASHED = "c2b_confirmation_hashed_msisdn.json"
VALIDATION = f"/webhooks/mpesa/c2b/validation/{C2B_TOKEN}/"
CONFIRMATION = f"/webhooks/mpesa/c2b/confirmation/{C2B_TOKEN}/"
PAYBILL_CONFIRMATION = f"/webhooks/paybill/confirmation/{C2B_TOKEN}/"
SAFARICOM_IP = "196.201.214.200"


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-KE-07", currency="KES", funding_goal=Decimal("100000"))


def c2b_body(bill_ref="PAT-KE-07", amount="500.00", trans_id="RKL51ZDR4F", **overrides) -> dict:
    """Daraja's C2B v2 body with the masked MSISDN of 2022–2024 (fixtures/mpesa has the 2024+ hashed one)."""
    body = {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": "20231121121325",
        "TransAmount": amount,
        "BusinessShortCode": C2B_SHORTCODE,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "NICHOLAS",
        "MiddleName": "",
        "LastName": "",
    }
    body.update(overrides)
    return body


def assert_nothing_credited() -> None:
    assert Donation.objects.count() == 0
    assert Payment.objects.count() == 0
    assert Allocation.objects.count() == 0


def assert_flagged(donation: Donation, *, error_contains: str) -> CallbackEvent:
    """The donation and its payment are flagged, and the delivery's event says why."""
    assert donation.status == Donation.Status.COMPLETED
    assert donation.needs_review
    payment = donation.payments.get()
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_review
    event = CallbackEvent.objects.get(payment=payment)
    assert event.status == CallbackEvent.Status.REVIEW
    assert error_contains in event.error
    return event


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bill_ref", ["PAT-KE-07", "pat-ke-07", "  PAT-KE-07 ", "PAT-KE -07"])
def test_validation_accepts_a_patient_code_case_and_spaces_ignored(patient, bill_ref):
    assert post(VALIDATION, c2b_body(bill_ref=bill_ref)) == (200, ACCEPT)


def test_validation_accepts_a_donation_reference(patient):
    donation = DonationFactory(patient=patient, currency="KES", amount=Decimal("500"))
    assert post(VALIDATION, c2b_body(bill_ref=donation.reference.lower())) == (200, ACCEPT)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"BillRefNumber": "NOPE-123"}, "C2B00012"),
        ({"BillRefNumber": ""}, "C2B00012"),
        ({"TransAmount": "5.00"}, "C2B00013"),  # below the KES minimum donation
        ({"TransAmount": "250001.00"}, "C2B00013"),
        ({"BusinessShortCode": "600000"}, "C2B00015"),
    ],
)
def test_validation_rejects_with_the_right_code(patient, overrides, code):
    status, body = post(VALIDATION, c2b_body(**overrides))
    assert status == 200
    assert body == {"ResultCode": code, "ResultDesc": "Rejected"}


def test_validation_rejects_a_patient_in_another_currency():
    PatientFactory(code="PAT-TZ-01", currency="TZS")
    assert post(VALIDATION, c2b_body(bill_ref="PAT-TZ-01"))[1]["ResultCode"] == "C2B00012"


@pytest.mark.parametrize("path", [VALIDATION, CONFIRMATION])
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        json.dumps({k: v for k, v in c2b_body().items() if k != "TransID"}).encode(),
        json.dumps(c2b_body(TransID="")).encode(),
        json.dumps(c2b_body(TransAmount="lots")).encode(),
        json.dumps(c2b_body(TransAmount=None)).encode(),
        json.dumps(c2b_body(TransAmount=True)).encode(),
        json.dumps(c2b_body(BillRefNumber=["PAT-KE-07"])).encode(),
        json.dumps({k: v for k, v in c2b_body().items() if k != "BillRefNumber"}).encode(),
        json.dumps(c2b_body(TransTime={"when": "now"})).encode(),
    ],
)
def test_missing_or_wrong_typed_fields_are_a_clear_400_and_stored(patient, path, body):
    status, answer = post(path, body)
    assert status == 400
    assert answer["code"] == "INVALID_FORMAT" and answer["message"]
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert Allocation.objects.count() == 0


def test_wrong_token_is_401(patient):
    status, answer = post("/webhooks/mpesa/c2b/confirmation/wrong/", c2b_body())
    assert status == 401 and answer["code"] == "AUTH_REQUIRED"
    assert Donation.objects.count() == 0


# --- confirmation ----------------------------------------------------------------------------------------


def test_confirmation_creates_a_completed_donation_for_the_patient(patient):
    assert post(CONFIRMATION, c2b_body(bill_ref="pat-ke-07")) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED
    assert donation.patient == patient and donation.amount == Decimal("500.00") and donation.currency == "KES"
    assert donation.donor.name == "NICHOLAS"
    payment = Payment.objects.get()
    # A masked (or, since 2024, hashed) MSISDN is not a phone number: kept as the payer's reference only.
    assert donation.donor.phone == "" and payment.msisdn == ""
    assert payment.payer_reference == "2547 ***** 126"
    assert payment.provider == "mpesa" and payment.channel == "c2b"
    assert payment.provider_reference == "RKL51ZDR4F" and payment.receipt == "RKL51ZDR4F"
    assert payment.status == Payment.Status.SUCCEEDED
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED


def test_duplicate_confirmation_is_credited_once(patient):
    body = c2b_body()
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, body) == (200, ACK)  # the same bytes
    assert post(CONFIRMATION, json.dumps(body, indent=2).encode()) == (200, ACK)  # the same TransID
    assert Donation.objects.count() == 1
    assert Allocation.objects.count() == 1
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")


def test_confirmation_without_the_token_is_held_for_review(patient):
    assert post("/webhooks/mpesa/c2b/confirmation/", c2b_body()) == (200, ACK)
    assert Donation.objects.count() == 0
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_confirmation_for_an_unknown_account_goes_to_the_general_fund_for_review(patient):
    assert post(CONFIRMATION, c2b_body(bill_ref="WHO-KNOWS")) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.patient is None and donation.status == Donation.Status.COMPLETED
    assert donation.needs_review
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_confirmation_naming_a_pending_donation_completes_it(patient):
    donation = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    assert post(CONFIRMATION, c2b_body(bill_ref=donation.reference)) == (200, ACK)
    donation.refresh_from_db()
    assert donation.status == Donation.Status.COMPLETED
    assert Donation.objects.count() == 1


def test_neutral_paybill_paths(patient):
    assert post(f"/webhooks/paybill/validation/{C2B_TOKEN}", c2b_body()) == (200, ACCEPT)
    assert post(f"/webhooks/paybill/confirmation/{C2B_TOKEN}", c2b_body()) == (200, ACK)
    assert Donation.objects.get().status == Donation.Status.COMPLETED


# --- 2024+ payloads: the payer as a hash ------------------------------------------------------------------


def test_the_hashed_msisdn_fixture_is_a_64_character_hex_hash():
    msisdn = fixture(HASHED)["MSISDN"]
    assert len(msisdn) == 64 and all(ch in "0123456789abcdef" for ch in msisdn)


@pytest.mark.parametrize("path", [CONFIRMATION, PAYBILL_CONFIRMATION])
def test_confirmation_with_a_hashed_msisdn_is_credited_once_and_the_hash_is_only_a_payer_reference(patient, path):
    body = fixture(HASHED)
    assert post(path, body) == (200, ACK)
    assert post(path, body) == (200, ACK)  # the same bytes again
    assert post(path, json.dumps(body, indent=2).encode()) == (200, ACK)  # the same TransID, other bytes
    payment = Payment.objects.get()
    assert payment.payer_reference == body["MSISDN"]
    assert payment.msisdn == ""
    assert payment.provider_reference == "TL7QW2XK9P" and payment.receipt == "TL7QW2XK9P"
    assert payment.amount == Decimal("1500.00") and not payment.needs_review
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    assert donation.donor.phone == "" and donation.donor.name == "JOHN"
    assert not donation.needs_review
    assert Allocation.objects.get().amount == Decimal("1500.00")
    assert credited(patient) == Decimal("1500.00")
    statuses = sorted(CallbackEvent.objects.values_list("status", flat=True))
    assert statuses == ["duplicate", "ignored", "processed"]


def test_confirmation_with_a_phone_number_in_clear_keeps_it_as_the_phone(patient):
    """The contrast: an older payload (or the sandbox) with a real Kenyan number in MSISDN."""
    assert post(CONFIRMATION, c2b_body(MSISDN="254708374149")) == (200, ACK)
    payment = Payment.objects.get()
    assert payment.msisdn == "254708374149" and payment.payer_reference == ""
    assert Donation.objects.get().donor.phone == "254708374149"


# --- amounts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["5.00", "9.99", "250000.01", "300000.00"])
def test_confirmation_outside_the_donation_limits_is_credited_to_the_patient_and_flagged(patient, amount):
    assert post(CONFIRMATION, c2b_body(amount=amount)) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.patient == patient and donation.amount == Decimal(amount)
    assert_flagged(donation, error_contains="outside the donation limits")
    assert credited(patient) == Decimal(amount)
    assert Allocation.objects.get().amount == Decimal(amount)


@pytest.mark.parametrize("amount", ["10.00", "250000.00"])
def test_confirmation_at_the_donation_limits_is_credited_without_review(patient, amount):
    assert post(CONFIRMATION, c2b_body(amount=amount)) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and not donation.needs_review
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(patient) == Decimal(amount)


@pytest.mark.parametrize(
    ("paid", "recorded"),
    [("100.505", "100.50"), ("100.509", "100.50"), ("99.999", "99.99"), ("1500.0001", "1500.00")],
)
def test_odd_decimals_are_recorded_in_cents_never_more_than_paid_and_flagged(patient, paid, recorded):
    assert post(CONFIRMATION, c2b_body(amount=paid)) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.amount == Decimal(recorded) and donation.patient == patient
    assert donation.payments.get().amount == Decimal(recorded)
    event = assert_flagged(donation, error_contains=f"paid {paid}")
    assert recorded in event.error
    assert credited(patient) == Decimal(recorded)
    assert Decimal(recorded) <= Decimal(paid)


@pytest.mark.parametrize("amount", ["1e20", "1E+999999", "10000000000", "0.001", "0.009"])
def test_an_amount_the_ledger_cannot_hold_is_kept_for_review_and_not_credited(patient, amount):
    assert post(CONFIRMATION, c2b_body(amount=amount)) == (200, ACK)
    assert_nothing_credited()
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert "cannot be recorded as money" in event.error
    assert event.provider_reference == "RKL51ZDR4F"
    assert credited(patient) == 0


@pytest.mark.parametrize("amount", ["-5", "-5.00", "0", "0.00", "NaN", "Infinity", "-Infinity", "1e", "5 KES"])
def test_a_non_positive_or_non_numeric_amount_is_a_400_and_the_event_is_kept(patient, amount):
    status, answer = post(CONFIRMATION, c2b_body(amount=amount))
    assert status == 400
    assert answer["code"] == "INVALID_FORMAT"
    assert "amount" in answer["message"].lower()
    assert_nothing_credited()
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert credited(patient) == 0


@pytest.mark.parametrize("amount", [1500, 1500.5])
def test_a_numeric_trans_amount_is_read_as_money(patient, amount):
    assert post(CONFIRMATION, c2b_body(amount=amount)) == (200, ACK)
    assert credited(patient) == Decimal(str(amount))


# --- where the money goes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bill_ref", ["WHO-KNOWS", "", "   ", "PAT-KE-0"])
def test_confirmation_for_an_unknown_account_is_credited_to_the_general_fund_and_flagged(patient, bill_ref):
    assert post(CONFIRMATION, c2b_body(bill_ref=bill_ref)) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.patient is None and donation.amount == Decimal("500.00") and donation.currency == "KES"
    assert_flagged(donation, error_contains="unknown account")
    allocation = Allocation.objects.get()
    assert allocation.patient is None and allocation.target == Allocation.GENERAL_FUND
    assert credited(patient) == 0


def test_confirmation_naming_a_completed_donation_is_a_new_flagged_donation_for_its_patient(patient):
    old = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"), status=Donation.Status.COMPLETED)
    before = Donation.objects.values().get(pk=old.pk)
    assert post(CONFIRMATION, c2b_body(bill_ref=old.reference)) == (200, ACK)
    new = Donation.objects.exclude(pk=old.pk).get()
    assert new.patient == patient and new.amount == Decimal("500.00")
    assert_flagged(new, error_contains=f"names donation {old.reference}")
    assert Donation.objects.values().get(pk=old.pk) == before  # untouched
    assert not old.payments.exists() and not old.allocations.exists()
    assert credited(patient) == Decimal("500.00")


def test_confirmation_naming_a_pending_donation_of_another_amount_is_a_new_flagged_donation(patient):
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("1000.00"))
    assert post(CONFIRMATION, c2b_body(bill_ref=pending.reference, amount="500.00")) == (200, ACK)
    pending.refresh_from_db()
    assert pending.status == Donation.Status.PENDING and pending.amount == Decimal("1000.00")
    assert not pending.needs_review and not pending.payments.exists()
    new = Donation.objects.exclude(pk=pending.pk).get()
    assert new.patient == patient and new.amount == Decimal("500.00")
    assert_flagged(new, error_contains=f"names donation {pending.reference}")
    assert credited(patient) == Decimal("500.00")


def test_confirmation_naming_a_pending_donation_of_the_same_amount_completes_it_without_review(patient):
    """The contrast: the one case where a named donation is the one credited."""
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    assert post(CONFIRMATION, c2b_body(bill_ref=f" {pending.reference.lower()} ")) == (200, ACK)
    pending.refresh_from_db()
    assert pending.status == Donation.Status.COMPLETED and not pending.needs_review
    assert Donation.objects.count() == 1
    assert pending.payments.get().reference == pending.reference
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert credited(patient) == Decimal("500.00")


def test_a_resend_of_a_confirmation_that_completed_a_named_donation_is_ignored_not_a_new_donation(patient):
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    body = c2b_body(bill_ref=pending.reference)
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, json.dumps(body, indent=2).encode()) == (200, ACK)  # same TransID, other bytes
    assert Donation.objects.count() == 1 and Payment.objects.count() == 1
    assert CallbackEvent.objects.order_by("pk").last().status == CallbackEvent.Status.IGNORED
    assert credited(patient) == Decimal("500.00")


@pytest.mark.parametrize(
    "patient_state",
    [
        {"status": Patient.Status.FULLY_FUNDED},
        {"status": Patient.Status.IN_TREATMENT},
        {"published": False},
        {"currency": "TZS"},
    ],
    ids=["fully-funded", "in-treatment", "unpublished", "funded-in-TZS"],
)
def test_confirmation_for_a_patient_who_cannot_take_it_goes_to_the_general_fund_flagged(patient_state):
    patient = PatientFactory(
        code="PAT-KE-07", **{"currency": "KES", "funding_goal": Decimal("100000"), **patient_state}
    )
    assert post(CONFIRMATION, c2b_body(bill_ref="PAT-KE-07")) == (200, ACK)
    donation = Donation.objects.get()
    assert donation.patient is None and donation.currency == "KES"
    assert donation.needs_review and donation.status == Donation.Status.COMPLETED
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and event.error
    assert Allocation.objects.get().target == Allocation.GENERAL_FUND
    assert credited(patient) == 0


def test_confirmation_naming_a_pending_donation_of_a_patient_in_another_currency_goes_to_the_general_fund():
    tz_patient = PatientFactory(code="PAT-TZ-01", currency="TZS")
    pending = DonationFactory(patient=tz_patient, currency="TZS", amount=Decimal("500.00"))
    assert post(CONFIRMATION, c2b_body(bill_ref=pending.reference, amount="500.00")) == (200, ACK)
    pending.refresh_from_db()
    assert pending.status == Donation.Status.PENDING
    new = Donation.objects.exclude(pk=pending.pk).get()
    assert new.patient is None and new.currency == "KES"
    assert_flagged(new, error_contains="TZS")
    assert credited(tz_patient) == 0


# --- over-long provider values (SQLite keeps them: the columns' lengths are checked here) -------------------


def test_over_long_provider_values_are_fitted_to_their_columns(patient):
    body = c2b_body(bill_ref="X" * 300, FirstName="A" * 500, trans_id="T" * 150, MSISDN="f" * 200)
    assert post(CONFIRMATION, body) == (200, ACK)
    payment = Payment.objects.get()
    assert payment.provider_reference == "T" * 100
    assert payment.payer_reference == "f" * 128 and payment.msisdn == ""
    donation = payment.donation
    assert donation.patient is None and donation.needs_review
    assert donation.donor.name == "A" * 200 and donation.donor.phone == ""
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert event.our_reference == "X" * 64 and event.provider_reference == "T" * 100


def test_a_resent_confirmation_with_an_over_long_trans_id_is_recognised_as_already_recorded(patient):
    body = c2b_body(trans_id="T" * 150)
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, json.dumps(body, indent=2).encode()) == (200, ACK)
    assert Payment.objects.count() == 1
    assert credited(patient) == Decimal("500.00")
    resend = CallbackEvent.objects.order_by("pk").last()
    assert resend.status == CallbackEvent.Status.IGNORED


# --- trust ------------------------------------------------------------------------------------------------


def test_with_trusted_callbacks_off_a_confirmation_on_the_token_url_is_held_for_review(patient, settings):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert post(CONFIRMATION, fixture(HASHED)) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    assert_nothing_credited()
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert "PAYMENTS_APPLY_TRUSTED_CALLBACKS" in event.error
    assert event.provider_reference == "TL7QW2XK9P"
    assert credited(patient) == 0


def test_a_held_confirmation_replayed_once_trusted_callbacks_are_back_on_is_credited_once(patient, settings):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    assert post(CONFIRMATION, fixture(HASHED)) == (200, ACK)
    event = CallbackEvent.objects.get()
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = True
    call_command("replay_callbacks", "--id", str(event.pk), stdout=StringIO())
    call_command("replay_callbacks", "--id", str(event.pk), stdout=StringIO())
    assert Payment.objects.get().payer_reference == fixture(HASHED)["MSISDN"]
    assert credited(patient) == Decimal("1500.00")
    assert Allocation.objects.count() == 1


# --- the inbox: a worker that died, replays -----------------------------------------------------------------


def record(body: bytes) -> CallbackEvent:
    """What the webhook stores before handling; not handled (the worker handling it is killed)."""
    return callback_record(
        provider_code="mpesa",
        kind="c2b_confirmation",
        body=body,
        headers={},
        client_ip=SAFARICOM_IP,
        url_token=C2B_TOKEN,
    )


def test_a_confirmation_whose_worker_died_is_credited_once_by_the_resend_and_the_sweep_ignores_it(patient):
    body = encode(fixture(HASHED))
    original = record(body)  # stored, then the worker was killed before handling it
    assert original.status == CallbackEvent.Status.RECEIVED
    assert_nothing_credited()

    assert post(CONFIRMATION, body) == (200, ACK)  # Safaricom resends the same bytes
    resend = CallbackEvent.objects.exclude(pk=original.pk).get()
    assert resend.duplicate_of_id == original.pk
    assert resend.status == CallbackEvent.Status.PROCESSED  # handled, not answered "duplicate"
    payment = Payment.objects.get()
    assert credited(patient) == Decimal("1500.00")

    report = payments_reconcile(older_than=timedelta(0))
    assert report.replayed >= 1
    original.refresh_from_db()
    assert original.status == CallbackEvent.Status.IGNORED
    assert original.payment_id == payment.pk
    assert Payment.objects.count() == 1 and Allocation.objects.count() == 1
    assert credited(patient) == Decimal("1500.00")


def test_a_resend_of_a_settled_confirmation_is_answered_as_a_duplicate(patient):
    """The contrast: once the original settled, the same bytes are a duplicate and not handled again."""
    body = encode(fixture(HASHED))
    assert post(CONFIRMATION, body) == (200, ACK)
    assert post(CONFIRMATION, body) == (200, ACK)
    resend = CallbackEvent.objects.order_by("pk").last()
    assert resend.status == CallbackEvent.Status.DUPLICATE
    assert credited(patient) == Decimal("1500.00")


def test_replaying_a_stored_c2b_confirmation_by_id_credits_it_once(patient):
    event = record(encode(fixture(HASHED)))
    out = StringIO()
    call_command("replay_callbacks", "--id", str(event.pk), stdout=out)
    assert "accepted" in out.getvalue()
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
    payment = Payment.objects.get()
    assert event.payment_id == payment.pk and payment.status == Payment.Status.SUCCEEDED
    assert credited(patient) == Decimal("1500.00")

    call_command("replay_callbacks", "--id", str(event.pk), stdout=StringIO())  # again: nothing more
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.IGNORED
    assert Payment.objects.count() == 1 and Allocation.objects.count() == 1
    assert credited(patient) == Decimal("1500.00")


def test_a_dry_run_replay_of_a_c2b_confirmation_credits_nothing(patient):
    event = record(encode(fixture(HASHED)))
    out = StringIO()
    call_command("replay_callbacks", "--id", str(event.pk), "--dry-run", stdout=out)
    assert "would be accepted" in out.getvalue()
    assert_nothing_credited()
    assert credited(patient) == 0
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.RECEIVED


def test_replaying_a_c2b_validation_event_answers_it_and_credits_nothing(patient):
    event = callback_record(
        provider_code="mpesa",
        kind="c2b_validation",
        body=encode(c2b_body()),
        headers={},
        client_ip=SAFARICOM_IP,
        url_token=C2B_TOKEN,
    )
    call_command("replay_callbacks", "--id", str(event.pk), stdout=StringIO())
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED


# --- registration --------------------------------------------------------------------------------------


def test_register_command_sends_the_token_urls(daraja):
    daraja.post(
        C2B_REGISTER_URL,
        json={"OriginatorCoversationID": "x", "ResponseCode": "0", "ResponseDescription": "Success"},
    )
    out = StringIO()
    call_command("mpesa_register_c2b", stdout=out)
    sent = json.loads(daraja.calls[1].request.body)
    assert sent == {
        "ShortCode": C2B_SHORTCODE,
        "ResponseType": "Completed",
        "ConfirmationURL": f"{SITE_URL}/webhooks/paybill/confirmation/{C2B_TOKEN}/",
        "ValidationURL": f"{SITE_URL}/webhooks/paybill/validation/{C2B_TOKEN}/",
    }
    assert C2B_TOKEN not in out.getvalue()
    assert "Registered" in out.getvalue()


def test_register_command_refuses_urls_daraja_refuses():
    with pytest.raises(CommandError, match="mpesa"):
        call_command("mpesa_register_c2b", "--confirmation-url", "https://x.example/mpesa/c", "--dry-run")


def test_register_command_needs_a_token(settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["c2b_token"] = ""
    with pytest.raises(CommandError, match="MPESA_C2B_TOKEN"):
        call_command("mpesa_register_c2b", "--dry-run")


def test_a_held_confirmation_is_credited_once_by_a_person_with_the_permission(patient, settings, client):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False  # no callback credits on its own word
    assert post(CONFIRMATION, c2b_body()) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and not Donation.objects.exists()

    clerk = staff_user("clerk", "payments.view_callbackevent")
    client.force_login(clerk)
    page = client.get("/admin/payments/callbackevent/").content
    assert b"accept_held_paybill" not in page  # not offered without the permission
    client.post("/admin/payments/callbackevent/", {"action": "accept_held_paybill", "_selected_action": [event.pk]})
    assert not Donation.objects.exists()

    finance = staff_user("finance", "payments.view_callbackevent", "payments.accept_held_callbackevent")
    client.force_login(finance)
    for _ in range(2):  # the second time it is no longer held
        client.post("/admin/payments/callbackevent/", {"action": "accept_held_paybill", "_selected_action": [event.pk]})
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.PROCESSED
