from decimal import Decimal

import factory

from donor.tests.factories import DonationFactory
from payments.models import Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    donation = factory.SubFactory(DonationFactory)
    reference = factory.LazyAttribute(lambda p: p.donation.reference)
    provider = "azampay"
    channel = "Mpesa"
    msisdn = "255712345678"
    amount = factory.LazyAttribute(lambda p: p.donation.amount)
    currency = factory.LazyAttribute(lambda p: p.donation.currency)
    status = Payment.Status.PENDING
    provider_reference = factory.Sequence(lambda n: f"{n:032x}")


# The admin powers over money, as the roles hold them (payments.models: Payout, CallbackEvent, Payment Meta).
MAKER_PERMISSIONS = ("payments.add_payout", "payments.view_payout")
CHECKER_PERMISSIONS = ("payments.approve_payout", "payments.resolve_payout", "payments.view_payout")
REFUND_MAKER_PERMISSIONS = ("payments.add_refund", "payments.view_refund")
REFUND_CHECKER_PERMISSIONS = ("payments.approve_refund", "payments.resolve_refund", "payments.view_refund")


def staff_user(username: str, *permissions: str):
    """A staff user holding exactly these permissions ("app_label.codename")."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # a fresh object: the permission cache is empty


def token_for(payment: Payment) -> str:
    """Give a payment a known callback URL secret (only its digest is stored) and return the secret."""
    from payments.url_tokens import new_url_token, url_token_digest

    token = new_url_token()
    Payment.objects.filter(pk=payment.pk).update(callback_token_digest=url_token_digest(token))
    payment.callback_token_digest = url_token_digest(token)
    return token


def completed_donation(patient, donor, amount="5000", *, provider="azampay", channel="Mpesa"):
    """A donation to `patient` by `donor`, paid (a succeeded payment with its receipt, AzamPay's M-Pesa unless
    told) and credited by the ledger's own donation_complete."""
    from donor.models import Donation
    from donor.services import donation_complete, donation_create

    donation = donation_create(patient=patient, amount=Decimal(amount), currency=patient.currency, donor=donor)
    Payment.objects.create(donation=donation, reference=donation.reference, provider=provider, channel=channel,
                           msisdn="255712345678", amount=donation.amount, currency=donation.currency,
                           status=Payment.Status.SUCCEEDED, provider_reference=f"AZM-{donation.pk}",
                           receipt=f"RCPT{donation.pk}")  # fmt: skip
    donation_complete(donation_id=donation.pk)
    return Donation.objects.get(pk=donation.pk)
