"""The admin: its pages (phones masked, secrets redacted), its actions (check with the provider, replay, dry-run
replay), and its powers over money as permissions, not just `is_staff`."""

from decimal import Decimal

import pytest

from config.tests.helpers import login_with_second_factor
from payments.models import CallbackEvent, Payment
from payments.tests.azampay_fakes import callback_body
from payments.tests.factories import PaymentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

OLD, NEW = "254708374149", "254799999999"  # a partner's approved M-Pesa number, and the one someone asks for


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", "ops@example.org", "ops-pass-123")
    login_with_second_factor(client, admin)  # a superuser can approve payouts: admin needs the second factor
    return client


def test_admin_pages_render_with_masked_phones(admin_client_logged_in):
    payment = PaymentFactory(msisdn="255712345678")
    for url in [
        "/admin/payments/payment/",
        "/admin/payments/callbackevent/",
        "/admin/donor/donation/",
        "/admin/donor/allocation/",
        "/admin/patients/patient/",
        "/admin/donor/donor/",
        f"/admin/payments/payment/{payment.pk}/change/",
    ]:
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200, url
        assert b"255712345678" not in response.content, url
    assert b"2557****678" in admin_client_logged_in.get("/admin/payments/payment/").content


def test_admin_check_with_provider_action(admin_client_logged_in, azam_says_paid):
    payment = PaymentFactory()
    response = admin_client_logged_in.post(
        "/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]}, follow=True
    )
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_admin_dry_run_replay_then_replay(admin_client_logged_in, client):
    payment = PaymentFactory()
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment, password="***").decode(),
        body_digest="x",
        status=CallbackEvent.Status.FAILED,
        trust="trusted",
    )
    response = admin_client_logged_in.post(
        "/admin/payments/callbackevent/", {"action": "dry_run_replay", "_selected_action": [event.pk]}, follow=True
    )
    assert b"would be: accepted" in response.content
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    admin_client_logged_in.post(
        "/admin/payments/callbackevent/", {"action": "replay", "_selected_action": [event.pk]}, follow=True
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    detail = admin_client_logged_in.get(f"/admin/payments/callbackevent/{event.pk}/change/")
    assert b"test-callback-password" not in detail.content


def test_a_failed_events_traceback_is_shown_read_only(admin_client_logged_in):
    event = CallbackEvent.objects.create(
        provider="azampay",
        body="{}",
        body_digest="y",
        status=CallbackEvent.Status.FAILED,
        error="RuntimeError: boom",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1, in handle\nRuntimeError: boom\n',
    )
    detail = admin_client_logged_in.get(f"/admin/payments/callbackevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert b"in handle" in detail.content
    assert b'name="traceback"' not in detail.content  # shown, never an editable field


# --- admin powers are permissions -----------------------------------------------------------------------


def staff_client(client, *permissions):
    from payments.tests.factories import staff_user

    user = staff_user("clerk", "payments.view_payment", "payments.view_callbackevent", *permissions)
    client.force_login(user)
    return client


def test_staff_without_the_check_permission_cannot_ask_the_provider(client, azam_says_paid):
    payment = PaymentFactory()
    clerk = staff_client(client)
    assert b"check_with_provider" not in clerk.get("/admin/payments/payment/").content
    clerk.post("/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]})
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_staff_with_the_check_permission_can(client, azam_says_paid):
    payment = PaymentFactory()
    clerk = staff_client(client, "payments.check_payment")
    clerk.post("/admin/payments/payment/", {"action": "check_with_provider", "_selected_action": [payment.pk]})
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_staff_without_the_replay_permission_cannot_replay(client):
    payment = PaymentFactory()
    event = CallbackEvent.objects.create(
        provider="azampay",
        body=callback_body(payment, password="***").decode(),
        body_digest="y",
        status="failed",
        trust="trusted",
    )
    clerk = staff_client(client)
    assert b'value="replay"' not in clerk.get("/admin/payments/callbackevent/").content
    clerk.post("/admin/payments/callbackevent/", {"action": "replay", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == CallbackEvent.Status.FAILED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_staff_without_the_approve_permission_are_not_offered_approve(client):
    from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
    from payments.models import Payout

    patient = PatientFactory(treatment_partner=TreatmentPartnerFactory())
    clerk = staff_client(client, "payments.view_payout", "payments.add_payout")
    Payout.objects.create(
        reference="RHCI-PO-1", patient=patient, treatment_partner=patient.treatment_partner, msisdn="254708374149",
        amount=Decimal("10"), currency="KES", requested_by=_user("maker"),
    )  # fmt: skip
    page = clerk.get("/admin/payments/payout/").content
    assert b"cancel_request" in page  # the actions are there (the list is not empty) …
    assert b"approve_and_send" not in page and b"resolve_as_failed" not in page  # … but not these


def _user(name):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name, password="x")


# --- payouts and refunds: maker-checker and resolving by hand in the admin (the rules: payments/services) -------


@pytest.fixture
def funded_patient():
    from patients.models import Patient
    from patients.tests.factories import PatientFactory, TreatmentPartnerFactory

    partner = TreatmentPartnerFactory(
        name="Kijabe Hospital", country="KE", payout_provider="mpesa", payout_msisdn=OLD, payout_account_name="KIJABE"
    )
    return PatientFactory(currency="KES", funding_goal=Decimal("50000"), funding_received=Decimal("50000"),
                          status=Patient.Status.FULLY_FUNDED, treatment_partner=partner)  # fmt: skip


@pytest.fixture
def admin_users(django_user_model):
    """Two superusers: all permissions, and still not allowed to approve their own request."""
    users = django_user_model.objects
    return (
        users.create_superuser("maker-admin", password="x", email="m@example.org"),
        users.create_superuser("checker-admin", password="x", email="c@example.org"),
    )


@pytest.mark.usefixtures("mpesa_settings")
def test_a_payout_requested_in_the_admin_is_sent_only_on_another_users_approval(
    client, daraja, funded_patient, admin_users
):
    from payments.models import Payout
    from payments.tests.mpesa_fakes import B2C_URL

    daraja.post(B2C_URL, json={"ConversationID": "AG_20240706_20106e9209f64bebd05b", "ResponseCode": "0"})
    maker, checker = admin_users
    login_with_second_factor(client, maker)  # superusers can approve: the admin wants their second factor
    response = client.post("/admin/payments/payout/add/", {"patient": funded_patient.pk, "amount": "20000"})
    assert response.status_code == 302, response.content[:2000]
    payout = Payout.objects.get()
    assert payout.requested_by == maker and payout.status == Payout.Status.REQUESTED
    action = {"action": "approve_and_send", "_selected_action": [payout.pk]}
    response = client.post("/admin/payments/payout/", action, follow=True)
    assert "someone other than its requester" in response.content.decode()
    assert Payout.objects.get().status == Payout.Status.REQUESTED
    login_with_second_factor(client, checker)
    client.post("/admin/payments/payout/", action, follow=True)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENT and payout.approved_by == checker
    assert len([c for c in daraja.calls if c.request.url == B2C_URL]) == 1


@pytest.mark.usefixtures("mpesa_settings")
def test_the_admin_refuses_an_over_limit_payout_request(client, funded_patient, admin_users):
    from payments.models import Payout

    login_with_second_factor(client, admin_users[0])
    response = client.post("/admin/payments/payout/add/", {"patient": funded_patient.pk, "amount": "50001"})
    assert response.status_code == 200 and "not yet paid out" in response.content.decode()
    assert Payout.objects.count() == 0


@pytest.fixture
def finance_client(client):
    from payments.tests.factories import staff_user

    person = staff_user("finance", "payments.view_refund", "payments.view_payout", "payments.view_callbackevent",
                        "payments.resolve_refund", "payments.resolve_payout")  # fmt: skip
    login_with_second_factor(client, person)
    client.person = person
    return client


@pytest.fixture
def money_out_staff():
    from payments.tests.factories import staff_user

    checker = ("approve_refund", "resolve_refund", "approve_payout", "resolve_payout")
    return (staff_user("maker", "payments.add_refund", "payments.add_payout"),
            staff_user("checker", *(f"payments.{p}" for p in checker)))  # fmt: skip


@pytest.mark.usefixtures("mpesa_settings")
def test_a_person_applies_a_held_refund_result_once_in_the_admin(finance_client, daraja, money_out_staff, settings):
    from payments.models import Refund
    from payments.services.refunds import refund_approve, refund_request
    from payments.tests.drivers import MpesaReversal, paid_donation, reversals
    from payments.tests.helpers import post
    from payments.tests.mpesa_fakes import API, B2C_TOKEN

    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    maker, checker = money_out_staff
    donation = paid_donation()
    daraja.post(f"{API}/mpesa/reversal/v1/request", json={"ConversationID": "AG_20261201_00004e2a5b1c7d9f0aaa",
                                                           "ResponseCode": "0"})  # fmt: skip
    refund = refund_request(donation=donation, amount=donation.amount, reason="", requested_by=maker)
    refund = refund_approve(refund_id=refund.pk, approved_by=checker)
    post(f"/webhooks/mpesa/reversal/result/{B2C_TOKEN}/", MpesaReversal.fixture("reversal_result_success.json"))
    event = CallbackEvent.objects.get()
    page = finance_client.get(f"/admin/payments/refund/{refund.pk}/change/").content.decode()
    assert f"#{event.pk} reversal_result: Review" in page  # the held result is shown on the refund

    action = {"action": "apply_held_money_out", "_selected_action": [event.pk]}
    answer = finance_client.post("/admin/payments/callbackevent/", action, follow=True).content.decode()
    assert refund.reference in answer
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and reversals(refund) == [Decimal("-1000")]
    again = finance_client.post("/admin/payments/callbackevent/", action, follow=True).content.decode()
    assert "not held" in again and reversals(refund) == [Decimal("-1000")]  # applied once


@pytest.mark.usefixtures("mpesa_settings")
def test_an_ambiguous_payout_is_resolved_as_done_with_its_receipt_in_the_admin(
    finance_client, daraja, funded_patient, money_out_staff
):
    import requests

    from payments.models import AuditEntry, Payout
    from payments.services.payouts import payout_approve, payout_request
    from payments.services.watchdog import watchdog_alerts
    from payments.tests.mpesa_fakes import B2C_URL

    maker, checker = money_out_staff
    daraja.post(B2C_URL, body=requests.ReadTimeout("slow"))
    payout = payout_request(patient=funded_patient, amount=Decimal("5000"), requested_by=maker)
    payout = payout_approve(payout_id=payout.pk, approved_by=checker)
    action = {"action": "resolve_as_done", "_selected_action": [payout.pk]}
    form = finance_client.post("/admin/payments/payout/", action).content.decode()
    assert "receipt" in form.lower()  # first the question
    finance_client.post("/admin/payments/payout/", {**action, "apply": "1", "receipt": "SG632NMUAB"}, follow=True)
    payout.refresh_from_db()
    assert (payout.status, payout.receipt, payout.needs_review) == (Payout.Status.PAID, "SG632NMUAB", False)
    assert AuditEntry.objects.filter(action="payout.resolve", actor=finance_client.person).exists()
    assert not [alert for alert in watchdog_alerts() if "payout" in alert]


# --- the payout checker's page: the full destination, and whether it changed (the rules: patients.destinations) --


@pytest.fixture
def destination_staff():
    """Who asks for payouts and for a partner's new number (one person may do both), and who approves numbers."""
    from payments.tests.factories import MAKER_PERMISSIONS, staff_user

    insider = staff_user("insider", *MAKER_PERMISSIONS, "patients.change_treatmentpartner")
    return insider, staff_user("dest-checker", "patients.approve_destination_change")


def ask_for_new_number(partner, user):
    from patients.destinations import destination_change_request

    new = {"payout_provider": "mpesa", "payout_msisdn": NEW, "payout_account_name": "MINE"}
    return destination_change_request(requested_by=user, partner=partner, new=new)


def payout_page(client, payout) -> str:
    response = client.get(f"/admin/payments/payout/{payout.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.usefixtures("mpesa_settings")
def test_the_checker_sees_the_full_number_and_that_it_changed_since_the_last_payout(
    client, daraja, funded_patient, destination_staff, checker
):
    from patients.destinations import destination_change_approve
    from payments.models import Payout
    from payments.services.payouts import payout_approve, payout_request
    from payments.tests.mpesa_fakes import B2C_URL

    insider, dest_checker = destination_staff
    daraja.post(B2C_URL, json={"ConversationID": "AG_1", "OriginatorConversationID": "x", "ResponseCode": "0"})
    first = payout_request(patient=funded_patient, amount=Decimal("10000"), requested_by=insider)
    login_with_second_factor(client, checker)
    page = payout_page(client, first)
    assert OLD in page and "KIJABE" in page  # in full, not 2547****149
    assert "FIRST payout to this partner" in page
    payout_approve(payout_id=first.pk, approved_by=checker)

    second = payout_request(patient=funded_patient, amount=Decimal("10000"), requested_by=insider)
    page = payout_page(client, second)
    assert f"unchanged: the last payout {first.reference}" in page
    assert "CHANGED" not in page

    change = ask_for_new_number(funded_patient.treatment_partner, insider)
    page = payout_page(client, second)
    assert f"Change #{change.pk} is waiting for approval" in page and NEW in page  # pending: shown, not used
    destination_change_approve(change_id=change.pk, approved_by=dest_checker)
    Payout.objects.filter(pk=second.pk).update(status=Payout.Status.CANCELLED)

    third = payout_request(patient=funded_patient, amount=Decimal("10000"), requested_by=insider)
    page = payout_page(client, third)
    assert NEW in page and "MINE" in page
    assert f"CHANGED since the last payout {first.reference}" in page
    assert f"payout_msisdn: {OLD} → {NEW}" in page and "approved by dest-checker" in page
    assert "requested by insider, approved by dest-checker" in page


@pytest.mark.usefixtures("mpesa_settings", "daraja")
def test_the_checker_is_warned_when_the_approved_destination_moved_after_the_request(
    client, funded_patient, destination_staff, checker
):
    from patients.destinations import destination_change_approve
    from payments.services.payouts import payout_request

    insider, dest_checker = destination_staff
    payout = payout_request(patient=funded_patient, amount=Decimal("10000"), requested_by=insider)
    change = ask_for_new_number(funded_patient.treatment_partner, insider)
    destination_change_approve(change_id=change.pk, approved_by=dest_checker)
    login_with_second_factor(client, checker)
    page = payout_page(client, payout)
    assert f"approved destination is now mpesa {NEW}, not this payout" in page


@pytest.mark.usefixtures("mpesa_settings", "daraja")
def test_the_payout_list_still_masks_the_number(client, funded_patient, destination_staff, checker):
    from payments.services.payouts import payout_request

    payout_request(patient=funded_patient, amount=Decimal("10000"), requested_by=destination_staff[0])
    login_with_second_factor(client, checker)
    page = client.get("/admin/payments/payout/").content.decode()
    assert "2547****149" in page and OLD not in page
