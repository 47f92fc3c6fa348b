"""Donations and the funding ledger. Depends on patients only (payments → donor → patients)."""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from donor.models import Allocation, Donation, Donor
from donor.money import money_for_people
from donor.notifications import registration_notice_queue
from donor.phone_numbers import InvalidPhoneNumber, normalize_msisdn
from patients.models import Patient
from patients.services import patient_add_funds, patient_lock, patient_remove_funds

logger = logging.getLogger("payments.ledger")

OVERFUNDING_KEEP = "keep"
OVERFUNDING_GENERAL_FUND = "general_fund"
# Mobile money moves whole units of these currencies; a fractional amount is a mistake, not a rounding.
WHOLE_UNIT_CURRENCIES = {"TZS", "UGX", "RWF"}
# The money columns hold 12 digits with 2 decimals.
MAX_AMOUNT = Decimal("10000000000")


def donation_limits(currency: str) -> tuple[Decimal, Decimal]:
    low, high = settings.DONATION_LIMITS.get(currency, (settings.DONATION_MIN_AMOUNT, settings.DONATION_MAX_AMOUNT))
    return Decimal(str(low)), Decimal(str(high))


def parse_amount(value: object) -> Decimal:
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, TypeError) as exc:
        raise ValidationError({"amount": _("Enter an amount such as 5000.")}) from exc
    if not amount.is_finite():
        raise ValidationError({"amount": _("Enter an amount such as 5000.")})
    return amount


# --- Donors --------------------------------------------------------------------------------------------


class AccountTaken(Exception):
    """The username or the email already has an account (`outcome` says which; the email wins)."""

    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


REGISTERED = "created"
EMAIL_TAKEN = "email_taken"
USERNAME_TAKEN = "username_taken"


def donor_register(*, username: str, password: str, email: str, name: str = "", phone_number: str = "") -> Donor:
    """Create a donor account. ValidationError for what is wrong with the request itself (the phone, the password);
    AccountTaken when the username or email already has an account (also when a concurrent registration took it
    first). Callers facing the public use donor_signup, which does not tell the two apart."""
    users = get_user_model()
    errors: dict[str, str | list[str]] = {}
    phone = ""
    if phone_number:
        try:
            phone = normalize_msisdn(phone_number)
        except InvalidPhoneNumber as exc:
            errors["phone_number"] = str(exc)
    try:
        validate_password(password, users(username=username, email=email))
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)
    if email and users.objects.filter(email__iexact=email).exists():
        raise AccountTaken(EMAIL_TAKEN)
    if users.objects.filter(username__iexact=username).exists():
        raise AccountTaken(USERNAME_TAKEN)
    try:
        with transaction.atomic():
            user = users.objects.create_user(username=username, password=password, email=email, first_name=name[:150])
            donor = Donor.objects.create(user=user, name=name, email=email, phone=phone, language=donor_language())
    except IntegrityError as exc:  # the unique username: another registration got there between check and insert
        raise AccountTaken(USERNAME_TAKEN) from exc
    logger.info("Donor %s registered", donor.pk)
    return donor


def donor_signup(*, username: str, password: str, email: str, name: str = "", phone_number: str = "") -> Donor | None:
    """Registration that does not tell anyone who has an account (docs/security.md).

    A request that is valid in itself gets the same answer whether or not the account was created; the email
    address is told which: "your account is ready", "you already have an account" (to the address's owner), or
    "that username is taken, choose another". The password is hashed on every path, so the time taken tells
    nothing either. ValidationError only for what is wrong with the request itself. The new donor, or None."""
    donor: Donor | None = None
    try:
        donor = donor_register(username=username, password=password, email=email, name=name, phone_number=phone_number)
        outcome = REGISTERED
    except AccountTaken as taken:
        make_password(password)  # the work creating the account would have cost
        outcome = taken.outcome
        logger.info("Registration not made: %s", outcome)
    registration_notice_queue(email=email, username=username, outcome=outcome, language=donor_language())
    return donor


def donor_language(language: str | None = None) -> str:
    """One of settings.LANGUAGES: `language`, else the active one (the page's or the API request's)."""
    code = (language or translation.get_language() or settings.LANGUAGE_CODE).split("-")[0].lower()
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def donor_for_user(*, user: User, language: str = "") -> Donor:
    """The account's donor. `language` (when they give: the page's) becomes the one their messages are in."""
    donor, _created = Donor.objects.get_or_create(
        user=user,
        defaults={
            "name": user.get_full_name() or user.get_username(),
            "email": user.email or "",
            "language": donor_language(language),
        },
    )
    if language and donor.language != donor_language(language):
        language = donor_language(language)
        Donor.objects.filter(pk=donor.pk).update(language=language)
        donor.language = language
    return donor


def donor_language_set(*, user: User, language: str) -> None:
    """The language switch of a signed-in donor: their messages follow it."""
    Donor.objects.filter(user=user).update(language=donor_language(language))


def donor_for_guest(*, name: str = "", email: str = "", phone: str = "") -> Donor:
    """A guest gets a donor row of their own per donation: we never merge strangers by a typed email."""
    return Donor.objects.create(name=name, email=email, phone=phone, language=donor_language())


# --- Donations -----------------------------------------------------------------------------------------


def donation_rules_check(*, patient: Patient | None, amount: Decimal | str, currency: str) -> tuple[Decimal, str]:
    """A donation's own rules (the patient raising funds in this currency, the limits): the parsed amount and
    currency, or ValidationError naming the field. Also what a monthly pledge is held to, cycle after cycle."""
    amount = parse_amount(amount)
    currency = (currency or "").strip().upper()
    errors: dict[str, str] = {}
    if patient is not None:
        if not patient.is_accepting_donations:
            errors["patient"] = _("Patient %(code)s is not accepting donations now.") % {"code": patient.code}
        elif currency != patient.currency:
            errors["currency"] = _("Patient %(code)s is funded in %(currency)s; donate in %(currency)s.") % {
                "code": patient.code, "currency": patient.currency}  # fmt: skip
    elif currency not in settings.GENERAL_FUND_CURRENCIES:
        errors["currency"] = _("The general fund accepts %(currencies)s.") % {
            "currencies": ", ".join(sorted(settings.GENERAL_FUND_CURRENCIES))}  # fmt: skip
    if amount <= 0:
        errors["amount"] = _("The amount must be greater than zero.")
    elif _decimals(amount) > 2:
        errors["amount"] = _("Use at most two decimal places.")
    elif currency in WHOLE_UNIT_CURRENCIES and amount != amount.to_integral_value():
        errors["amount"] = _("%(currency)s amounts must be whole numbers.") % {"currency": currency}
    elif "currency" not in errors:
        low, high = donation_limits(currency)
        if amount < low:
            errors["amount"] = _("The smallest donation is %(money)s.") % {"money": money_for_people(low, currency)}
        elif amount > high:
            errors["amount"] = _("The largest donation is %(money)s.") % {"money": money_for_people(high, currency)}
    if errors:
        raise ValidationError(errors)
    return amount, currency


def donation_create(
    *,
    patient: Patient | None,
    amount: Decimal | str,
    currency: str,
    donor: Donor | None = None,
    anonymous: bool = False,
    message: str = "",
) -> Donation:
    """Record a donor's intent to give. Validation errors name the field and say what to do."""
    amount, currency = donation_rules_check(patient=patient, amount=amount, currency=currency)

    donation = _donation_insert(
        patient=patient, amount=amount, currency=currency, donor=donor, anonymous=anonymous, message=message
    )
    logger.info("Donation %s created: %s %s for %s", donation.reference, amount, currency, _target_label(patient))
    return donation


def donation_record_received(
    *, patient: Patient | None, amount: Decimal, currency: str, donor: Donor | None, message: str = ""
) -> Donation:
    """Record money that has already moved (a paybill payment the donor made on their own phone).

    The donor-facing rules (limits, a patient still raising funds) decide where such money goes, not whether
    it is recorded: the caller chooses the target and flags what breaks a rule. Only what the ledger cannot
    hold is refused (ValueError): a non-positive amount, more than two decimals, more digits than a column.
    """
    if not amount.is_finite() or amount <= 0 or _decimals(amount) > 2 or amount >= MAX_AMOUNT:
        raise ValueError(f"the ledger cannot hold an amount of {amount}")
    donation = _donation_insert(patient=patient, amount=amount, currency=currency, donor=donor, message=message)
    logger.info(
        "Donation %s recorded as received: %s %s for %s", donation.reference, amount, currency, _target_label(patient)
    )
    return donation


def _decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _donation_insert(
    *,
    patient: Patient | None,
    amount: Decimal,
    currency: str,
    donor: Donor | None,
    anonymous: bool = False,
    message: str = "",
) -> Donation:
    with transaction.atomic():
        donation = Donation.objects.create(
            reference=f"tmp-{uuid.uuid4().hex}",
            donor=donor,
            patient=patient,
            amount=amount,
            currency=currency,
            anonymous=anonymous,
            message=(message or "")[:1000],
        )
        stamp = timezone.now().strftime("%Y%m%d%H%M%S")
        donation.reference = f"{settings.DONATION_REFERENCE_PREFIX}-DN-{donation.pk}-{stamp}"
        donation.save(update_fields=["reference"])
    return donation


@dataclass(frozen=True)
class CompletionResult:
    donation: Donation
    credited: bool  # False when it had already been credited (a duplicate)
    late: bool = False


def donation_complete(*, donation_id: int) -> CompletionResult:
    """Credit a paid donation to the ledger exactly once.

    Row locks (donation, then patient) serialise concurrent completions; the unique constraint on
    Allocation(donation, target) is the last line of defence if a lock were ever missed.
    """
    # savepoint=False: nested in payment_apply_result's transaction there is nothing to roll back to; any
    # error here must undo the whole credit, payment status included.
    with transaction.atomic(savepoint=False):
        donation = Donation.objects.select_for_update().get(pk=donation_id)
        if donation.status in (Donation.Status.COMPLETED, Donation.Status.REFUNDED):
            return CompletionResult(donation=donation, credited=False)
        previous = donation.status
        late = previous != Donation.Status.PENDING
        patient = patient_lock(patient_id=donation.patient_id) if donation.patient_id else None

        for target_patient, amount in donation_split(donation, patient):
            # The unique (donation, target) constraint is the last line of defence: if the locks were ever
            # bypassed, the IntegrityError aborts the whole transaction rather than credit twice.
            Allocation.objects.create(
                donation=donation,
                patient=target_patient,
                target=Allocation.target_for(target_patient),
                amount=amount,
                currency=donation.currency,
            )
            if target_patient is not None:
                patient_add_funds(patient=target_patient, amount=amount)

        donation.status = Donation.Status.COMPLETED
        donation.completed_at = timezone.now()
        donation.status_reason = ""
        update = ["status", "completed_at", "status_reason", "updated_at"]
        if late:
            donation.needs_review = True
            update.append("needs_review")
            logger.warning("Donation %s completed late (was %s): credited and flagged", donation.reference, previous)
        donation.save(update_fields=update)
    logger.info("Donation %s completed: %s %s credited", donation.reference, donation.amount, donation.currency)
    return CompletionResult(donation=donation, credited=True, late=late)


def donation_split(
    donation: Donation, patient: Patient | None, *, received: Decimal | None = None
) -> list[tuple[Patient | None, Decimal]]:
    """Where the money goes, by the overfunding policy. `received`: the patient's total so far when the caller
    credits several donations before writing it (donor.completions); else the locked row's."""
    if patient is None:
        return [(None, donation.amount)]
    if settings.OVERFUNDING_POLICY != OVERFUNDING_GENERAL_FUND:
        return [(patient, donation.amount)]
    so_far = patient.funding_received if received is None else received
    to_patient = min(donation.amount, max(Decimal("0"), patient.funding_goal - so_far))
    parts: list[tuple[Patient | None, Decimal]] = []
    if to_patient > 0:
        parts.append((patient, to_patient))
    if donation.amount - to_patient > 0:
        parts.append((None, donation.amount - to_patient))
    return parts


class LedgerRefused(Exception):
    """The ledger cannot take this refund (the donation is not completed, or less was credited)."""


def donation_refund(*, donation_id: int, amount: Decimal) -> Donation:
    """Give back (part of) a completed donation on the ledger, once: reversing rows, never an edit.

    The patient's share is reversed first, then the general fund's (under the general-fund overfunding
    policy a gift may have both). A full refund ends the donation `refunded`; a partial one leaves it
    completed with the refund in its status reason. Running it twice changes nothing (the reversal rows are
    unique per donation and target).
    """
    with transaction.atomic(savepoint=False):
        donation = Donation.objects.select_for_update().get(pk=donation_id)
        if donation.allocations.filter(entry=Allocation.Entry.REVERSAL).exists():
            return donation  # already refunded
        if donation.status != Donation.Status.COMPLETED:
            raise LedgerRefused(f"Donation {donation.reference} is {donation.status}, not completed.")
        credits = sorted(donation.allocations.filter(entry=Allocation.Entry.CREDIT), key=lambda a: a.patient_id is None)
        if amount <= 0 or amount > sum((a.amount for a in credits), Decimal("0")):
            raise LedgerRefused(f"Donation {donation.reference} cannot give back {amount} {donation.currency}.")
        patient = patient_lock(patient_id=donation.patient_id) if donation.patient_id else None
        remaining = amount
        for credit in credits:
            part = min(credit.amount, remaining)
            if part <= 0:
                break
            Allocation.objects.create(
                donation=donation,
                patient=credit.patient,
                target=credit.target,
                amount=-part,
                currency=credit.currency,
                entry=Allocation.Entry.REVERSAL,
            )
            if credit.patient_id is not None and patient is not None:
                patient_remove_funds(patient=patient, amount=part)
            remaining -= part
        full = amount == donation.amount
        donation.status = Donation.Status.REFUNDED if full else Donation.Status.COMPLETED
        donation.status_reason = f"{donation.currency} {amount:,} refunded"[:255]
        donation.save(update_fields=["status", "status_reason", "updated_at"])
    logger.info("Donation %s: %s %s refunded on the ledger", donation.reference, amount, donation.currency)
    return donation


def _finish_unpaid(*, donation_id: int, status: str, reason: str) -> Donation:
    with transaction.atomic():
        donation = Donation.objects.select_for_update().get(pk=donation_id)
        if donation.status != Donation.Status.PENDING:
            # Terminal states never move back on their own.
            if donation.status != status:
                logger.info(
                    "Donation %s stays %s (ignored %s: %s)", donation.reference, donation.status, status, reason
                )
            return donation
        donation.status = status
        donation.status_reason = reason[:255]
        donation.save(update_fields=["status", "status_reason", "updated_at"])
    logger.info("Donation %s %s: %s", donation.reference, status, reason)
    return donation


def donation_fail(*, donation_id: int, reason: str = "") -> Donation:
    return _finish_unpaid(donation_id=donation_id, status=Donation.Status.FAILED, reason=reason)


def donation_cancel(*, donation_id: int, reason: str = "") -> Donation:
    return _finish_unpaid(donation_id=donation_id, status=Donation.Status.CANCELLED, reason=reason)


def donation_expire(*, donation_id: int, reason: str = "") -> Donation:
    return _finish_unpaid(donation_id=donation_id, status=Donation.Status.EXPIRED, reason=reason)


def _target_label(patient: Patient | None) -> str:
    return patient.code if patient else "the general fund"
