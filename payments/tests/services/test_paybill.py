"""Paybill (M-Pesa C2B): validation, and confirmations (money that already moved) always recorded, credited by
a clear rule or flagged for review, never a 500 (the rules: payments/services/paybill.py); URL registration.
On MariaDB strict mode refuses a value longer than its column (SQLite keeps it), and the `mariadb` parameters send
deliveries at once, so InnoDB's row locks keep a donation completed once. `daraja` fails any call out but the token.
"""

import json
import re
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
from payments.tests.drivers import THREADS, encode
from payments.tests.factories import staff_user
from payments.tests.helpers import credited, post, poster, run_together
from payments.tests.mpesa_fakes import ACCEPT, ACK, C2B_REGISTER_URL, C2B_SHORTCODE, C2B_TOKEN, SITE_URL, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings", "paybill_rules", "daraja")]
ON_MARIADB = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]
BOTH = [pytest.param(False, id="here"), pytest.param(True, marks=ON_MARIADB, id="mariadb")]

HASHED = "c2b_confirmation_hashed_msisdn.json"
VALIDATION = f"/webhooks/mpesa/c2b/validation/{C2B_TOKEN}/"
CONFIRMATION = f"/webhooks/mpesa/c2b/confirmation/{C2B_TOKEN}/"
PAYBILL_CONFIRMATION = f"/webhooks/paybill/confirmation/{C2B_TOKEN}/"
SAFARICOM_IP = "196.201.214.200"
E = CallbackEvent.Status


@pytest.fixture
def patient():
    return PatientFactory(code="PAT-KE-07", currency="KES", funding_goal=Decimal("100000"))


def c2b_body(bill_ref="PAT-KE-07", amount="500.00", trans_id="RKL51ZDR4F", **overrides) -> dict:
    """Daraja's C2B v2 body with the masked MSISDN of 2022–2024 (fixtures/mpesa has the 2024+ hashed one)."""
    return fixture(HASHED) | {"TransID": trans_id, "TransTime": "20231121121325", "TransAmount": amount,
                              "BillRefNumber": bill_ref, "MSISDN": "2547 ***** 126", "FirstName": "NICHOLAS",
                              **overrides}  # fmt: skip


def encodings(body: dict, kinds: int = THREADS) -> list[bytes]:
    """THREADS copies of the body in `kinds` encodings: the same TransID in other bytes."""
    return [encode(body, i % kinds) for i in range(THREADS)]


def assert_flagged(donation: Donation, *, error_contains: str) -> CallbackEvent:
    """The donation and its payment are flagged, and the delivery's event says why."""
    assert donation.status == Donation.Status.COMPLETED and donation.needs_review
    payment = donation.payments.get()
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_review
    event = CallbackEvent.objects.get(payment=payment)
    assert event.status == E.REVIEW and error_contains in event.error
    return event


# --- validation ------------------------------------------------------------------------------------------


VALIDATIONS = [  # the body's changes → the code it is rejected with ("": accepted)
    *[({"BillRefNumber": ref}, "") for ref in ("PAT-KE-07", "pat-ke-07", "  PAT-KE-07 ", "PAT-KE -07", "donation")],
    ({"BillRefNumber": "NOPE-123"}, "C2B00012"),
    ({"BillRefNumber": ""}, "C2B00012"),
    ({"BillRefNumber": "PAT-TZ-01"}, "C2B00012"),  # a patient funded in another currency
    ({"TransAmount": "5.00"}, "C2B00013"),  # below the KES minimum donation
    ({"TransAmount": "250001.00"}, "C2B00013"),
    ({"BusinessShortCode": "600000"}, "C2B00015"),
]


@pytest.mark.parametrize("path", [VALIDATION, f"/webhooks/paybill/validation/{C2B_TOKEN}"], ids=["mpesa", "paybill"])
@pytest.mark.parametrize(("overrides", "code"), VALIDATIONS)
def test_validation_accepts_a_patient_code_or_donation_reference_case_and_spaces_ignored_else_rejects_with_its_code(
    patient, path, overrides, code
):
    PatientFactory(code="PAT-TZ-01", currency="TZS")
    if overrides.get("BillRefNumber") == "donation":
        donation = DonationFactory(patient=patient, currency="KES", amount=Decimal("500"))
        overrides = {"BillRefNumber": donation.reference.lower()}
    answer = {"ResultCode": code, "ResultDesc": "Rejected"} if code else ACCEPT
    assert post(path, c2b_body(**overrides)) == (200, answer)


MALFORMED = [b"not json", b"[1]", encode(c2b_body(TransID=""))]
MALFORMED += [encode({k: v for k, v in c2b_body().items() if k != field}) for field in ("TransID", "BillRefNumber")]
MALFORMED += [encode(c2b_body(TransAmount=amount)) for amount in ("lots", None, True)]
MALFORMED += [encode(c2b_body(BillRefNumber=["PAT-KE-07"])), encode(c2b_body(TransTime={"when": "now"}))]


@pytest.mark.parametrize("path", [VALIDATION, CONFIRMATION])
@pytest.mark.parametrize("body", MALFORMED)
def test_missing_or_wrong_typed_fields_are_a_clear_400_and_stored(patient, path, body):
    status, answer = post(path, body)
    assert status == 400 and answer["code"] == "INVALID_FORMAT" and answer["message"]
    event = CallbackEvent.objects.get()
    assert event.status == E.REJECTED and "malformed" in event.error
    assert Allocation.objects.count() == 0


# --- confirmations: one by one, or at once on MariaDB -----------------------------------------------------


def naming_a_pending_donation(patient, many_trans_ids: bool = False) -> list[bytes]:
    """One TransID: at once, the losers find the donation completed, start a new one, meet the unique TransID and
    roll it all back; the account as typed, in lower case and spaced. Many: half name the patient's code, half its
    pending donation: at once, locks taken in different orders must not lose a payment (deadlocks are retried)."""
    pending = DonationFactory(patient=patient, currency="KES", amount=Decimal("500.00"))
    if not many_trans_ids:
        return encodings(c2b_body(bill_ref=f" {pending.reference.lower()} "))
    accounts = ["PAT-KE-07", pending.reference]
    return [encode(c2b_body(bill_ref=accounts[i % 2], trans_id=f"TL7QW2X{i:03d}")) for i in range(THREADS)]


# THREADS bodies and the URL they come to → how many of them are flagged new donations.
CONFIRMATIONS = {
    "hashed-same-bytes": (lambda patient: [encode(fixture(HASHED))] * THREADS, CONFIRMATION, 0),
    "hashed-re-encoded": (lambda patient: encodings(fixture(HASHED)), PAYBILL_CONFIRMATION, 0),
    "masked-mixed": (lambda patient: encodings(c2b_body(bill_ref="pat-ke-07"), 3), PAYBILL_CONFIRMATION.rstrip("/"), 0),
    "in-clear-mixed": (lambda patient: encodings(c2b_body(MSISDN="254708374149"), 2), CONFIRMATION, 0),
    "naming-a-pending-donation": (naming_a_pending_donation, CONFIRMATION, 0),
    # One of those naming the donation completes it; the others are new donations, flagged.
    "many-trans-ids": (lambda patient: naming_a_pending_donation(patient, True), CONFIRMATION, THREADS // 2 - 1),
}


@pytest.mark.parametrize("at_once", BOTH)
@pytest.mark.parametrize("copies", CONFIRMATIONS)
def test_confirmations_one_by_one_or_at_once_are_completed_donations_credited_once_per_trans_id(
    patient, copies, at_once
):
    # Daraja's MSISDN since 2024 is a hex hash; masked (2022-2024) or hashed, it is no phone number.
    assert re.fullmatch("[0-9a-f]{64}", fixture(HASHED)["MSISDN"])
    make, path, flagged = CONFIRMATIONS[copies]
    bodies = make(patient)
    posts = [poster(path, body) for body in bodies]
    assert (run_together(posts) if at_once else [send() for send in posts]) == [(200, ACK)] * THREADS
    sent = {body["TransID"]: body for body in map(json.loads, bodies)}  # one per TransID
    accounts = {body["BillRefNumber"].strip().upper() for body in sent.values()}
    named = Donation.objects.filter(reference__in=accounts)  # the pending one, completed by its payment
    payments = Payment.objects.order_by("provider_reference")
    assert [payment.provider_reference for payment in payments] == sorted(sent)
    for payment in payments:
        body, donation = sent[payment.provider_reference], payment.donation
        phone = body["MSISDN"] if body["MSISDN"].isdigit() else ""
        assert (payment.msisdn, payment.payer_reference) == (phone, "" if phone else body["MSISDN"])
        assert (payment.provider, payment.channel, payment.receipt) == ("mpesa", "c2b", payment.provider_reference)
        assert payment.status == Payment.Status.SUCCEEDED and payment.reference == donation.reference
        assert (donation.patient, donation.amount, donation.currency) == (patient, Decimal(body["TransAmount"]), "KES")
        assert donation.status == Donation.Status.COMPLETED and donation.needs_review == payment.needs_review
        assert donation in named or (donation.donor.name, donation.donor.phone) == (body["FirstName"], phone)
    # No half-made donation left by a rolled-back loser.
    assert Donation.objects.count() == Allocation.objects.count() == len(sent)
    assert credited(patient) == sum(Decimal(body["TransAmount"]) for body in sent.values())
    assert Donation.objects.filter(needs_review=True).count() == flagged
    events = list(CallbackEvent.objects.values_list("status", flat=True))
    assert len(events) == THREADS and set(events) <= {E.PROCESSED, E.IGNORED, E.DUPLICATE, E.REVIEW}, events
    assert (events.count(E.PROCESSED), events.count(E.REVIEW)) == (len(sent) - flagged, flagged), events
    # Another encoding of a TransID seen before is handled and ignored, never swallowed as a duplicate; one by
    # one, every copy of bytes seen before is a duplicate.
    encoded_again = len(set(bodies)) - len(sent)
    assert events.count(E.IGNORED) == encoded_again or (at_once and events.count(E.IGNORED) > encoded_again), events
    assert all(not pending.needs_review and not pending.payments.get().needs_review for pending in named)
    for event in CallbackEvent.objects.filter(status=E.REVIEW):
        assert event.error.startswith(f"names donation {named.get().reference}")
        assert event.payment.needs_review and event.payment.status == Payment.Status.SUCCEEDED
    call_command("verify_ledger")  # CommandError (the test fails) on any drift


# --- amounts ----------------------------------------------------------------------------------------------


OUTSIDE_LIMITS, CANNOT_HOLD = "outside the donation limits", "cannot be recorded as money"
# The amount paid → what is recorded (None: nothing), the event, why (for a review).
AMOUNTS = [
    *[(paid, paid, E.REVIEW, OUTSIDE_LIMITS) for paid in ("5.00", "9.99", "250000.01", "300000.00")],
    *[(paid, str(paid), E.PROCESSED, "") for paid in ("10.00", "250000.00", 1500, 1500.5)],  # the limits, a number
    # Odd decimals: recorded in cents, never more than paid, and flagged.
    *[(paid, cents, E.REVIEW, f"paid {paid}") for paid, cents in
      [("100.505", "100.50"), ("100.509", "100.50"), ("99.999", "99.99"), ("1500.0001", "1500.00")]],
    *[(paid, None, E.REVIEW, CANNOT_HOLD) for paid in ("1e20", "1E+999999", "10000000000", "0.001", "0.009")],
    *[(paid, None, E.REJECTED, "malformed")
      for paid in ("-5", "-5.00", "0", "0.00", "NaN", "Infinity", "-Infinity", "1e", "5 KES")],  # a 400
]  # fmt: skip


@pytest.mark.parametrize(("paid", "recorded", "event", "reason"), AMOUNTS, ids=[str(row[0]) for row in AMOUNTS])
def test_a_confirmations_amount_is_credited_flagged_held_or_refused(patient, paid, recorded, event, reason):
    status, answer = post(CONFIRMATION, c2b_body(amount=paid))
    if event == E.REJECTED:
        assert status == 400 and answer["code"] == "INVALID_FORMAT" and "amount" in answer["message"].lower()
    else:
        assert (status, answer) == (200, ACK)
    stored = CallbackEvent.objects.get()
    assert stored.status == event and reason in stored.error
    assert credited(patient) == Decimal(recorded or 0)
    if recorded is None:
        assert Donation.objects.count() == Payment.objects.count() == Allocation.objects.count() == 0
        assert event == E.REJECTED or stored.provider_reference == "RKL51ZDR4F"  # held: findable by its TransID
        return
    donation = Donation.objects.get()
    assert donation.patient == patient and donation.amount == Decimal(recorded) <= Decimal(str(paid))
    assert donation.payments.get().amount == Allocation.objects.get().amount == Decimal(recorded)
    if event == E.REVIEW:
        assert recorded in assert_flagged(donation, error_contains=reason).error
    else:
        assert donation.status == Donation.Status.COMPLETED and not donation.needs_review


# --- where the money goes -----------------------------------------------------------------------------------


GENERAL_FUND = "credited to the general fund"
NAMED = "names donation {reference}"
DONATION = "a donation's reference"  # the payer typed the reference of one of ours, made with the row's changes
# How the account is written and the changes to its patient (or donation) → whether the patient gets the money
# (else the general fund), and why it is flagged.
ACCOUNTS = {
    "unknown": ("WHO-KNOWS", {}, False, "unknown account"),
    "empty": ("", {}, False, "unknown account"),
    "blank": ("   ", {}, False, "unknown account"),
    "a-code-prefix": ("PAT-KE-0", {}, False, "unknown account"),
    "a-completed-donation": (DONATION, {"status": Donation.Status.COMPLETED}, True, NAMED),
    "a-pending-donation-of-another-amount": (DONATION, {"amount": Decimal("1000.00")}, True, NAMED),
    "a-pending-donation-in-another-currency": (DONATION, {"currency": "TZS"}, False, "TZS"),
    "a-fully-funded-patient": ("PAT-KE-07", {"status": Patient.Status.FULLY_FUNDED}, False, GENERAL_FUND),
    "a-patient-in-treatment": ("PAT-KE-07", {"status": Patient.Status.IN_TREATMENT}, False, GENERAL_FUND),
    "an-unpublished-patient": ("PAT-KE-07", {"published": False}, False, GENERAL_FUND),
    "a-patient-funded-in-TZS": ("PAT-KE-07", {"currency": "TZS"}, False, GENERAL_FUND),
    "a-total-that-would-overflow": ("PAT-KE-07", {"funding_received": Decimal("9999999999.50")}, False, "cannot hold"),
}


@pytest.mark.parametrize("_", BOTH)
@pytest.mark.parametrize(("bill_ref", "changes", "to_the_patient", "reason"), ACCOUNTS.values(), ids=ACCOUNTS)
def test_a_confirmation_its_account_cannot_take_as_written_is_a_new_flagged_donation(
    patient, bill_ref, changes, to_the_patient, reason, _
):
    """For the account's patient when it has one who can take it, else for the general fund; a donation it names
    is left as it was (only a pending one of the same amount is completed: CONFIRMATIONS)."""
    named = None
    if bill_ref == DONATION:
        fields = {"patient": patient, "currency": "KES", "amount": Decimal("500.00"), **changes}
        if "currency" in changes:  # a pending donation to a patient funded in TZS
            fields["patient"] = PatientFactory(code="PAT-TZ-01", currency="TZS")
        named = DonationFactory(**fields)
        bill_ref = named.reference
    else:
        Patient.objects.filter(pk=patient.pk).update(**changes)
    named_before = Donation.objects.values().get(pk=named.pk) if named else None
    assert post(CONFIRMATION, c2b_body(bill_ref=bill_ref)) == (200, ACK)

    new = Donation.objects.exclude(pk__in=[named.pk] if named else []).get()
    assert new.amount == Decimal("500.00") and new.currency == "KES"
    assert new.patient == (patient if to_the_patient else None)
    assert_flagged(new, error_contains=reason.format(reference=getattr(named, "reference", "")))
    allocation = Allocation.objects.get()
    assert (allocation.patient, allocation.target) == (new.patient, Allocation.target_for(new.patient))
    assert credited(patient) == changes.get("funding_received", 0) + (Decimal("500.00") if to_the_patient else 0)
    if named:
        assert Donation.objects.values().get(pk=named.pk) == named_before  # untouched
        assert not named.payments.exists() and not named.allocations.exists()
        assert credited(named.patient) == (Decimal("500.00") if to_the_patient else 0)


# --- over-long provider values: fitted to their columns (SQLite keeps them; MariaDB's strict mode refuses) ---


OVER_LONG = c2b_body(bill_ref="B" * 300, trans_id="T" * 150, MSISDN="e" * 300, FirstName="F" * 500,
                     MiddleName="M" * 500, LastName="L" * 500, InvoiceNumber="I" * 300,
                     ThirdPartyTransID="P" * 300)  # fmt: skip


@pytest.mark.parametrize("_", BOTH)
@pytest.mark.parametrize("trusted", [True, False], ids=["credited", "held"])
def test_over_long_provider_values_are_fitted_to_their_columns_credited_held_or_validated_and_a_resend_is_recognised(
    patient, settings, trusted, _
):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = trusted  # off: the confirmation is held for review
    assert post(VALIDATION, OVER_LONG) == (200, {"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    assert post(CONFIRMATION, OVER_LONG) == (200, ACK)
    validation, event = CallbackEvent.objects.order_by("pk")
    assert validation.status == E.PROCESSED
    assert event.status == E.REVIEW and event.provider_reference == "T" * 100
    if not trusted:
        assert Payment.objects.count() == 0
        return
    payment = Payment.objects.get()
    assert (payment.provider_reference, payment.payer_reference, payment.msisdn) == ("T" * 100, "e" * 128, "")
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_review
    donation = payment.donation
    assert donation.patient is None and donation.needs_review  # "BBB…" is no account we know
    assert donation.donor.name == "F" * 200 and donation.donor.phone == ""
    assert "unknown account" in event.error and event.our_reference == "B" * 64
    assert Allocation.objects.get().amount == Decimal("500.00")
    assert credited(patient) == 0
    call_command("verify_ledger")  # CommandError (the test fails) on any drift

    assert post(CONFIRMATION, encode(OVER_LONG, 2)) == (200, ACK)
    assert Payment.objects.count() == 1
    assert CallbackEvent.objects.order_by("pk").last().status == E.IGNORED


# --- trust ------------------------------------------------------------------------------------------------


def test_a_held_confirmation_is_credited_once_by_a_person_with_the_permission(patient, settings, client):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False  # no callback credits on its own word
    assert post(CONFIRMATION, c2b_body()) == (200, ACK)
    event = CallbackEvent.objects.get()
    action = {"action": "accept_held_paybill", "_selected_action": [event.pk]}

    client.force_login(staff_user("clerk", "payments.view_callbackevent"))
    assert b"accept_held_paybill" not in client.get("/admin/payments/callbackevent/").content  # not offered
    client.post("/admin/payments/callbackevent/", action)
    assert not Donation.objects.exists()

    client.force_login(staff_user("finance", "payments.view_callbackevent", "payments.accept_held_callbackevent"))
    for _ in range(2):  # the second time it is no longer held
        client.post("/admin/payments/callbackevent/", action)
    donation = Donation.objects.get()
    assert donation.status == Donation.Status.COMPLETED and donation.patient == patient
    assert credited(patient) == Decimal("500.00")
    assert CallbackEvent.objects.get().status == E.PROCESSED


# --- replays (a resend of one whose worker died: test_inbox.py) ---------------------------------------------


def record(body: bytes, kind: str = "c2b_confirmation") -> CallbackEvent:
    """What the webhook stores before handling; not handled (the worker handling it is killed)."""
    return callback_record(provider_code="mpesa", kind=kind, body=body, headers={}, client_ip=SAFARICOM_IP,
                           url_token=C2B_TOKEN)  # fmt: skip


@pytest.mark.parametrize("held", ["worker-died", "trusted-callbacks-off"])
def test_replaying_a_stored_or_held_c2b_confirmation_by_id_credits_it_once_a_dry_run_nothing_a_validation_nothing(
    patient, settings, held
):
    """Stored by a worker that died; or held while PAYMENTS_APPLY_TRUSTED_CALLBACKS was off, replayed once it is on."""
    if held == "worker-died":
        event = record(encode(fixture(HASHED)))
    else:
        settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
        assert post(CONFIRMATION, fixture(HASHED)) == (200, ACK)
        event = CallbackEvent.objects.get()
        assert "PAYMENTS_APPLY_TRUSTED_CALLBACKS" in event.error and event.provider_reference == "TL7QW2XK9P"
        settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = True
    assert event.status == (E.RECEIVED if held == "worker-died" else E.REVIEW)
    out = StringIO()
    call_command("replay_callbacks", "--id", str(event.pk), "--dry-run", stdout=out)
    assert "would be accepted" in out.getvalue()
    assert Donation.objects.count() == Payment.objects.count() == Allocation.objects.count() == 0
    event.refresh_from_db()
    assert event.status == (E.RECEIVED if held == "worker-died" else E.REVIEW)

    call_command("replay_callbacks", "--id", str(event.pk), stdout=out)
    assert "accepted" in out.getvalue().split("would be accepted", 1)[1]
    event.refresh_from_db()
    payment = Payment.objects.get()
    assert event.status == E.PROCESSED and event.payment_id == payment.pk
    assert payment.status == Payment.Status.SUCCEEDED and credited(patient) == Decimal("1500.00")
    assert payment.payer_reference == fixture(HASHED)["MSISDN"]

    validation = record(encode(c2b_body()), kind="c2b_validation")  # answered again; credits nothing
    for replayed in (event, validation):  # the confirmation again: nothing more
        call_command("replay_callbacks", "--id", str(replayed.pk), stdout=StringIO())
        replayed.refresh_from_db()
    assert (event.status, validation.status) == (E.IGNORED, E.PROCESSED)
    assert Donation.objects.count() == Payment.objects.count() == Allocation.objects.count() == 1
    assert credited(patient) == Decimal("1500.00")


# --- registration --------------------------------------------------------------------------------------


def test_register_command_sends_the_token_urls_and_refuses_what_daraja_would(daraja, settings):
    with pytest.raises(CommandError, match="mpesa"):  # Daraja refuses a URL that names M-Pesa
        call_command("mpesa_register_c2b", "--confirmation-url", "https://x.example/mpesa/c", "--dry-run")
    daraja.post(C2B_REGISTER_URL, json={"OriginatorCoversationID": "x", "ResponseCode": "0",
                                        "ResponseDescription": "Success"})  # fmt: skip
    out = StringIO()
    call_command("mpesa_register_c2b", stdout=out)
    assert json.loads(daraja.calls[1].request.body) == {
        "ShortCode": C2B_SHORTCODE,
        "ResponseType": "Completed",
        "ConfirmationURL": f"{SITE_URL}/webhooks/paybill/confirmation/{C2B_TOKEN}/",
        "ValidationURL": f"{SITE_URL}/webhooks/paybill/validation/{C2B_TOKEN}/",
    }
    assert C2B_TOKEN not in out.getvalue() and "Registered" in out.getvalue()
    settings.PAYMENT_PROVIDERS["mpesa"]["c2b_token"] = ""
    with pytest.raises(CommandError, match="MPESA_C2B_TOKEN"):
        call_command("mpesa_register_c2b", "--dry-run")
