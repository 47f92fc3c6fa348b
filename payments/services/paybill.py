"""Paybill: a donor pays our paybill from their own phone with a patient code (or a donation reference) as
account — M-Pesa's C2B today, any provider with the `Paybill` capability.

Validation answers whether the account exists. A confirmation means the money moved: it is always recorded
— a completed donation credited once per TransID (the unique (provider, provider_reference) of Payment)
through the same state machine as every other payment — and a clear rule says where it goes:

- the named patient, when it is a KES patient still raising funds (outside the donation limits: credited
  and flagged for review);
- the patient of a named pending donation of the same amount, completing that donation;
- otherwise (unknown account, a patient in another currency or no longer raising funds, a donation that
  is already paid or of another amount): a new donation, to the named patient if they can take it, else to
  the general fund, flagged for review.

A confirmation only credits when it came to the URL with the secret we registered (M-Pesa:
MPESA_C2B_TOKEN) and PAYMENTS_APPLY_TRUSTED_CALLBACKS is on; otherwise it is held for review and a person
credits it from the admin after checking the provider's statement. M-Pesa's payload: docs/providers/mpesa.md.
"""

import logging
import random
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, OperationalError, transaction

from donor.models import Donation, Donor
from donor.phone_numbers import InvalidPhoneNumber, normalize_msisdn, region_for_currency
from donor.services import MAX_AMOUNT, donation_limits, donation_record_received, donor_for_guest
from patients.models import Patient
from payments.models import CallbackEvent, Payment, fit
from payments.providers.base import (
    CallbackMalformed,
    CallbackRole,
    CallbackTrust,
    Paybill,
    PaybillPayment,
    PaybillRejection,
    PaymentStatus,
    ProviderResult,
)
from payments.providers.registry import PROVIDER_CLASSES, get_capable
from payments.services.audit import audit_record
from payments.services.callback_steps import Delivery, Parsed, Role
from payments.services.inbox import CallbackOutcome, Outcome, callback_event_mark
from payments.services.payments import Applied, payment_apply_result

logger = logging.getLogger("payments.c2b")

PAYBILL_CHANNEL = "c2b"  # Payment.channel of paybill payments (M-Pesa's name for them)
DEADLOCK_RETRIES = 8
RETRYABLE_MYSQL_ERRORS = (1213, 1205)  # deadlock victim, lock wait timeout
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class PaybillTarget:
    patient: Patient | None
    donation: Donation | None  # a donation named by its reference


def normalize_account(bill_ref: str) -> str:
    """Spaces trimmed (inside too: "pat 0001"), case ignored."""
    return "".join((bill_ref or "").split()).upper()


def paybill_target(bill_ref: str) -> PaybillTarget | None:
    account = normalize_account(bill_ref)
    if not account:
        return None
    patient = Patient.objects.filter(code__iexact=account, published=True).first()
    if patient is not None:
        return PaybillTarget(patient=patient, donation=None)
    donation = Donation.objects.select_related("patient").filter(reference__iexact=account).first()
    if donation is not None:
        return PaybillTarget(patient=donation.patient, donation=donation)
    return None


def _rejection(provider: Paybill, c2b: PaybillPayment) -> PaybillRejection | None:
    """Why this payment is refused, or None to accept it."""
    if c2b.shortcode and c2b.shortcode != provider.paybill_shortcode:
        return PaybillRejection.SHORTCODE
    target = paybill_target(c2b.account)
    if target is None:
        return PaybillRejection.ACCOUNT
    if target.patient is not None and (
        target.patient.currency != provider.paybill_currency or not target.patient.is_accepting_donations
    ):
        return PaybillRejection.ACCOUNT
    low, high = donation_limits(provider.paybill_currency)
    if not low <= c2b.amount <= high:
        return PaybillRejection.AMOUNT
    return None


class PaybillRole(Role):
    """A paybill validation or confirmation: both bodies read the same (`parse_paybill`)."""

    # Its evidence is the URL's secret and the source address, never a secret in the body that the stored
    # copy would have lost: a replay is judged as the live delivery was.
    judge_as_live = True

    def __init__(self, what: str) -> None:
        self.what = what

    def provider(self, event: CallbackEvent) -> Paybill:
        return _provider(event)

    def parse(self, provider: Any, event: CallbackEvent, body: bytes) -> Parsed:
        c2b = provider.parse_paybill(body)
        return Parsed(c2b, normalize_account(c2b.account), c2b.transaction_id)


class PaybillValidation(PaybillRole):
    def decide(self, delivery: Delivery) -> CallbackOutcome:
        """Answer whether the account exists (the provider's own accept/reject body)."""
        event, provider, c2b = delivery.event, delivery.provider, delivery.value
        rejection = _rejection(provider, c2b)
        answer = provider.paybill_answer(rejection)
        refused = f"rejected {answer.get('ResultCode', rejection)}" if rejection else ""
        callback_event_mark(event, CallbackEvent.Status.PROCESSED, error=refused)
        logger.info("Paybill validation %s for account %r: %s", c2b.transaction_id, c2b.account, refused or "accepted")
        return CallbackOutcome(Outcome.ACCEPTED, 200, "Validated", ack=answer)


class PaybillConfirmation(PaybillRole):
    def decide(self, delivery: Delivery) -> CallbackOutcome:
        """The money moved: record it once (its transaction id), by the rules in this module's docstring."""
        if delivery.trust != CallbackTrust.TRUSTED:
            # Unsigned and not on the registered secret URL: anyone could have sent it. Kept for a human.
            return _hold(delivery.event, "paybill confirmation without the registered URL token")
        if not settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS:
            return _hold(
                delivery.event,
                "PAYMENTS_APPLY_TRUSTED_CALLBACKS is off: check the provider's statement, then credit it",
            )
        return paybill_credit(event=delivery.event, c2b=delivery.value)


VALIDATION = PaybillValidation("paybill validation")
CONFIRMATION = PaybillConfirmation("paybill confirmation")


class HeldConfirmationRefused(Exception):
    """The event cannot be credited by hand (wrong kind or state, or the user lacks the permission)."""


def paybill_accept_held(*, event_id: int, accepted_by: User) -> CallbackOutcome:
    """A person checked the provider's statement and vouches for a held paybill confirmation: credit it, by
    the same rules and once per transaction. Needs the `payments.accept_held_callbackevent` permission."""
    if not (getattr(accepted_by, "is_staff", False) and accepted_by.has_perm("payments.accept_held_callbackevent")):
        raise HeldConfirmationRefused("You need the 'payments.accept_held_callbackevent' permission.")
    event = CallbackEvent.objects.get(pk=event_id)
    role = PROVIDER_CLASSES[event.provider].callback_role(event.kind) if event.provider in PROVIDER_CLASSES else None
    if role != CallbackRole.PAYBILL_CONFIRMATION or event.status != CallbackEvent.Status.REVIEW:
        raise HeldConfirmationRefused(
            f"Event #{event.pk} is a {event.kind} in {event.status}, not a held confirmation."
        )
    try:
        c2b = _provider(event).parse_paybill(event.body.encode())
    except CallbackMalformed as exc:
        raise HeldConfirmationRefused(f"Event #{event.pk} cannot be read: {exc}.") from exc
    event.attempts += 1
    logger.warning("Paybill %s accepted by hand by %s after review", c2b.transaction_id, accepted_by)
    audit_record(
        actor=accepted_by, action="paybill.accept_held", target=f"callback #{event.pk}", detail=c2b.transaction_id
    )
    return paybill_credit(event=event, c2b=c2b)


def paybill_credit(*, event: CallbackEvent, c2b: PaybillPayment) -> CallbackOutcome:
    """Record and credit one confirmation (also used when a person accepts a held one)."""
    if c2b.amount >= MAX_AMOUNT or c2b.amount.quantize(CENTS, rounding=ROUND_DOWN) <= 0:
        return _hold(event, f"amount {c2b.amount} cannot be recorded as money")
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return _credit_once(event, c2b)
        except OperationalError as exc:
            # InnoDB may pick concurrent copies of one confirmation as deadlock victims (their inserts meet on
            # the unique TransID). Everything rolled back: look again, the winner's payment is usually there.
            if getattr(exc, "args", (None,))[0] not in RETRYABLE_MYSQL_ERRORS or attempt == DEADLOCK_RETRIES:
                raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 (jitter, not a secret)
    raise AssertionError("unreachable")


def _hold(event: CallbackEvent, reason: str) -> CallbackOutcome:
    callback_event_mark(event, CallbackEvent.Status.REVIEW, error=reason)
    logger.warning("Paybill confirmation %s held for review: %s", event.provider_reference, reason)
    return CallbackOutcome(Outcome.REVIEW, 200, "Received; held for review.")


def _credit_once(event: CallbackEvent, c2b: PaybillPayment) -> CallbackOutcome:
    if _mark_if_recorded(event, c2b):
        return CallbackOutcome(Outcome.IGNORED, 200, "Already recorded.")
    try:
        with transaction.atomic():
            payment, reasons = _record(c2b, currency=_provider(event).paybill_currency, provider_code=event.provider)
            outcome = payment_apply_result(
                payment_id=payment.pk,
                result=ProviderResult(
                    status=PaymentStatus.SUCCEEDED,
                    provider_reference=payment.provider_reference or "",
                    amount=payment.amount,
                    currency=payment.currency,
                    receipt=c2b.transaction_id,
                    message=f"Paybill {c2b.transaction_id}",
                ),
                verified=True,
                cause=f"paybill confirmation #{event.pk}",
            )
            if outcome.status == Applied.REVIEW:  # cannot happen for a payment made from these values; be loud
                raise AssertionError(f"Paybill {c2b.transaction_id} refused by the state machine: {outcome.detail}")
    except IntegrityError:
        # The same TransID recorded concurrently by another delivery: that one credited it. Any other
        # integrity error is not ours to swallow: the boundary keeps the event failed and retries it.
        if _mark_if_recorded(event, c2b):
            return CallbackOutcome(Outcome.IGNORED, 200, "Already recorded.")
        raise
    event.payment = payment
    review = "; ".join(reasons)
    callback_event_mark(event, CallbackEvent.Status.REVIEW if review else CallbackEvent.Status.PROCESSED, error=review)
    logger.info(
        "Paybill %s: %s %s credited as donation %s%s",
        c2b.transaction_id,
        payment.currency,
        payment.amount,
        payment.donation.reference,
        f" (review: {review})" if review else "",
    )
    return CallbackOutcome(Outcome.ACCEPTED, 200, "Callback received")


def _mark_if_recorded(event: CallbackEvent, c2b: PaybillPayment) -> bool:
    # Looked up as it is stored: fitted to the column (an id longer than it would never match).
    trans_id = fit(Payment, "provider_reference", c2b.transaction_id)
    existing = Payment.objects.filter(provider=event.provider, provider_reference=trans_id).first()
    if existing is None:
        return False
    event.payment = existing
    callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"transaction {trans_id} already recorded")
    return True


def _record(c2b: PaybillPayment, *, currency: str, provider_code: str) -> tuple[Payment, list[str]]:
    """The donation and its (pending) payment for one confirmation, and why a person should look at it."""
    amount = c2b.amount.quantize(CENTS, rounding=ROUND_DOWN)
    reasons = [] if amount == c2b.amount else [f"paid {c2b.amount}; recorded {amount} (the ledger keeps cents)"]
    target = paybill_target(c2b.account)
    donation, patient = None, target.patient if target else None
    if target is not None and target.donation is not None:
        # Locked: two payments naming one donation must not both complete it (the second would be lost).
        named = Donation.objects.select_for_update().get(pk=target.donation.pk)
        if named.status == Donation.Status.PENDING and named.amount == amount and named.currency == currency:
            donation = named
        else:
            reasons.append(f"names donation {named.reference} ({named.status}, {named.amount} {named.currency})")
    if donation is None:
        patient = _paybill_patient(patient, target, amount, currency, reasons, c2b.account)
        donor = donor_for_guest(name=fit(Donor, "name", c2b.payer_name), phone=_phone(c2b.payer_id, currency))
        donation = donation_record_received(
            patient=patient,
            amount=amount,
            currency=currency,
            donor=donor,
            message=f"Paybill {c2b.transaction_id}, account {c2b.account}",
        )
        if reasons:
            Donation.objects.filter(pk=donation.pk).update(needs_review=True)
    attempt = donation.payments.count()
    payment = Payment.objects.create(
        donation=donation,
        reference=donation.reference if attempt == 0 else f"{donation.reference}-{attempt + 1}",
        provider=provider_code,
        channel=PAYBILL_CHANNEL,
        msisdn=_phone(c2b.payer_id, currency),
        payer_reference=fit(Payment, "payer_reference", "" if _phone(c2b.payer_id, currency) else c2b.payer_id),
        amount=amount,
        currency=currency,
        status=Payment.Status.PENDING,
        provider_reference=fit(Payment, "provider_reference", c2b.transaction_id),
        needs_review=bool(reasons),
    )
    return payment, reasons


def _paybill_patient(
    patient: Patient | None,
    target: PaybillTarget | None,
    amount: Decimal,
    currency: str,
    reasons: list[str],
    bill_ref: str,
) -> Patient | None:
    """Where money for this account goes: the patient when they can take it, else the general fund."""
    if target is None:
        reasons.append(f"unknown account {bill_ref!r}: credited to the general fund")
        return None
    if patient is None:
        return None
    if patient.currency != currency:
        reasons.append(f"patient {patient.code} is funded in {patient.currency}: credited to the general fund")
        return None
    if not patient.is_accepting_donations:
        reasons.append(f"patient {patient.code} is {patient.status}: credited to the general fund")
        return None
    if patient.funding_received + amount >= MAX_AMOUNT:
        reasons.append(f"patient {patient.code}'s total cannot hold {currency} {amount}: credited to the general fund")
        return None
    low, high = donation_limits(currency)
    if not low <= amount <= high:
        reasons.append(f"{currency} {amount} is outside the donation limits ({low}–{high})")
    return patient


def _phone(payer_id: str, currency: str) -> str:
    """The payer's number when the provider sent one in clear (older payloads, the sandbox), else ""."""
    written = payer_id.replace(" ", "").removeprefix("+")
    if not written.isdigit():
        return ""  # masked ("2547 ***** 126") or hashed (64 hex characters): a reference, not a number
    try:
        return normalize_msisdn(written, region=region_for_currency(currency))
    except InvalidPhoneNumber:
        return ""


def _provider(event: CallbackEvent) -> Paybill:
    return get_capable(event.provider, Paybill)
