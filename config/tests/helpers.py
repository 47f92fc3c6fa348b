"""Test helpers for the logins that guard money (docs/security.md)."""

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def login_with_second_factor(client: Client, user) -> TOTPDevice:
    """`client.force_login(user)` plus what the admin login form leaves behind for a payout or refund approver
    (superusers included): a confirmed TOTP device whose verification is recorded in the session."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device
