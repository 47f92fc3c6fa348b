"""Forms of the donor portal. They read what a donor typed; the rules (limits, phone numbers, which method
collects which currency) are the services' (payments.services.donations), shared with the JSON API."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from donor.services import parse_amount


class DonateForm(forms.Form):
    """One donation: an amount (a preset or a custom one), a payment method and the payer's phone.

    `methods` are (value, label) pairs such as ("azampay:Mpesa", "M-Pesa"); the value says provider and channel.
    """

    amount = forms.CharField(required=False, label=_("Amount"))
    custom_amount = forms.CharField(
        required=False,
        label=_("Other amount"),
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    method = forms.ChoiceField(label=_("Pay with"), widget=forms.RadioSelect)
    phone_number = forms.CharField(
        required=False,
        label=_("Mobile money number"),
        help_text=_("The number that gets the PIN prompt, for example 0712 345 678."),
        max_length=32,
        widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "tel"}),
    )
    name = forms.CharField(
        required=False,
        max_length=200,
        label=_("Your name (optional)"),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        required=False,
        label=_("Email for your receipt (optional)"),
        help_text=_("We send your receipt here, and never share it."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    message = forms.CharField(
        required=False, max_length=1000, label=_("A message (optional)"), widget=forms.Textarea(attrs={"rows": 2})
    )
    anonymous = forms.BooleanField(required=False, label=_("Don't show my name on the patient's page"))
    monthly = forms.BooleanField(required=False, label=_("Give monthly"))
    day_of_month = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label=_("Day of each month"),
        help_text=_("We remind you two days before, then send the payment prompt to your phone on the day."),
        choices=[("", "—"), *((day, str(day)) for day in range(1, 29))],
    )

    def __init__(self, *args, currency: str, methods: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["method"].choices = methods

    def clean(self) -> dict:
        data = super().clean()
        raw = (data.get("custom_amount") or "").strip() or (data.get("amount") or "").strip()
        if not raw:
            self.add_error("custom_amount", _("Choose an amount or type one."))
        else:
            try:
                data["amount_value"] = parse_amount(raw)
            except ValidationError as exc:
                self.add_error("custom_amount", exc.messages[0])
        method = data.get("method", "")
        data["provider"], _colon, data["channel"] = method.partition(":")
        data["phone_number"] = (data.get("phone_number") or "").strip()
        if data.get("monthly") and not data.get("day_of_month"):
            self.add_error("day_of_month", _("Choose the day of the month to give on."))
        return data


class SignupForm(forms.Form):
    username = forms.CharField(
        max_length=150, label=_("Username"), widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    email = forms.EmailField(
        label=_("Email"),
        help_text=_("For your receipts. Never shown to anyone."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    name = forms.CharField(
        max_length=200,
        required=False,
        label=_("Your name (optional)"),
        help_text=_("Patients see only your first name, unless you give anonymously."),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    phone_number = forms.CharField(
        max_length=32,
        required=False,
        label=_("Mobile number (optional)"),
        widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "tel"}),
    )
    password = forms.CharField(
        label=_("Password"),
        help_text=_("At least 8 characters, not only numbers, not like your username."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        strip=False,
    )

    def add_service_errors(self, error: ValidationError) -> None:
        """Show donor_register's errors next to the fields they name."""
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)
