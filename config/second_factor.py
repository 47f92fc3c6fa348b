"""A second factor (TOTP, django-otp) for the staff who can move money out: payout and refund approvers.

Who needs it: an active staff user who holds `payments.approve_payout` or `payments.approve_refund` (directly,
through a group, or as a superuser). Everyone else signs in to the admin with a password only. The admin
(`config.admin_site.CharityAdminSite`) refuses an approver whose session was not verified by a device, and its
login form asks approvers for the code. Enrolment: `manage.py otp_enroll <username>` (docs/security.md).
"""

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django_otp import devices_for_user
from django_otp.forms import OTPAuthenticationFormMixin
from django_otp.models import Device

# The checkers of money leaving: payouts, refunds, and changes to where payouts go (patients.destinations).
APPROVER_PERMISSIONS = (
    "payments.approve_payout",
    "payments.approve_refund",
    "patients.approve_destination_change",
    "finance.approve_writeoff",  # a month-close write-off gives money up for lost
)


def needs_second_factor(user: Any) -> bool:
    """True for staff who can approve payouts, refunds or payout destination changes (superusers hold every
    permission)."""
    if not (getattr(user, "is_authenticated", False) and user.is_active and user.is_staff):
        return False
    return any(user.has_perm(perm) for perm in APPROVER_PERMISSIONS)


def is_verified(user: Any) -> bool:
    """Whether this request's session was verified by one of the user's confirmed devices (OTPMiddleware)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def has_device(user: Any) -> bool:
    return any(True for _ in devices_for_user(user, confirmed=True))


def not_enrolled_message(username: str) -> str:
    return (
        "Your account can approve payouts, refunds or payout destinations, so it must sign in with a code from "
        "an authenticator app, and no authenticator is enrolled for it. Ask an operator to run "
        f'"python manage.py otp_enroll {username}" and add the key it prints to your authenticator app.'
    )


def admin_notice(user: Any) -> str:
    """What the admin login page tells a signed-in approver whose session has no second factor."""
    if not needs_second_factor(user) or is_verified(user):
        return ""
    if not has_device(user):
        return not_enrolled_message(user.get_username())
    return (
        "Your account can approve payouts, refunds or payout destinations: sign in here again with your password "
        "and the 6-digit code from your authenticator app."
    )


class CharityAdminAuthenticationForm(OTPAuthenticationFormMixin, AdminAuthenticationForm):
    """The admin login: username and password for every staff user, plus a TOTP code for approvers.

    A wrong code counts as a failed login for django-axes, like a wrong password."""

    otp_device = forms.CharField(required=False, widget=forms.Select)
    otp_token = forms.CharField(
        required=False,
        label="Authenticator code",
        help_text=(
            "Only for staff who approve payouts, refunds or payout destinations: the 6-digit code from your "
            "authenticator app."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    otp_challenge = forms.CharField(required=False)  # django-otp's challenge button (not offered: TOTP only)

    otp_error_messages = {
        **OTPAuthenticationFormMixin.otp_error_messages,
        "token_required": (
            "Your account can approve payouts, refunds or payout destinations: enter the code from your "
            "authenticator app."
        ),
        "invalid_token": "That authenticator code is not right (or was already used). Enter the current one.",
    }

    def clean(self) -> dict[str, Any]:
        self.cleaned_data = super().clean()
        user = self.get_user()
        if user is None or not needs_second_factor(user):
            return self.cleaned_data
        if not has_device(user):
            raise forms.ValidationError(not_enrolled_message(user.get_username()), code="otp_not_enrolled")
        try:
            self.clean_otp(user)
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_token":
                user_login_failed.send(
                    sender=__name__, credentials={"username": user.get_username()}, request=self.request
                )
            raise
        return self.cleaned_data

    def _chosen_device(self, user: Any) -> Device | None:
        """The device picked in the form, or the user's only device: most approvers have one, and asking them
        to pick it from a list first would be a second round trip for nothing."""
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device

    def show_device_choice(self) -> bool:
        """The template shows the device list only when the user has more than one."""
        choices = getattr(self.fields["otp_device"].widget, "choices", [])
        return len(choices) > 2  # the blank entry and two or more devices
