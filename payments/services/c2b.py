"""M-Pesa C2B paybill: a donor pays the paybill with a patient code (or a donation reference) as account.

Validation answers whether the account exists. A confirmation means the money moved: it is always recorded
— a completed donation credited once per TransID (the unique (provider, provider_reference) of Payment)
through the same state machine as every other payment — and a clear rule says where it goes:

- the named patient, when it is a KES patient still raising funds (outside the donation limits: credited
  and flagged for review);
- the patient of a named pending donation of the same amount, completing that donation;
- otherwise (unknown account, a patient in another currency or no longer raising funds, a donation that
  is already paid or of another amount): a new donation, to the named patient if they can take it, else to
  the general fund, flagged for review.

A confirmation only credits when it came to the URL with the secret we registered (MPESA_C2B_TOKEN) and
PAYMENTS_APPLY_TRUSTED_CALLBACKS is on; otherwise it is held for review and a person credits it from the
admin after checking the M-Pesa statement. Facts about the payload: docs/providers/mpesa.md.
"""

import logging
import random
import re
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction

from donor.models import Donation, Donor
from donor.services import MAX_AMOUNT, donation_limits, donation_record_received, donor_for_guest
from patients.models import Patient
from payments.models import CallbackEvent, Payment, fit
from payments.providers import get_provider
from payments.providers.base import CallbackMalformed, CallbackTrust, PaymentStatus, ProviderResult
from payments.providers.mpesa import C2B_CONFIRMATION as C2B_CONFIRMATION_KIND
from payments.providers.mpesa import C2BPayment, MpesaProvider, c2b_validation_answer
from payments.services.inbox import CallbackOutcome, callback_event_mark, event_trust, url_token_check
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
CENTS = Decimal("0.01")
# A Kenyan number in clear (older payloads and the sandbox); anything else in MSISDN is a payer reference.
PHONE_RE = re.compile(r"254\d{9}")


@dataclass(frozen=True)
class C2BTarget:
    patient: Patient | None
    donation: Donation | None  # a donation named by its reference


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


def c2b_validate(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    provider = _provider(event)
    if _authenticate(event, provider, body) == CallbackTrust.REJECTED:
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")
    try:
        c2b = provider.parse_c2b(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed C2B validation: {exc}.")
    event.our_reference = normalize_account(c2b.bill_ref)
    event.provider_reference = c2b.trans_id
    code = _reject_reason(provider, c2b)
    callback_event_mark(event, CallbackEvent.Status.PROCESSED, error=f"rejected {code}" if code else "")
    logger.info("C2B validation %s for account %r: %s", c2b.trans_id, c2b.bill_ref, code or "accepted")
    return CallbackOutcome("accepted", 200, "Validated", ack=c2b_validation_answer(code or "0"))


def c2b_confirm(*, event: CallbackEvent, body: bytes, live: bool) -> CallbackOutcome:
    """The money moved: record it once (TransID), by the rules in this module's docstring."""
    provider = _provider(event)
    trust = _authenticate(event, provider, body)
    if trust == CallbackTrust.REJECTED:
        return CallbackOutcome("unauthenticated", 401, "Callback authentication failed.")
    try:
        c2b = provider.parse_c2b(body)
    except CallbackMalformed as exc:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error=f"malformed: {exc}")
        return CallbackOutcome("malformed", 400, f"Malformed C2B confirmation: {exc}.")
    event.our_reference = normalize_account(c2b.bill_ref)
    event.provider_reference = c2b.trans_id
    if trust != CallbackTrust.TRUSTED:
        # Unsigned and not on the registered secret URL: anyone could have sent it. Kept for a human.
        return _hold(event, "C2B confirmation without the registered URL token")
    if not settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS:
        return _hold(event, "PAYMENTS_APPLY_TRUSTED_CALLBACKS is off: check the M-Pesa statement, then credit it")
    return c2b_credit(event=event, c2b=c2b)


class HeldConfirmationRefused(Exception):
    """The event cannot be credited by hand (wrong kind or state, or the user lacks the permission)."""


def c2b_accept_held(*, event_id: int, accepted_by) -> CallbackOutcome:
    """A person checked the M-Pesa statement and vouches for a held paybill confirmation: credit it, by the
    same rules and once per TransID. Needs the `payments.accept_held_callbackevent` permission."""
    if not (getattr(accepted_by, "is_staff", False) and accepted_by.has_perm("payments.accept_held_callbackevent")):
        raise HeldConfirmationRefused("You need the 'payments.accept_held_callbackevent' permission.")
    event = CallbackEvent.objects.get(pk=event_id)
    if event.kind != C2B_CONFIRMATION_KIND or event.status != CallbackEvent.Status.REVIEW:
        raise HeldConfirmationRefused(
            f"Event #{event.pk} is a {event.kind} in {event.status}, not a held confirmation."
        )
    try:
        c2b = _provider(event).parse_c2b(event.body.encode())
    except CallbackMalformed as exc:
        raise HeldConfirmationRefused(f"Event #{event.pk} cannot be read: {exc}.") from exc
    event.attempts += 1
    logger.warning("C2B %s accepted by hand by %s after review", c2b.trans_id, accepted_by)
    return c2b_credit(event=event, c2b=c2b)


def c2b_credit(*, event: CallbackEvent, c2b: C2BPayment) -> CallbackOutcome:
    """Record and credit one confirmation (also used when a person accepts a held one)."""
    if c2b.amount >= MAX_AMOUNT or c2b.amount.quantize(CENTS, rounding=ROUND_DOWN) <= 0:
        return _hold(event, f"TransAmount {c2b.amount} cannot be recorded as money")
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
    logger.warning("C2B confirmation %s held for review: %s", event.provider_reference, reason)
    return CallbackOutcome("review", 200, "Received; held for review.", ack=CONFIRMATION_ACK)


def _credit_once(event: CallbackEvent, c2b: C2BPayment) -> CallbackOutcome:
    if _mark_if_recorded(event, c2b):
        return CallbackOutcome("ignored", 200, "Already recorded.", ack=CONFIRMATION_ACK)
    try:
        with transaction.atomic():
            payment, reasons = _record(c2b)
            outcome = payment_apply_result(
                payment_id=payment.pk,
                result=ProviderResult(
                    status=PaymentStatus.SUCCEEDED,
                    provider_reference=payment.provider_reference or "",
                    amount=payment.amount,
                    currency=CURRENCY,
                    receipt=c2b.trans_id,
                    message=f"M-Pesa paybill {c2b.trans_id}",
                ),
                verified=True,
            )
            if outcome.status == "review":  # cannot happen for a payment made from these values; be loud
                raise AssertionError(f"C2B {c2b.trans_id} refused by the state machine: {outcome.detail}")
    except IntegrityError:
        # The same TransID recorded concurrently by another delivery: that one credited it. Any other
        # integrity error is not ours to swallow: the boundary keeps the event failed and retries it.
        if _mark_if_recorded(event, c2b):
            return CallbackOutcome("ignored", 200, "Already recorded.", ack=CONFIRMATION_ACK)
        raise
    event.payment = payment
    review = "; ".join(reasons)
    callback_event_mark(event, CallbackEvent.Status.REVIEW if review else CallbackEvent.Status.PROCESSED, error=review)
    logger.info(
        "C2B %s: KES %s credited as donation %s%s",
        c2b.trans_id,
        payment.amount,
        payment.donation.reference,
        f" (review: {review})" if review else "",
    )
    return CallbackOutcome("accepted", 200, "Callback received", ack=CONFIRMATION_ACK)


def _mark_if_recorded(event: CallbackEvent, c2b: C2BPayment) -> bool:
    # Looked up as it is stored: fitted to the column (a TransID longer than it would never match).
    trans_id = fit(Payment, "provider_reference", c2b.trans_id)
    existing = Payment.objects.filter(provider=event.provider, provider_reference=trans_id).first()
    if existing is None:
        return False
    event.payment = existing
    callback_event_mark(event, CallbackEvent.Status.IGNORED, error=f"TransID {c2b.trans_id} already recorded")
    return True


def _record(c2b: C2BPayment) -> tuple[Payment, list[str]]:
    """The donation and its (pending) payment for one confirmation, and why a person should look at it."""
    amount = c2b.amount.quantize(CENTS, rounding=ROUND_DOWN)
    reasons = [] if amount == c2b.amount else [f"paid {c2b.amount}; recorded {amount} (the ledger keeps cents)"]
    target = c2b_target(c2b.bill_ref)
    donation, patient = None, target.patient if target else None
    if target is not None and target.donation is not None:
        # Locked: two payments naming one donation must not both complete it (the second would be lost).
        named = Donation.objects.select_for_update().get(pk=target.donation.pk)
        if named.status == Donation.Status.PENDING and named.amount == amount and named.currency == CURRENCY:
            donation = named
        else:
            reasons.append(f"names donation {named.reference} ({named.status}, {named.amount} {named.currency})")
    if donation is None:
        patient = _paybill_patient(patient, target, amount, reasons, c2b.bill_ref)
        donor = donor_for_guest(name=fit(Donor, "name", c2b.payer_name), phone=_phone(c2b.msisdn))
        donation = donation_record_received(
            patient=patient,
            amount=amount,
            currency=CURRENCY,
            donor=donor,
            message=f"M-Pesa paybill {c2b.trans_id}, account {c2b.bill_ref}",
        )
        if reasons:
            Donation.objects.filter(pk=donation.pk).update(needs_review=True)
    attempt = donation.payments.count()
    payment = Payment.objects.create(
        donation=donation,
        reference=donation.reference if attempt == 0 else f"{donation.reference}-{attempt + 1}",
        provider="mpesa",
        channel=C2B_CHANNEL,
        msisdn=_phone(c2b.msisdn),
        payer_reference=fit(Payment, "payer_reference", "" if _phone(c2b.msisdn) else c2b.msisdn),
        amount=amount,
        currency=CURRENCY,
        status=Payment.Status.PENDING,
        provider_reference=fit(Payment, "provider_reference", c2b.trans_id),
        needs_review=bool(reasons),
    )
    return payment, reasons


def _paybill_patient(
    patient: Patient | None, target: C2BTarget | None, amount: Decimal, reasons: list[str], bill_ref: str
) -> Patient | None:
    """Where money for this account goes: the patient when they can take it, else the general fund."""
    if target is None:
        reasons.append(f"unknown account {bill_ref!r}: credited to the general fund")
        return None
    if patient is None:
        return None
    if patient.currency != CURRENCY:
        reasons.append(f"patient {patient.code} is funded in {patient.currency}: credited to the general fund")
        return None
    if not patient.is_accepting_donations:
        reasons.append(f"patient {patient.code} is {patient.status}: credited to the general fund")
        return None
    if patient.funding_received + amount >= MAX_AMOUNT:
        reasons.append(f"patient {patient.code}'s total cannot hold KES {amount}: credited to the general fund")
        return None
    low, high = donation_limits(CURRENCY)
    if not low <= amount <= high:
        reasons.append(f"KES {amount} is outside the donation limits ({low}–{high})")
    return patient


def _phone(msisdn: str) -> str:
    """The payer's number when MSISDN holds one in clear (older payloads, the sandbox): 2547…, +2547…, 07…."""
    written = msisdn.replace(" ", "").removeprefix("+")
    if not written.isdigit():
        return ""  # masked ("2547 ***** 126") or hashed (64 hex characters): a reference, not a number
    digits = "254" + written[1:] if len(written) == 10 and written.startswith("0") else written
    return digits if PHONE_RE.fullmatch(digits) else ""


def _provider(event: CallbackEvent) -> MpesaProvider:
    provider = get_provider(event.provider)
    assert isinstance(provider, MpesaProvider)
    return provider


def _authenticate(event: CallbackEvent, provider: MpesaProvider, body: bytes) -> str:
    event_trust(event, provider, body, url_token_check(event, provider), live=True)
    if event.trust == CallbackTrust.REJECTED:
        callback_event_mark(event, CallbackEvent.Status.REJECTED, error="authentication failed")
        logger.warning("C2B %s callback from %s rejected: wrong URL token", event.kind, event.client_ip)
    return event.trust
