"""Concurrent duplicate M-Pesa STK callbacks against a real MariaDB/MySQL server: one credit, always.

Skipped on SQLite (conftest). Daraja's STK query is mocked with `responses` (patched process-wide, so every
thread sees it); each thread has its own test Client and database connection.
"""

import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from django.core.cache import cache
from django.db import connection
from django.test import Client

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.factories import CHECKER_PERMISSIONS, MAKER_PERMISSIONS, PaymentFactory, staff_user, token_for

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mpesa"
API = "https://daraja.test"
CHECKOUT_ID = "ws_CO_191220191020363925"
ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}
THREADS = 20


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def mpesa_settings(settings):
    cache.clear()
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mpesa": {
            **settings.PAYMENT_PROVIDERS["mpesa"],
            "consumer_key": "k",
            "consumer_secret": "s",
            "shortcode": "174379",
            "passkey": "p",
            "api_url": API,
            "trust_callbacks": False,
            "allowed_ips": [],
        },
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(f"{API}/oauth/v1/generate", json=fixture("token_success.json"))
        answer = fixture("query_success.json") | {"CheckoutRequestID": CHECKOUT_ID}
        daraja.post(f"{API}/mpesa/stkpushquery/v1/query", json=answer)
        yield daraja
    cache.clear()


@pytest.fixture
def payment():
    return PaymentFactory(
        provider="mpesa",
        channel="",
        msisdn="254708374149",
        provider_reference=CHECKOUT_ID,
        donation__amount=Decimal("1.00"),
        donation__currency="KES",
        donation__patient__currency="KES",
        donation__patient__funding_goal=Decimal("100000"),
    )


def success_body() -> dict:
    body = fixture("callback_success_balance_without_value.json")
    body["Body"]["stkCallback"]["CheckoutRequestID"] = CHECKOUT_ID
    return body


def run_together(targets) -> list:
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    errors: list[BaseException] = []

    def worker(index, target):
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running after 60 s"
    assert not errors, errors
    return results


def poster(path: str, body: bytes):
    def send():
        response = Client().post(path, data=body, content_type="application/json")
        return response.status_code, response.json()

    return send


def assert_credited_once(payment):
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    patient = payment.donation.patient
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("1.00")
    assert Allocation.objects.count() == 1


def test_the_same_stk_callback_twenty_times_at_once_credits_once(payment):
    body = json.dumps(success_body()).encode()
    answers = run_together([poster("/webhooks/mpesa/stkpush/", body)] * THREADS)
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    assert CallbackEvent.objects.count() == THREADS
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1


def test_differently_encoded_copies_on_every_path_at_once_credit_once(payment):
    """Bytes differ, so the inbox's dedup key cannot help: the payment row lock must."""
    data = success_body()
    paths = [
        "/webhooks/mpesa/stkpush/",
        f"/webhooks/mpesa/stkpush/{token_for(payment)}/",
        "/api/v1/payments/mpesa/callback",
        "/mpesa/callback",
    ]
    targets = [poster(paths[i % len(paths)], json.dumps(data, indent=i).encode()) for i in range(THREADS)]
    answers = run_together(targets)
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.PROCESSED).count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.IGNORED).count() == THREADS - 1


def test_trusted_token_callbacks_at_once_credit_once(payment, settings):
    settings.PAYMENT_PROVIDERS["mpesa"]["trust_callbacks"] = True
    data = success_body()
    path = f"/webhooks/mpesa/stkpush/{token_for(payment)}/"
    answers = run_together([poster(path, json.dumps(data, indent=i).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    assert_credited_once(payment)
    payment.refresh_from_db()
    assert payment.receipt == "NLJ7RT61SV"


C2B_SECRET = "c2b-secret-token"


def c2b_confirmation(trans_id: str = "RKL51ZDR4F") -> dict:
    return {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": "20231121121325",
        "TransAmount": "500.00",
        "BusinessShortCode": "600984",
        "BillRefNumber": "pat-ke-09",
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "NICHOLAS",
        "MiddleName": "",
        "LastName": "",
    }


def test_concurrent_duplicate_c2b_confirmations_create_one_donation(settings):
    from donor.models import Donation
    from patients.tests.factories import PatientFactory

    settings.PAYMENT_PROVIDERS["mpesa"].update({"c2b_shortcode": "600984", "c2b_token": C2B_SECRET})
    patient = PatientFactory(code="PAT-KE-09", currency="KES", funding_goal=Decimal("100000"))
    data = c2b_confirmation()
    path = f"/webhooks/mpesa/c2b/confirmation/{C2B_SECRET}/"
    answers = run_together([poster(path, json.dumps(data, indent=i % 3).encode()) for i in range(THREADS)])
    assert answers == [(200, ACK)] * THREADS
    assert Donation.objects.count() == 1
    assert Payment.objects.filter(provider_reference="RKL51ZDR4F").count() == 1
    assert Allocation.objects.count() == 1
    patient.refresh_from_db()
    assert patient.funding_received == Decimal("500.00")


def test_two_checkers_approving_at_once_send_one_payout(settings):

    from patients.models import Patient
    from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
    from payments.models import Payout
    from payments.services.payouts import PayoutRefused, payout_approve, payout_request

    settings.PAYMENT_PROVIDERS["mpesa"].update(
        {"b2c_shortcode": "600992", "initiator_name": "testapi", "security_credential": "c", "b2c_token": "t"}
    )
    partner = TreatmentPartnerFactory(payout_provider="mpesa", payout_msisdn="254708374149")
    patient = PatientFactory(
        currency="KES", funding_received=Decimal("5000"), status=Patient.Status.FULLY_FUNDED, treatment_partner=partner
    )
    maker = staff_user("maker", *MAKER_PERMISSIONS)
    checkers = [staff_user(f"checker{i}", *CHECKER_PERMISSIONS) for i in range(5)]
    payout = payout_request(patient=patient, amount=Decimal("5000"), requested_by=maker)

    def approve(user):
        def run():
            try:
                return payout_approve(payout_id=payout.pk, approved_by=user).status
            except PayoutRefused:
                return "refused"

        return run

    with responses.RequestsMock(assert_all_requests_are_fired=False) as daraja:
        daraja.get(f"{API}/oauth/v1/generate", json=fixture("token_success.json"))
        daraja.post(
            f"{API}/mpesa/b2c/v3/paymentrequest",
            json={"ConversationID": "AG_1", "OriginatorConversationID": payout.reference, "ResponseCode": "0"},
        )
        results = run_together([approve(user) for user in checkers])
        sent = [c for c in daraja.calls if c.request.url.endswith("/paymentrequest")]
    assert sorted(results) == ["refused"] * 4 + ["sent"]
    assert len(sent) == 1
    assert Payout.objects.get().status == Payout.Status.SENT
