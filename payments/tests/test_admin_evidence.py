"""Evidence in the admin: a payment's timeline explains it on one page, nobody (not a superuser) can delete or
edit money records, and what people do to money is recorded with their name."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.tests.helpers import login_with_second_factor
from payments.models import AuditEntry, CallbackEvent, Payment, PaymentHistory
from payments.tests.azampay_fakes import callback_body
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


@pytest.fixture
def superuser_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", "ops@example.org", "ops-pass-123")
    login_with_second_factor(client, admin)  # a superuser can approve payouts: admin needs the second factor
    return client


def _page(client, payment: Payment) -> str:
    response = client.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_timeline_shows_status_query_answer_state_change_and_who_checked(superuser_client, azam_says_paid):
    payment = PaymentFactory()
    superuser_client.post(
        "/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]}
    )
    kinds = list(PaymentHistory.objects.filter(payment=payment).values_list("kind", "cause"))
    assert ("status_query", "") in kinds
    assert any(kind == "transition" and cause.startswith("status query") for kind, cause in kinds)
    audit = AuditEntry.objects.get(target=f"payment {payment.reference}")
    assert audit.actor.username == "ops" and audit.action == "payment.check"

    html = _page(superuser_client, payment)
    assert "status query" in html and "state change" in html and "cause: status query (checked on demand)" in html
    assert "ops: payment.check" in html
    assert "Check with provider now" not in html  # a settled payment offers no check


def test_timeline_shows_callback_deliveries_with_verdict_and_next_check(superuser_client):
    payment = PaymentFactory(next_check_at=timezone.now() + timedelta(minutes=2))
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment).decode(),
        body_digest="d1",
        status=CallbackEvent.Status.REJECTED,
        trust="untrusted",
        client_ip="203.0.113.9",
        error="forged: callback password wrong",
        payment=payment,
    )
    html = _page(superuser_client, payment)
    assert f"callback #{event.pk}" in html and "203.0.113.9" in html and "rejected, untrusted" in html
    assert "forged: callback password wrong" in html
    assert f"/admin/payments/callbackevent/{event.pk}/change/" in html
    assert "next status query (check 1 on the reconciliation ladder)" in html
    assert "Check with provider now" in html and "applies its answer" in html  # the button, with what it does


def test_charge_request_recorded_in_history(client, azam):
    """A real start through the API records the request and the provider's answer."""
    from patients.tests.factories import PatientFactory
    from payments.tests.azampay_fakes import MNO_URL, fixture

    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    patient = PatientFactory(currency="TZS")
    body = {"patient": patient.code, "amount": "5000", "currency": "TZS", "provider": "azampay", "channel": "Mpesa"}
    response = client.post(
        "/api/v1.0/donors/donations/", {**body, "phone_number": "0712345678"}, content_type="application/json"
    )
    assert response.status_code in (201, 202), response.content
    payment = Payment.objects.get()
    start = PaymentHistory.objects.get(payment=payment, kind="start")
    assert "azampay" in start.summary.lower() or "mpesa" in start.summary.lower()


EVIDENCE_URLS = [
    "payments/payment",
    "payments/callbackevent",
    "donor/donation",
    "donor/allocation",
    "payments/paymenthistory",
    "payments/auditentry",
]


def _evidence_objects() -> dict[str, int]:
    from donor.models import Allocation

    payment = PaymentFactory()
    event = CallbackEvent.objects.create(provider="azampay", body="{}", body_digest="d2", payment=payment)
    allocation = Allocation.objects.create(
        donation=payment.donation, patient=payment.donation.patient, amount=payment.amount, entry="credit"
    )
    history = PaymentHistory.objects.create(payment=payment, kind="start", summary="charge requested")
    audit = AuditEntry.objects.create(action="payment.check", target=f"payment {payment.reference}")
    return {
        "payments/payment": payment.pk,
        "payments/callbackevent": event.pk,
        "donor/donation": payment.donation.pk,
        "donor/allocation": allocation.pk,
        "payments/paymenthistory": history.pk,
        "payments/auditentry": audit.pk,
    }


@pytest.mark.parametrize("model", EVIDENCE_URLS)
def test_superuser_cannot_delete_or_edit_evidence(superuser_client, model):
    pk = _evidence_objects()[model]
    app_label, model_name = model.split("/")
    from django.apps import apps

    Model = apps.get_model(app_label, model_name)
    before = Model.objects.filter(pk=pk).values().get()

    assert superuser_client.get(f"/admin/{model}/{pk}/delete/").status_code == 403
    assert superuser_client.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = superuser_client.get(f"/admin/{model}/")
    assert changelist.status_code == 200
    assert b'value="delete_selected"' not in changelist.content
    superuser_client.post(f"/admin/{model}/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
    page = superuser_client.get(f"/admin/{model}/{pk}/change/")
    assert page.status_code == 200  # viewable
    assert b'name="_save"' not in page.content and b"deletelink" not in page.content
    superuser_client.post(f"/admin/{model}/{pk}/change/", {"status": "failed", "amount": "1"})
    assert superuser_client.get(f"/admin/{model}/add/").status_code == 403

    assert Model.objects.filter(pk=pk).values().get() == before


def test_replay_is_audited_with_the_user(superuser_client):
    payment = PaymentFactory()
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment).decode(),
        body_digest="d3",
        status=CallbackEvent.Status.FAILED,
        trust="trusted",
    )
    superuser_client.post("/admin/payments/callbackevent/", {"action": "replay", "_selected_action": [event.pk]})
    entry = AuditEntry.objects.get(target=f"callback #{event.pk}")
    assert entry.actor.username == "ops" and entry.action == "callback.replay"
    # and the event's page offers the buttons with what they do
    html = superuser_client.get(f"/admin/payments/callbackevent/{event.pk}/change/").content.decode()
    assert "Dry-run replay" in html and "nothing is credited twice" in html
