"""M-Pesa C2B paybill: a donor pays the paybill with a patient code (or a donation reference) as account.

Validation answers whether the account exists; confirmation means the money moved: it creates a completed
donation (idempotent on TransID through the unique (provider, provider_reference) of Payment) and credits
the ledger through the same state machine as every other payment.
"""

import logging
import random
import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, transaction

from donor.models import Donation
from donor.services import donation_create, donation_limits, donor_for_guest
from patients.models import Patient
from payments.models import CallbackEvent, Payment
from payments.providers.base import CallbackMalformed, CallbackTrust, PaymentStatus, ProviderResult
from payments.providers.mpesa import C2BPayment, MpesaProvider, c2b_validation_answer
from payments.services.callbacks import callback_event_mark
from payments.services.payments import payment_apply_result

logger = logging.getLogger("payments.c2b")

C2B_CHANNEL = "c2b"
CURRENCY = "KES"
INVALID_ACCOUNT = "C2B00012"
INVALID_AMOUNT = "C2B00013"
INVALID_SHORTCODE = "C2B00015"
OTHER_ERROR = "C2B00016"
CONFIRMATION_ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
DEADLOCK_RETRIES = 8
RETRYABLE_MYSQL_ERRORS = (1213, 1205)  # deadlock victim, lock wait timeout


@dataclass(frozen=True)
class C2BAnswer:
    http_status: int
    body: dict
    code: str = ""  # for errors: INVALID_FORMAT, AUTH_REQUIRED
    message: str = ""


@dataclass(frozen=True)
class C2BTarget:
    patient: Patient | None
    donation: Donation | None  # a pending donation named by its reference


def normalize_account(bill_ref: str) -> str:
    """Spaces trimmed (inside too: "pat 0001"), case ignored."""
    return "".join((bill_ref or "").split()).upper()


def c2b_target(bill_ref: str) -> C2BTarget | None:
    account = normalize_account(bill_ref)
    if not account:
        return None
    patient = Patient.objects.filter(code__iexact=account, published=True).first()
    if patient is not None:
        return C2BTarget(patient=patient, donation=None)
    donation = Donation.objects.select_related("patient").filter(reference__iexact=account).first()
    if donation is not None:
        return C2BTarget(patient=donation.patient, donation=donation)
    return None


def _reject_reason(provider: MpesaProvider, c2b: C2BPayment) -> str:
    """The C2B000xx code that refuses this payment, or "" to accept it."""
    if c2b.shortcode and c2b.shortcode != provider.c2b_shortcode:
        return INVALID_SHORTCODE
    target = c2b_target(c2b.bill_ref)
    if target is None:
        return INVALID_ACCOUNT
    if target.patient is not None and (
        target.patient.currency != CURRENCY or not target.patient.is_accepting_donations
    ):
        return INVALID_ACCOUNT
    low, high = donation_limits(CURRENCY)
    if not low <= c2b.amount <= high:
        return INVALID_AMOUNT
    return ""


def c2b_validate(*, event: CallbackEvent, provider: MpesaProvider, url_token: str, body: bytes) -> C2BAnswer:
    trust = _authenticate(event, provider, url_token, body)
    if trust == CallbackTrust.REJECTED:
        return C2BAnswer(401, {}, "AUTH_REQUIRED", "Callback authentication failed.")
    try:
        c2b = provider.parse_c2b(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return C2BAnswer(400, {}, "INVALID_FORMAT", f"Malformed C2B validation: {exc}.")
    event.our_reference = normalize_account(c2b.bill_ref)[:64]
    event.provider_reference = c2b.trans_id[:100]
    code = _reject_reason(provider, c2b)
    callback_event_mark(event, CallbackEvent.Status.PROCESSED, error=f"rejected {code}" if code else "")
    logger.info("C2B validation %s for account %r: %s", c2b.trans_id, c2b.bill_ref, code or "accepted")
    return C2BAnswer(200, c2b_validation_answer(code or "0"))


def c2b_confirm(*, event: CallbackEvent, provider: MpesaProvider, url_token: str, body: bytes) -> C2BAnswer:
    """The money moved: record it once (TransID), on the named patient, or the general fund for review."""
    trust = _authenticate(event, provider, url_token, body)
    if trust == CallbackTrust.REJECTED:
        return C2BAnswer(401, {}, "AUTH_REQUIRED", "Callback authentication failed.")
    try:
        c2b = provider.parse_c2b(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return C2BAnswer(400, {}, "INVALID_FORMAT", f"Malformed C2B confirmation: {exc}.")
    event.our_reference = normalize_account(c2b.bill_ref)[:64]
    event.provider_reference = c2b.trans_id[:100]
    if event.status == CallbackEvent.Status.DUPLICATE:
        return C2BAnswer(200, CONFIRMATION_ACK)
    if trust != CallbackTrust.TRUSTED:
        # Unsigned and not on the registered secret URL: anyone could have sent it. Kept for a human.
        callback_event_mark(
            event, CallbackEvent.Status.REVIEW, error="C2B confirmation without the registered URL token"
        )
        logger.warning("C2B confirmation %s arrived without the URL token; held for review", c2b.trans_id)
        return C2BAnswer(200, CONFIRMATION_ACK)
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return _confirm_once(event, c2b)
        except OperationalError as exc:
            # InnoDB may pick concurrent copies of one confirmation as deadlock victims (their inserts meet on
            # the unique TransID). Everything rolled back: look again, the winner's payment is usually there.
            if getattr(exc, "args", (None,))[0] not in RETRYABLE_MYSQL_ERRORS or attempt == DEADLOCK_RETRIES:
                raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 (jitter, not a secret)
    raise AssertionError("unreachable")


def _confirm_once(event: CallbackEvent, c2b: C2BPayment) -> C2BAnswer:
    existing = Payment.objects.filter(provider="mpesa", provider_reference=c2b.trans_id).first()
    if existing is not None:
        event.payment = existing
        callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"TransID {c2b.trans_id} already recorded")
        return C2BAnswer(200, CONFIRMATION_ACK)
    try:
        with transaction.atomic():
            payment, review = _record(c2b)
            outcome = payment_apply_result(
                payment_id=payment.pk,
                result=ProviderResult(
                    status=PaymentStatus.SUCCEEDED,
                    provider_reference=c2b.trans_id,
                    amount=c2b.amount,
                    currency=CURRENCY,
                    receipt=c2b.trans_id,
                    msisdn=c2b.msisdn,
                    message=f"M-Pesa paybill {c2b.trans_id}",
                ),
                verified=True,
            )
            if outcome.status == "review":
                raise _Review(outcome.detail)
    except IntegrityError:
        # The same TransID confirmed concurrently: the other delivery recorded it.
        event.payment = Payment.objects.filter(provider="mpesa", provider_reference=c2b.trans_id).first()
        callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"TransID {c2b.trans_id} already recorded")
        return C2BAnswer(200, CONFIRMATION_ACK)
    except _Review as exc:
        callback_event_mark(event, CallbackEvent.Status.REVIEW, error=str(exc))
        return C2BAnswer(200, CONFIRMATION_ACK)
    event.payment = payment
    callback_event_mark(event, CallbackEvent.Status.REVIEW if review else CallbackEvent.Status.PROCESSED, error=review)
    logger.info(
        "C2B %s: %s KES %s credited as donation %s%s",
        c2b.trans_id,
        c2b.msisdn,
        c2b.amount,
        payment.donation.reference,
        f" (review: {review})" if review else "",
    )
    return C2BAnswer(200, CONFIRMATION_ACK)


class _Review(Exception):
    pass


def _record(c2b: C2BPayment) -> tuple[Payment, str]:
    """The donation and its payment for one confirmation. Returns (payment, review reason or "")."""
    target = c2b_target(c2b.bill_ref)
    review = ""
    donation = None
    if target is not None and target.donation is not None:
        pending = target.donation
        if pending.status == Donation.Status.PENDING and pending.amount == c2b.amount and pending.currency == CURRENCY:
            donation = pending
    if donation is None:
        donor = donor_for_guest(name=c2b.payer_name[:200], phone=c2b.msisdn[:32])
        patient = target.patient if target is not None else None
        if target is None:
            review = f"unknown account {c2b.bill_ref!r}: credited to the general fund"
        message = f"M-Pesa paybill {c2b.trans_id}, account {c2b.bill_ref}"[:1000]
        try:
            donation = donation_create(
                patient=patient, amount=c2b.amount, currency=CURRENCY, donor=donor, message=message
            )
        except ValidationError as exc:
            if patient is None:
                raise _Review(f"could not record the paybill payment: {exc.messages}") from exc
            review = f"patient {patient.code} could not take it ({'; '.join(exc.messages)}): general fund"
            donation = donation_create(patient=None, amount=c2b.amount, currency=CURRENCY, donor=donor, message=message)
        if review:
            Donation.objects.filter(pk=donation.pk).update(needs_review=True)
    attempt = donation.payments.count()
    payment = Payment.objects.create(
        donation=donation,
        reference=donation.reference if attempt == 0 else f"{donation.reference}-{attempt + 1}",
        provider="mpesa",
        channel=C2B_CHANNEL,
        msisdn=c2b.msisdn[:15],
        amount=c2b.amount,
        currency=CURRENCY,
        status=Payment.Status.PENDING,
        provider_reference=c2b.trans_id,
        needs_review=bool(review),
    )
    return payment, review


def _authenticate(event: CallbackEvent, provider: MpesaProvider, url_token: str, body: bytes) -> str:
    event.trust = provider.authenticate_callback(
        event.kind, body, event.headers, url_token, provider.c2b_token, client_ip=event.client_ip
    )
    if event.trust == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        logger.warning("C2B %s callback from %s rejected: wrong URL token", event.kind, event.client_ip)
    return event.trust
