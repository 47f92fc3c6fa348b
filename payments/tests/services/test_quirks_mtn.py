"""MTN MoMo's own ways (the shared properties are test_pipeline.py's and test_pipeline_money_out.py's): a callback on
its secret URL needs no reference in its body, a body naming another payment on it is held. Its remittance notices
are test_pipeline.py's, with Airtel's."""

import pytest

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.drivers import Mtn, deliver, driver_fixtures
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited

pytestmark = pytest.mark.django_db

rail, payment = driver_fixtures(Mtn)
ACK = Mtn.ack


def test_a_callback_on_the_secret_url_attaches_to_its_payment_without_any_reference_in_the_body(rail, payment):
    rail.answer("status_successful.json")
    assert deliver(rail.secret_url(payment), rail.unknown(payment)[1], method="put") == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == Mtn.amount
    event = CallbackEvent.objects.get()
    assert event.payment == payment and event.status == CallbackEvent.Status.PROCESSED
    assert rail.asked() == 1  # asked about the payment's own X-Reference-Id


def test_a_secret_url_of_one_payment_with_the_body_of_another_is_held_for_review(rail, payment):
    other = PaymentFactory(
        provider="mtn",
        channel="",
        provider_reference="0b7e4c2a-9f1d-4e3b-8a6c-5d2f1e0a9b8c",
        donation__currency="EUR",
        donation__patient__currency="EUR",
    )
    body = rail.success_body(payment) | {"externalId": other.reference, "referenceId": other.provider_reference}
    assert deliver(rail.secret_url(payment), body) == (200, ACK)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and event.payment == payment
    assert Allocation.objects.count() == 0
    assert rail.asked() == 0
