"""A status answer credits a payment only when something a forger cannot choose binds it to that payment: the id
we asked about was learnt from an authenticated source (the checkout answer, an authenticated callback, the
payment's own secret URL, or an id we chose ourselves), or the answer itself names our reference and the amount.
The attack (issue 18, item 1): with AZAMPAY_CALLBACK_PASSWORD empty, a forged callback names our reference and
*another* transaction's AzamPay id; AzamPay's documented answer about that id ("Transaction successful.", with no
reference and no amount) must not be taken as ours."""

from decimal import Decimal

import pytest
from responses import matchers

from donor.models import Donation
from payments.models import CallbackEvent, Payment
from payments.services.reconcile import payments_reconcile
from payments.tests.azampay_fakes import ACK, CALLBACK_URL, PASSWORD, STATUS_URL, fixture
from payments.tests.drivers import AzamPay, deliver
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings", "no_callback_password")]

AMOUNT = Decimal("900000")
OTHER_ID = "5aae72e0c93a4d0e9a1b2c3d4e5f6a7b"  # a completed transaction's AzamPay id (public on its status page)


def unpaid(provider_reference: str | None = None) -> Payment:
    """A card payment: AzamPay's hosted page gives no transaction id up front, so we have none for it; or, with the
    id from its checkout answer, an MNO payment."""
    return PaymentFactory(
        channel="Mpesa" if provider_reference else "card",
        provider_reference=provider_reference,
        donation__amount=AMOUNT,
        donation__patient__funding_goal=Decimal("5000000"),
    )  # in TZS, the factories' currency


def forged_callback(payment: Payment, status: str = "success", password: str | None = None) -> dict:
    """What anyone can send: our reference (guessable) and someone else's AzamPay id; no password (unless given)."""
    ids = dict.fromkeys(("reference", "externalreference", "transid"), OTHER_ID)
    return AzamPay.body(payment, status=status, password=password, **ids)


# What AzamPay answers about the forged id (over its documented answer, which names no reference and no amount).
ANSWERS = {
    "an-outside-id": {},
    "another-donations-id": {},  # the id of an earlier donor's completed donation, as its status page showed it
    "reference-only": {"utilityref": "{reference}"},
    "amount-only": {"amount": "900000"},
    "another-reference": {"utilityref": "RHCI-DN-1-20260101000000", "amount": "900000"},
    "another-amount": {"utilityref": "{reference}", "amount": "1000"},
    "reference-and-amount": {"utilityref": "{reference}", "amount": "900000"},
    "pending": {"data": "Transaction pending."},  # not even a "not yet" is remembered about it
}


@pytest.mark.parametrize("case", ANSWERS)
def test_an_answer_about_an_unauthenticated_id_credits_only_when_it_names_our_reference_and_amount(azam, case):
    if case == "another-donations-id":
        PaymentFactory(provider_reference=OTHER_ID, status=Payment.Status.SUCCEEDED)
    payment = unpaid()
    answer = fixture("status_success.json")
    answer.update({key: value.format(reference=payment.reference) for key, value in ANSWERS[case].items()})
    match = [matchers.query_param_matcher({"pgReferenceId": OTHER_ID}, strict_match=False)]
    asked = azam.get(STATUS_URL, json=answer, match=match)

    assert deliver(CALLBACK_URL, forged_callback(payment)) == (200, ACK)  # nothing tells the forger what happened
    payment.refresh_from_db()
    if case == "reference-and-amount":  # AzamPay itself said this id is our payment's: now it is bound
        assert payment.status == Payment.Status.SUCCEEDED and payment.provider_reference == OTHER_ID
        assert credited(payment) == AMOUNT
        return
    assert payment.status == Payment.Status.PENDING
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.PENDING
    assert credited(payment) == 0
    assert payment.provider_reference is None  # the forged id is not adopted as this payment's either
    event = CallbackEvent.objects.get(payment=payment)
    assert event.status == CallbackEvent.Status.REVIEW and "not bound" in event.error
    assert asked.call_count <= 1

    # Nor is the forged id remembered: else it becomes the payment's own, and the next scheduled query credits on it.
    azam.replace("GET", STATUS_URL, json=fixture("status_success.json"))
    Payment.objects.filter(pk=payment.pk).update(next_check_at=None)
    payments_reconcile()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and credited(payment) == 0


@pytest.mark.parametrize("bound_by", ["the-checkout-answer", "an-authenticated-callback"])
def test_the_id_from_the_checkout_answer_or_an_authenticated_callback_is_the_one_asked_about(azam, settings, bound_by):
    """An MNO payment has AzamPay's id from the checkout answer: that id, never the callback's, is asked about (here
    still pending). With the dashboard password the callback is authenticated: the id it names is ours to ask about
    (here a failure, which is always re-asked before it is applied)."""
    checkout = bound_by == "the-checkout-answer"
    payment = unpaid("b85e971981844a6f8888b42579655b8f" if checkout else None)
    if not checkout:
        settings.PAYMENT_PROVIDERS["azampay"]["callback_password"] = PASSWORD
    bound = payment.provider_reference or OTHER_ID
    answer = fixture("status_success.json") | ANSWERS["pending"] if checkout else fixture("status_failed.json")
    match = [matchers.query_param_matcher({"pgReferenceId": bound}, strict_match=False)]
    asked = azam.get(STATUS_URL, json=answer, match=match)
    deliver(CALLBACK_URL, forged_callback(payment) if checkout else forged_callback(payment, "failure", PASSWORD))

    assert asked.call_count == 1
    payment.refresh_from_db()
    assert payment.provider_reference == bound and credited(payment) == 0
    assert payment.status == (Payment.Status.PENDING if checkout else Payment.Status.FAILED)
