"""Starting a donation with a payment: the one set of rules the JSON API and the donor portal share.

check (patient, provider, payment method, phone, amount, currency) → open (the donor and the donation) →
pay (payment_start). Providers own their payment methods (`Collections.payment_methods`): which currencies
each collects, its label, how its channels are spelt, whether it needs a phone and what else it needs.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction

from donor.models import Donation
from donor.phone_numbers import InvalidPhoneNumber, normalize_msisdn, region_for_currency
from donor.services import donation_create, donor_for_guest, donor_for_user
from patients.models import Patient
from patients.selectors import patient_get_published
from payments.models import Payment
from payments.providers.base import Collections, PaymentMethod
from payments.providers.registry import get_capable, provider_codes
from payments.services.payments import payment_start


@dataclass(frozen=True)
class DonationRequest:
    """What a donor asked for, as typed (the API's body, the portal's form)."""

    amount: Decimal
    currency: str
    provider: str
    channel: str = ""
    phone_number: str = ""
    patient_code: str | None = None
    name: str = ""
    email: str = ""
    anonymous: bool = False
    message: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # the method's extra fields (bank account, OTP)


@dataclass(frozen=True)
class CheckedDonation:
    request: DonationRequest
    patient: Patient | None
    method: PaymentMethod
    msisdn: str  # E.164 digits without "+", or "" when the method needs none

    @property
    def extra(self) -> dict[str, str]:
        return {name: str(self.request.extra.get(name, "")) for name in self.method.extra_fields}


class DonationRefused(Exception):
    """The request breaks a rule. `errors` maps a request field to what the donor should do."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def payment_methods(currency: str, *, include_api_only: bool = False) -> list[PaymentMethod]:
    """Every way to pay this currency among the configured providers, in registry order."""
    methods: list[PaymentMethod] = []
    for code in provider_codes():
        provider = get_capable(code, Collections)
        methods += [
            m
            for m in provider.payment_methods()
            if currency.upper() in m.currencies and (include_api_only or not m.api_only)
        ]
    return methods


def donation_check(request: DonationRequest) -> CheckedDonation:
    """Every rule a donation must meet before anything is created. DonationRefused names each field."""
    errors: dict[str, str] = {}
    patient = None
    if request.patient_code:
        patient = patient_get_published(code=request.patient_code)
        if patient is None:
            errors["patient"] = f"No published patient with code {request.patient_code}."
    method = None
    if request.provider not in provider_codes():
        errors["provider"] = f"{request.provider} is not available here."
    else:
        provider = get_capable(request.provider, Collections)
        method = _method(provider, request.channel)
        if method is None:
            errors["channel"] = _channel_hint(provider)
        if provider.whole_amounts_only and request.amount != request.amount.to_integral_value():
            errors["amount"] = f"{request.provider} takes whole {request.currency.upper()} amounts only."
        if request.currency.upper() not in provider.currencies:
            errors["currency"] = f"{request.provider} collects {', '.join(sorted(provider.currencies))} only."
    msisdn = ""
    if (method is None or method.needs_phone) or request.phone_number:
        try:
            msisdn = normalize_msisdn(request.phone_number, region=region_for_currency(request.currency))
        except InvalidPhoneNumber as exc:
            errors["phone_number"] = str(exc)
    if errors or method is None:
        raise DonationRefused(errors)
    return CheckedDonation(request=request, patient=patient, method=method, msisdn=msisdn)


def donation_open(checked: CheckedDonation, *, user: User | AnonymousUser | None) -> Donation:
    """The donor (the account's, or a guest's own) and the pending donation. DonationRefused if the
    donation's own rules refuse it (limits, a patient no longer raising funds, the currency)."""
    request = checked.request
    try:
        with transaction.atomic():  # a refused donation leaves no orphan guest donor behind
            donor = (
                donor_for_user(user=user)
                if user is not None and user.is_authenticated
                else donor_for_guest(name=request.name, email=request.email, phone=checked.msisdn)
            )
            return donation_create(
                patient=checked.patient,
                amount=request.amount,
                currency=request.currency,
                donor=donor,
                anonymous=request.anonymous,
                message=request.message,
            )
    except ValidationError as exc:
        raise DonationRefused({k: " ".join(v) for k, v in exc.message_dict.items()}) from exc


def donation_pay(donation: Donation, checked: CheckedDonation) -> Payment:
    """Start the donation's payment (PaymentStartFailed when the provider refuses it)."""
    return payment_start(
        donation=donation,
        provider_code=checked.method.provider,
        channel=checked.method.channel,
        msisdn=checked.msisdn,
        extra=checked.extra,
    )


def _method(provider: Collections, channel: str) -> PaymentMethod | None:
    methods = provider.payment_methods()
    if len(methods) == 1 and not methods[0].channel:
        return methods[0]  # one way to pay: any channel the client sends is irrelevant
    wanted = provider.normalize_channel(channel)
    return next((m for m in methods if wanted and m.channel == wanted), None)


def _channel_hint(provider: Collections) -> str:
    names = [m.channel for m in provider.payment_methods() if m.channel]
    return f"Choose {', '.join(names[:-1])} or {names[-1]}." if len(names) > 1 else "Choose a payment method."
