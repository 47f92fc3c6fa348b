"""The donor portal (portal/): server-rendered pages. Views are thin: they read forms and call the services.

The donate flow uses the same service and rules as the JSON API (payments.services.donations: check, open,
pay); a provider refusal keeps the donation (marked failed) and shows the form again. "Give monthly" makes a
pledge through the pledge API's own service (pledges.services.pledge_create). Every string is translated
(English and Swahili, locale/); the language switch remembers a signed-in donor's choice for their messages.
"""

from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST
from django.views.i18n import set_language

from config.net import client_ip
from config.throttles import RateLimited, rate_limit_headers
from donor.models import Donation
from donor.phone_numbers import REGION_BY_CURRENCY
from donor.selectors import (
    DONATION_SESSION_KEY,
    donation_for_reader,
    donation_list_for_donor,
    donation_recent_public,
)
from donor.services import donor_for_user, donor_language_set, donor_signup
from patients.models import Patient
from patients.selectors import patient_get_published, patient_list_published
from patients.updates import treatment_updates_published
from payments.selectors import payment_latest_for_donation
from payments.services.donations import (
    DonationRefused,
    DonationRequest,
    ProviderUnavailable,
    donation_check,
    donation_open,
    donation_pay,
    donation_prompt_admit,
    payment_methods,
)
from payments.services.payments import PaymentStartFailed, method_label
from payments.transparency import patient_money_trail
from pledges.models import Pledge
from pledges.services import manage_url, pledge_create, pledge_list_for_donor
from portal.forms import DonateForm, SignupForm
from receipts.statements import statement_years

PRESET_AMOUNTS: dict[str, list[int]] = {
    "TZS": [5_000, 10_000, 25_000, 50_000],
    "KES": [100, 500, 1_000],
    "UGX": [10_000, 50_000],
    "EUR": [10, 25, 50],
}
# Where the donation rules' errors show on the form (the rest above it).
FORM_FIELDS = {"amount": "custom_amount", "phone_number": "phone_number"}
SHOWN_STATUSES = (Patient.Status.FUNDING, Patient.Status.FULLY_FUNDED)
SESSION_KEY = DONATION_SESSION_KEY  # reference → what this browser typed, for its own "Try again" link
SESSION_KEEP = 10
# The ways to pay whose names are words, not brands (payments' labels, shown through gettext); the marks let
# makemessages find them. Brand names (M-Pesa, Airtel Money) are the same in every language.
METHOD_WORDS = (gettext_noop("Card (Visa, Mastercard)"), gettext_noop("Bank (CRDB, NMB)"))


# --- Helpers ---------------------------------------------------------------------------------------------


def method_choices(currency: str) -> list[tuple[str, str]]:
    """("provider:channel", label) for every way to pay this currency that the portal offers."""
    return [(method.key, method_name(method.label)) for method in payment_methods(currency)]


def method_name(label: str) -> str:
    """A way to pay as the donor reads it: words translated, brands as they are."""
    return _(label) if label in METHOD_WORDS else label


def friendly_reason(status: str, reason: str = "") -> str:
    """What went wrong, in words a donor understands."""
    text = (reason or "").lower()
    if status == Donation.Status.REFUNDED:
        return _("This donation was refunded to you.")
    if status == Donation.Status.CANCELLED or "cancel" in text:
        return _("The payment was cancelled on the phone, so no money was taken.")
    if status == Donation.Status.EXPIRED or "timeout" in text or "timed out" in text:
        return _("We did not get a confirmation from the phone in time, so the request expired. No money was taken.")
    if "insufficient" in text or "balance" in text:
        return _(
            "The mobile money balance was too low for this amount. No money was taken: top up, or try a smaller amount."
        )
    if "pin" in text:
        return _("The PIN was not accepted. No money was taken.")
    return _("The payment did not go through. No money was taken.")


def public_first_name(donation: Donation) -> str:
    """The name shown to other visitors: a first name, or "Anonymous". Never a phone number or email."""
    name = donation.donor_display_name
    return _("Anonymous") if name == "Anonymous" else name.split()[0]


def _remember_details(request: HttpRequest, reference: str, details: dict[str, str]) -> None:
    kept = dict(request.session.get(SESSION_KEY, {}))
    kept[reference] = details
    request.session[SESSION_KEY] = dict(list(kept.items())[-SESSION_KEEP:])


def try_again_url(request: HttpRequest, donation: Donation) -> str:
    """Back to the form. The details (phone included) come only from this browser's own session."""
    if donation.patient:
        base = reverse("patient-page", kwargs={"code": donation.patient.code})
        query = {}
    else:
        base = reverse("general-fund")
        query = {"currency": donation.currency}
    details = request.session.get(SESSION_KEY, {}).get(donation.reference)
    query.update(details or {"amount": f"{donation.amount.normalize():f}"})
    return f"{base}?{urlencode({k: v for k, v in query.items() if v})}"


def _initial_from_query(request: HttpRequest, currency: str) -> dict[str, str]:
    """Prefill the donate form from a "Try again" link: ?amount=&phone=&channel=&provider=&name=&email="""
    get = request.GET
    initial: dict[str, str] = {
        "name": get.get("name", ""),
        "email": get.get("email", ""),
        "phone_number": get.get("phone", ""),
    }
    amount = get.get("amount", "")
    if amount:
        presets = {str(a) for a in PRESET_AMOUNTS.get(currency, [])}
        initial["amount" if amount in presets else "custom_amount"] = amount
    if get.get("channel") or get.get("provider"):
        provider = get.get("provider", "azampay")
        initial["method"] = f"{provider}:{get['channel']}" if get.get("channel") else provider
    return initial


# --- Pages -----------------------------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    patients = sorted(
        (p for p in patient_list_published() if p.status in SHOWN_STATUSES),
        key=lambda p: (p.status != Patient.Status.FUNDING, p.code),
    )
    currencies = sorted(settings.GENERAL_FUND_CURRENCIES)
    context = {"patients": patients, "general_fund_currencies": currencies, "general_fund_default": _fund_default()}
    return render(request, "home.html", context)


def patient_page(request: HttpRequest, code: str) -> HttpResponse:
    patient = patient_get_published(code=code)
    if patient is None:
        raise Http404("No such patient")
    recent = [
        {"name": public_first_name(d), "amount": d.amount, "currency": d.currency, "when": d.completed_at}
        for d in donation_recent_public(patient=patient)
    ]
    context = {
        "patient": patient,
        "recent": recent,
        "accepting": patient.is_accepting_donations,
        "trail": patient_money_trail(patient=patient),
        "updates": treatment_updates_published(patient=patient),
    }
    return _donate(request, patient=patient, currency=patient.currency, template="patient.html", context=context)


def general_fund_page(request: HttpRequest) -> HttpResponse:
    currencies = sorted(settings.GENERAL_FUND_CURRENCIES)
    default = _fund_default()
    currency = request.GET.get("currency", default).upper()
    if currency not in currencies:
        currency = default
    context = {"currencies": currencies, "accepting": True}
    return _donate(request, patient=None, currency=currency, template="general_fund.html", context=context)


def _fund_default() -> str:
    """The general fund's currency someone can pay in today, the home country's (DEFAULT_PHONE_REGION) first."""
    home = getattr(settings, "DEFAULT_PHONE_REGION", "TZ")
    currencies = sorted(settings.GENERAL_FUND_CURRENCIES, key=lambda c: (REGION_BY_CURRENCY.get(c) != home, c))
    return next((c for c in currencies if method_choices(c)), currencies[0] if currencies else "TZS")


def _donate(
    request: HttpRequest, *, patient: Patient | None, currency: str, template: str, context: dict
) -> HttpResponse:
    methods = method_choices(currency)
    status = 200
    limited: RateLimited | None = None
    if request.method == "POST" and methods and context["accepting"]:
        form = DonateForm(request.POST, currency=currency, methods=methods)
        if form.is_valid():
            try:
                response = _start_donation(request, form, patient, currency)
            except RateLimited as exc:  # too many prompts from here or to this phone: nothing was created
                limited = exc
                context["page_error"] = exc.message
                status = 429
            else:
                if response is not None:
                    return response
    else:
        initial = _initial_from_query(request, currency)
        if len(methods) == 1:
            initial.setdefault("method", methods[0][0])  # one way to pay: chosen already
        form = DonateForm(initial=initial, currency=currency, methods=methods)
    context.update(
        {
            "form": form,
            "currency": currency,
            "methods": methods,
            "presets": PRESET_AMOUNTS.get(currency, []),
            "selected_amount": str(form["amount"].value() or ""),
        }
    )
    response = render(request, template, context, status=status)
    if limited is not None:
        for header, value in rate_limit_headers(limited.state).items():
            response[header] = value
    return response


def _start_donation(
    request: HttpRequest, form: DonateForm, patient: Patient | None, currency: str
) -> HttpResponse | None:
    """Check, open and pay, as the API does (or, for "Give monthly", the pledge). None means: show the form again
    with its errors."""
    data = form.cleaned_data
    donation_request = DonationRequest(
        amount=data["amount_value"],
        currency=currency,
        provider=data["provider"],
        channel=data["channel"],
        phone_number=data["phone_number"],
        patient_code=patient.code if patient else None,
        name=data["name"],
        email=data["email"],
        anonymous=data["anonymous"],
        message=data["message"],
    )
    if data.get("monthly"):
        return _start_pledge(request, form, donation_request)
    try:
        checked = donation_check(donation_request)
        donation_prompt_admit(checked, client=client_ip(request))  # RateLimited: the caller answers 429
        donation = donation_open(checked, user=request.user)
    except DonationRefused as refused:
        for field, message in refused.errors.items():
            form.add_error(FORM_FIELDS.get(field), message)
        return None
    except ProviderUnavailable as unavailable:  # its settings are invalid here: not offered, but a stale form
        form.add_error(None, _("%(problem)s Please choose another way to pay.") % {"problem": unavailable.message})
        return None
    amount: Decimal = data["amount_value"]
    _remember_details(
        request,
        donation.reference,
        {
            "amount": f"{amount.normalize():f}",
            "phone": data["phone_number"],
            "provider": data["provider"],
            "channel": data["channel"],
            "name": data["name"],
            "email": data["email"],
        },
    )
    try:
        payment = donation_pay(donation, checked)
    except PaymentStartFailed as failure:
        form.add_error(
            None,
            _(
                "The payment could not be started: %(problem)s No money was taken. "
                "Please check the details and try again, or choose another way to pay."
            )
            % {"problem": failure.error.message},
        )
        return None
    if payment.checkout_url:
        return redirect(payment.checkout_url)
    return redirect("donation-status-page", reference=donation.public_token)


def _start_pledge(request: HttpRequest, form: DonateForm, donation_request: DonationRequest) -> HttpResponse | None:
    """The monthly pledge, by the service the pledge API uses; its page gives the manage link."""
    try:
        pledge = pledge_create(donation_request, day_of_month=form.cleaned_data["day_of_month"], user=request.user)
    except DonationRefused as refused:
        for field, message in refused.errors.items():
            form.add_error(FORM_FIELDS.get(field, field if field in form.fields else None), message)
        return None
    except ProviderUnavailable as unavailable:
        form.add_error(None, _("%(problem)s Please choose another way to pay.") % {"problem": unavailable.message})
        return None
    return render(request, "pledge_started.html", {"pledge": pledge, "manage_url": manage_url(pledge)}, status=201)


def _status_context(request: HttpRequest, reference: str) -> dict:
    """By the public token for anyone holding the link; by the reference only for its donor (signed in, or
    this browser that made it) and staff. Anyone else: 404, as for a donation that does not exist."""
    donation = donation_for_reader(
        handle=reference, user=request.user, session_references=request.session.get(SESSION_KEY, {})
    )
    if donation is None:
        raise Http404("No such donation")
    payment = payment_latest_for_donation(donation_id=donation.pk)
    return {
        "donation": donation,
        "payment": payment,
        "is_card": bool(payment and payment.checkout_url),
        "channel_label": method_name(method_label(payment.provider, payment.channel)) if payment else "",
        "reason": friendly_reason(donation.status, donation.status_reason),
        "try_again_url": try_again_url(request, donation),
        "returned": request.GET.get("return", ""),
    }


@require_GET
def donation_status_page(request: HttpRequest, reference: str) -> HttpResponse:
    return render(request, "donation_status.html", _status_context(request, reference))


@require_GET
def donation_status_panel(request: HttpRequest, reference: str) -> HttpResponse:
    """The status page's live region alone: the page's script swaps it in when the status changes."""
    return render(request, "_status_panel.html", _status_context(request, reference))


# --- Accounts --------------------------------------------------------------------------------------------


def signup(request: HttpRequest) -> HttpResponse:
    """The same page whether or not the account was made (donor.services.donor_signup): the email says which, and
    the donor then signs in. Signing them in here would tell anyone whether the username or email was free."""
    if request.user.is_authenticated:
        return redirect("my-donations-page")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            donor_signup(**form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return render(request, "registration/signup_done.html", {"email": form.cleaned_data["email"]})
    return render(request, "registration/signup.html", {"form": form})


@login_required(login_url="login")
def my_donations(request: HttpRequest) -> HttpResponse:
    donor = donor_for_user(user=request.user)
    rows = []
    for donation in donation_list_for_donor(donor=donor):
        payment = payment_latest_for_donation(donation_id=donation.pk)
        rows.append(
            {
                "donation": donation,
                "receipt": payment.receipt if payment else "",
                "reason": friendly_reason(donation.status, donation.status_reason),
            }
        )
    years = statement_years(donor=donor)
    return render(request, "my_donations.html", {"rows": rows, "donor": donor, "statement_years": years})


@login_required(login_url="login")
def my_pledges(request: HttpRequest) -> HttpResponse:
    """The account's monthly pledges, each with its manage link (the same signed link the messages carry)."""
    pledges = pledge_list_for_donor(donor=donor_for_user(user=request.user))
    rows = [
        {"pledge": pledge, "manage_url": manage_url(pledge), "active": pledge.status == Pledge.Status.ACTIVE}
        for pledge in pledges
    ]
    return render(request, "my_pledges.html", {"rows": rows})


@require_POST
def language_switch(request: HttpRequest) -> HttpResponse:
    """Django's set_language (the cookie, back to `next`); a signed-in donor's messages follow the choice too."""
    response = set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        donor_language_set(user=request.user, language=language)
    return response
