"""Starting a donation with a payment: the one set of rules the JSON API and the donor portal share.

check (patient, provider, payment method, phone, amount, currency) → open (the donor and the donation) →
pay (payment_start). Providers own their payment methods (`Collections.payment_methods`): which currencies
each collects, its label, how its channels are spelt, whether it needs a phone and what else it needs.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import salted_hmac
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.net import RateLimitState, rate_limit
from config.throttles import RateLimited
from donor.models import Donation
from donor.phone_numbers import InvalidPhoneNumber, normalize_msisdn, or_words, reach_problem, region_for_currency
from donor.services import (
    MAX_AMOUNT,
    WHOLE_UNIT_CURRENCIES,
    donation_create,
    donation_limits,
    donor_for_guest,
    donor_for_user,
    donor_language,
)
from patients.models import Patient
from patients.selectors import patient_get_published
from payments.models import Payment
from payments.providers.base import Collections, PaymentMethod, ProviderSettingsInvalid
from payments.providers.registry import PROVIDER_CLASSES, get_capable, provider_codes
from payments.services.payments import payment_start

logger = logging.getLogger("payments")


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


class ProviderUnavailable(Exception):
    """The chosen provider cannot be used here: its settings are invalid (payments.E002…, `manage.py check`).
    Not the donor's fault and nothing was created: the API answers 503, the portal says so."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def collection_provider_codes() -> list[str]:
    """The configured providers that collect payments (donors can pay with), in registry order. Read from
    the classes: a provider whose settings are invalid is still one (it is answered 503, not "unknown")."""
    return [code for code in provider_codes() if issubclass(PROVIDER_CLASSES[code], Collections)]


def _collector(code: str) -> Collections:
    """The provider as a collector; ProviderUnavailable when its settings are invalid."""
    try:
        return get_capable(code, Collections)
    except ProviderSettingsInvalid as invalid:
        logger.error("Provider %s cannot be used, its settings are invalid: %s", code, invalid)
        name = PROVIDER_CLASSES[code].display_name
        raise ProviderUnavailable(
            code, f"{name} payments are unavailable at the moment (this site's {name} settings are being fixed)."
        ) from invalid


def _usable_collectors() -> list[tuple[str, Collections]]:
    """(code, collector) of those that can be built now; one with invalid settings is left out (and logged)."""
    collectors: list[tuple[str, Collections]] = []
    for code in collection_provider_codes():
        try:
            collectors.append((code, _collector(code)))
        except ProviderUnavailable:
            continue
    return collectors


def payment_methods(currency: str, *, include_api_only: bool = False) -> list[PaymentMethod]:
    """Every way to pay this currency among the configured providers that can be used, in registry order."""
    methods: list[PaymentMethod] = []
    for _code, provider in _usable_collectors():
        methods += [
            m
            for m in provider.payment_methods()
            if currency.upper() in m.currencies and (include_api_only or not m.api_only)
        ]
    return methods


@dataclass(frozen=True)
class DonationShape:
    """One kind of request donation_check and donation_create accept, in terms a schema can state: a provider's
    ways to pay that ask for the same fields, in one currency. Built from the same sources as the checks (the
    registry's providers and their payment methods, DONATION_LIMITS, GENERAL_FUND_CURRENCIES), so the API's
    schema (payments/apis.py) cannot promise what the checks refuse."""

    provider: str
    channels: tuple[str, ...]  # the channel to send, one of these; () when the provider has one way to pay
    currency: str
    min_amount: Decimal  # the smallest and largest amount accepted (whole numbers when whole_amounts)
    max_amount: Decimal
    whole_amounts: bool
    phone_required: bool  # a phone of phone_region is required; otherwise it is checked only when given
    phone_region: str
    general_fund: bool  # the patient may be null or absent (the general fund takes this currency)
    extra_fields: tuple[str, ...] = ()
    extra_choices: tuple[tuple[str, tuple[str, ...]], ...] = ()


def donation_shapes() -> list[DonationShape]:
    """Every kind of donation request the configured providers take, in registry order (one whose settings
    are invalid takes none)."""
    shapes: list[DonationShape] = []
    for code, provider in _usable_collectors():
        groups: dict[tuple, list[PaymentMethod]] = {}
        for method in provider.payment_methods():
            key = (method.needs_phone, method.extra_fields, method.extra_choices, method.currencies)
            groups.setdefault(key, []).append(method)
        for (needs_phone, extra_fields, extra_choices, currencies), methods in groups.items():
            for currency in sorted(currencies & provider.currencies):
                whole = provider.whole_amounts_only or currency in WHOLE_UNIT_CURRENCIES
                low, high = donation_limits(currency)
                high = min(high, MAX_AMOUNT - Decimal("0.01"))  # what the money columns hold
                if whole:
                    low, high = low.to_integral_value(ROUND_CEILING), high.to_integral_value(ROUND_FLOOR)
                shapes.append(
                    DonationShape(
                        provider=code,
                        channels=tuple(m.channel for m in methods if m.channel),
                        currency=currency,
                        min_amount=max(low, Decimal(1) if whole else Decimal("0.01")),
                        max_amount=high,
                        whole_amounts=whole,
                        phone_required=needs_phone,
                        phone_region=phone_region(provider, currency),
                        general_fund=currency in settings.GENERAL_FUND_CURRENCIES,
                        extra_fields=extra_fields,
                        extra_choices=extra_choices,
                    )
                )
    return shapes


def donation_check(request: DonationRequest) -> CheckedDonation:
    """Every rule a donation must meet before anything is created. DonationRefused names each field;
    ProviderUnavailable when the chosen provider's settings are invalid."""
    errors: dict[str, str] = {}
    patient = None
    if request.patient_code:
        patient = patient_get_published(code=request.patient_code)
        if patient is None:
            errors["patient"] = _("No published patient with code %(code)s.") % {"code": request.patient_code}
    method = None
    provider: Collections | None = None
    if request.provider not in collection_provider_codes():
        errors["provider"] = _("%(provider)s is not available here.") % {"provider": request.provider}
    else:
        provider = _collector(request.provider)
        method = _method(provider, request.channel)
        if method is None:
            errors["channel"] = _channel_hint(provider)
        if provider.whole_amounts_only and request.amount != request.amount.to_integral_value():
            errors["amount"] = _("%(provider)s takes whole %(currency)s amounts only.") % {
                "provider": request.provider, "currency": request.currency.upper()}  # fmt: skip
        if request.currency.upper() not in provider.currencies:
            errors["currency"] = _("%(provider)s collects %(currencies)s only.") % {
                "provider": request.provider, "currencies": ", ".join(sorted(provider.currencies))}  # fmt: skip
        for name, choices in method.extra_choices if method is not None else ():
            if str(request.extra.get(name, "")).strip().upper() not in {c.upper() for c in choices}:
                errors[name] = _("Choose %(choices)s.") % {"choices": or_words(choices)}
    msisdn = ""
    if (method is None or method.needs_phone) or request.phone_number:
        try:
            msisdn = normalize_msisdn(request.phone_number, region=phone_region(provider, request.currency))
        except InvalidPhoneNumber as exc:
            errors["phone_number"] = str(exc)
    if msisdn and provider is not None and method is not None and method.needs_phone:
        # The number is valid somewhere; the rail must also be able to prompt it (Airtel: AIRTEL_COUNTRY's,
        # M-Pesa: Kenya's, AzamPay: Tanzania's, MTN: its market's), or the provider refuses it after we created
        # the donation. A card payer's phone is only a contact, of any country.
        problem = None if provider.is_test_number(msisdn) else reach_problem(msisdn, provider.phone_regions)
        if problem:
            name = PROVIDER_CLASSES[request.provider].display_name
            errors["phone_number"] = _("%(provider)s cannot reach this number.") % {"provider": name} + f" {problem}"
    if errors or method is None:
        raise DonationRefused(errors)
    return CheckedDonation(request=request, patient=patient, method=method, msisdn=msisdn)


def phone_region(provider: Collections | None, currency: str) -> str:
    """The country a number written nationally (0712…) is read in: the rail's, when it reaches one country
    only; else the currency's."""
    regions = provider.phone_regions if provider is not None else frozenset()
    return next(iter(regions)) if len(regions) == 1 else region_for_currency(currency)


def donation_open(checked: CheckedDonation, *, user: User | AnonymousUser | None) -> Donation:
    """The donor (the account's, or a guest's own) and the pending donation. DonationRefused if the
    donation's own rules refuse it (limits, a patient no longer raising funds, the currency)."""
    request = checked.request
    try:
        with transaction.atomic():  # a refused donation leaves no orphan guest donor behind
            donor = (
                donor_for_user(user=user, language=donor_language())
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


PROMPTS_FROM_CLIENT = gettext_lazy(
    "Too many donation attempts from your connection. Please wait a minute and try again."
)
PROMPTS_TO_PHONE = gettext_lazy(
    "This phone was sent several payment requests in the last minute. Please wait a minute, then try again."
)


def donation_prompt_admit(checked: CheckedDonation, *, client: str | None) -> None:
    """Count a payment about to be started against its client's and its phone's limits; RateLimited when over.

    Per client IP (DONATE_RATE_LIMIT_PER_MINUTE): one machine starting payments in a loop. Per destination phone
    (DONATE_PHONE_RATE_LIMIT_PER_MINUTE), whoever asks: push-prompt bombing of one number from many addresses.
    The API and the portal call this after the checks and before anything is created, so a refused request
    leaves no donation and sends no prompt. The phone is counted under a keyed digest, never in clear in the
    cache. Both counts are taken every time, so a client over its limit still uses up the phone's."""
    states: list[tuple[RateLimitState, str | Promise]] = [
        (
            rate_limit(scope="prompt-client", ident=client, limit=settings.DONATE_RATE_LIMIT_PER_MINUTE),
            PROMPTS_FROM_CLIENT,
        )
    ]
    if checked.msisdn and checked.method.needs_phone:
        phone = salted_hmac("rate-limit-phone", checked.msisdn, algorithm="sha256").hexdigest()[:32]
        limit = settings.DONATE_PHONE_RATE_LIMIT_PER_MINUTE
        states.append((rate_limit(scope="prompt-phone", ident=phone, limit=limit), PROMPTS_TO_PHONE))
    for state, message in states:
        if not state.allowed:
            logger.warning(
                "Payment prompt refused: over the %s limit", "phone" if message is PROMPTS_TO_PHONE else "client"
            )
            raise RateLimited(state, message)


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
    if len(names) < 2:
        return _("Choose a payment method.")
    return _("Choose %(choices)s or %(last)s.") % {"choices": ", ".join(names[:-1]), "last": names[-1]}
