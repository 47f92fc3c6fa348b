"""Fault paths of the money path, provider side mocked with `responses`: a request that may have reached the provider,
a callback that races the answer to our own request. Each case ends with the money recorded and either credited once
or held for review. (What every provider's callback does is test_pipeline.py's, with the trust setting's meaning.)"""

import json
from decimal import Decimal

import pytest
import requests
import responses

from donor.models import Allocation, Donation
from donor.services import donation_create
from patients.tests.factories import PatientFactory
from payments.models import CallbackEvent, Payment
from payments.providers.base import PaymentStatus, ProviderResult
from payments.services.payments import payment_apply_result, payment_start
from payments.tests.drivers import deliver
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import credited
from payments.tests.mpesa_fakes import ACK, QUERY_URL, STK_URL, fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mpesa_settings")]

CHECKOUT_ID = "ws_CO_011220261200000001"


@pytest.fixture
def donation():
    patient = PatientFactory(currency="KES", funding_goal=Decimal("100000"))
    return donation_create(patient=patient, amount=Decimal("100"), currency="KES")


# --- ambiguous is not failed ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["query_success.json", "query_pending_4999.json"], ids=["paid", "still-pending"])
def test_stk_push_timing_out_leaves_the_payment_pending_and_its_token_callback_settles_it(daraja, donation, query):
    """The push reached Daraja (the phone rang) but the answer never came back: we never learnt the
    CheckoutRequestID. The callback on the payment's own secret URL still finds it, and the STK query
    with the callback's CheckoutRequestID confirms it before anything is credited (while Daraja says pending,
    nothing is)."""
    tokens = []

    def push_then_time_out(request):
        tokens.append(json.loads(request.body)["CallBackURL"].rstrip("/").rsplit("/", 1)[-1])
        raise requests.ReadTimeout("read timed out")

    daraja.add_callback(responses.POST, STK_URL, callback=push_then_time_out)
    payment = payment_start(donation=donation, provider_code="mpesa", msisdn="254708374149")

    assert payment.status == Payment.Status.PENDING and payment.start_outcome_unknown
    assert payment.provider_reference is None
    assert Donation.objects.get(pk=donation.pk).status == Donation.Status.PENDING  # not "failed"
    assert len(daraja.calls) == 2  # the token, then the push: sent once, never again

    daraja.post(QUERY_URL, json=fixture(query) | {"CheckoutRequestID": CHECKOUT_ID})
    body = fixture("callback_success_documented.json")  # Daraja's documented success, about the KES 100 we asked
    callback = body["Body"]["stkCallback"]
    callback["CheckoutRequestID"] = CHECKOUT_ID
    next(item for item in callback["CallbackMetadata"]["Item"] if item["Name"] == "Amount")["Value"] = 100
    assert deliver(f"/webhooks/mpesa/stkpush/{tokens[0]}/", body) == (200, ACK)  # verified on commit

    payment.refresh_from_db()
    asked = json.loads([c for c in daraja.calls if c.request.url == QUERY_URL][0].request.body)
    assert asked["CheckoutRequestID"] == CHECKOUT_ID
    if query == "query_pending_4999.json":
        assert payment.status == Payment.Status.PENDING and credited(donation.patient) == 0
        assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
        return
    assert payment.status == Payment.Status.SUCCEEDED and payment.provider_reference == CHECKOUT_ID
    assert credited(donation.patient) == Decimal("100")


# --- no stale write moves a state backwards -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "via_api"),
    [(requests.ReadTimeout("late"), False),
     ((500, {}, json.dumps({"errorCode": "500.001.1001", "errorMessage": "Unable to lock subscriber"})), False),
     ((400, {}, json.dumps({"errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid Amount"})), True)],
    ids=["timeout", "refusal", "refusal-answered-by-the-api"],
)  # fmt: skip
def test_a_push_answer_arriving_after_the_callback_credited_the_payment_never_undoes_it(
    daraja, donation, api_client, answer, via_api
):
    def settled_first(request):  # the payer is quicker: the payment is settled while we still wait for Daraja
        payment = Payment.objects.get()
        paid = ProviderResult(status=PaymentStatus.SUCCEEDED, amount=payment.amount, receipt="TL9")
        payment_apply_result(payment_id=payment.pk, result=paid, verified=True)
        if isinstance(answer, Exception):  # then Daraja's late answer: raised, or (status, headers, body)
            raise answer
        return answer

    daraja.add_callback(responses.POST, STK_URL, callback=settled_first)
    if via_api:  # the API answers with what the callback settled, not with the refusal
        request = {"patient": donation.patient.code, "amount": "100", "currency": "KES", "provider": "mpesa",
                   "phone_number": "0708374149"}  # fmt: skip
        response = api_client.post("/api/v1.0/donors/donations/", request, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "completed"
    else:
        payment_start(donation=donation, provider_code="mpesa", msisdn="254708374149")

    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.COMPLETED
    assert credited(donation.patient) == Decimal("100")
    assert Allocation.objects.filter(donation=payment.donation_id).count() == 1


def test_a_second_payment_of_an_already_paid_donation_is_recorded_and_flagged_not_lost(donation):
    first = PaymentFactory(donation=donation, provider="mpesa", reference=donation.reference)
    second = PaymentFactory(donation=donation, provider="mpesa", reference=f"{donation.reference}-2")
    paid = ProviderResult(status=PaymentStatus.SUCCEEDED, amount=Decimal("100"))
    payment_apply_result(payment_id=first.pk, result=paid, verified=True)
    payment_apply_result(payment_id=second.pk, result=paid, verified=True)

    second.refresh_from_db()
    assert second.status == Payment.Status.SUCCEEDED and second.needs_review  # the money moved: someone looks
    assert credited(donation.patient) == Decimal("100")  # credited once
    assert Allocation.objects.filter(donation=donation).count() == 1
