"""The donor portal's pages through Django's test client; AzamPay is mocked with `responses`."""

import json
import re
from decimal import Decimal

import pytest
import responses
from django.test import Client
from django.urls import reverse

from donor.models import Donation, Donor
from donor.notifications import donation_admin_text, donation_receipt_text
from donor.tests.factories import DonationFactory, DonorFactory
from integrations.telegram import telegram_send
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.providers.registry import provider_codes
from payments.tests.azampay_fakes import MNO_URL, fixture
from payments.tests.azampay_fakes import POST_CHECKOUT_URL as CARD_URL
from payments.tests.factories import PaymentFactory
from portal.web import friendly_reason, payment_methods

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]

MNO_LABELS = ["M-Pesa (Vodacom)", "Airtel Money", "Tigo Pesa (Mixx by Yas)", "Halopesa", "AzamPesa"]


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(
        code="PAT-0001",
        name="Neema Mushi",
        condition="Clubfoot",
        story="Neema is four and loves to dance.",
        treatment="Ponseti casting",
        currency="TZS",
        funding_goal=Decimal("100000"),
        funding_received=Decimal("25000"),
    )


def donate_body(**overrides) -> dict:
    body = {
        "amount": "5000",
        "method": "azampay:Mpesa",
        "phone_number": "0712345678",
        "name": "Asha Said",
        "email": "asha@example.org",
        "message": "",
        "custom_amount": "",
    }
    body.update(overrides)
    return body


# --- Home and patient pages ----------------------------------------------------------------------------


def test_home_lists_published_patients_with_progress_and_a_funded_badge(client, patient):
    PatientFactory(name="Baraka Ally", status=Patient.Status.FULLY_FUNDED, funding_received=Decimal("100000"))
    PatientFactory(name="Hidden Person", published=False)
    PatientFactory(name="Done Already", status=Patient.Status.TREATED)
    html = client.get("/").content.decode()
    assert "Neema" in html and "Clubfoot" in html
    assert "25%" in html and 'aria-valuenow="25"' in html
    assert "TSh 75,000 still needed" in html
    assert "Baraka" in html and "Fully funded" in html
    assert "Hidden" not in html and "Done Already" not in html
    assert "Mushi" not in html  # first names only
    assert reverse("patient-page", kwargs={"code": "PAT-0001"}) in html
    assert 'action="/general-fund/"' in html


def test_patient_page_offers_azampay_operators_and_card_for_tzs(client, patient):
    response = client.get("/patients/pat-0001/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ponseti casting" in html and patient.treatment_partner.name in html
    for label in [*MNO_LABELS, "Card (Visa, Mastercard)"]:
        assert label in html
    for preset in ("TSh 5,000", "TSh 10,000", "TSh 25,000", "TSh 50,000"):
        assert preset in html
    assert "csrfmiddlewaretoken" in html
    for field in ("id_phone_number", "id_name", "id_email", "id_message", "id_anonymous", "id_custom_amount"):
        assert f'for="{field}"' in html  # a label on every field


def currency_without_a_provider() -> str:
    currency = next((c for c in ("EUR", "UGX", "RWF") if not payment_methods(c)), "")
    if not currency:
        pytest.skip("every test currency has a provider now")
    return currency


def test_patient_page_in_a_currency_without_a_provider_says_coming_soon(client):
    currency = currency_without_a_provider()
    PatientFactory(code="PAT-0002", currency=currency)
    html = client.get("/patients/PAT-0002/").content.decode()
    assert f"Online payment for {currency} is coming soon" in html
    assert 'name="method"' not in html
    assert "M-Pesa (Vodacom)" not in html


def test_kes_patient_page_offers_only_what_collects_kes(client):
    PatientFactory(code="PAT-0004", currency="KES")
    html = client.get("/patients/PAT-0004/").content.decode()
    assert "M-Pesa (Vodacom)" not in html and "Card (Visa, Mastercard)" not in html  # AzamPay is TZS only
    assert "KSh 100" in html and "KSh 1,000" in html
    if "mpesa" in provider_codes():
        assert 'value="mpesa" required checked' in html and "M-Pesa (Safaricom)" in html
    else:
        assert "Online payment for KES is coming soon" in html


def test_fully_funded_patient_has_no_donate_form(client):
    PatientFactory(code="PAT-0003", status=Patient.Status.FULLY_FUNDED)
    html = client.get("/patients/PAT-0003/").content.decode()
    assert "fully funded" in html and 'id="donate-form"' not in html


def test_general_fund_page_offers_currencies_and_posts_without_a_patient(client, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    html = client.get("/general-fund/").content.decode()
    assert "Donate in TZS" in html and "?currency=KES" in html and "?currency=EUR" in html
    other = currency_without_a_provider()
    assert (
        f"Online payment for {other} is coming soon" in client.get(f"/general-fund/?currency={other}").content.decode()
    )
    response = client.post("/general-fund/?currency=TZS", donate_body())
    donation = Donation.objects.get()
    assert donation.patient is None and donation.currency == "TZS"
    assert response.status_code == 302


def test_unknown_patient_is_a_friendly_404(client):
    response = client.get("/patients/PAT-9999/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We could not find that page" in html and "See the patients raising funds" in html


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and "We could not find that page" in response.content.decode()


def test_500_page_is_friendly_and_standalone(rf):
    from config.views import handler500_view

    request = rf.get("/")
    request.request_id = "req_abc"
    response = handler500_view(request)
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode() and "req_abc" in response.content.decode()


# --- The donate form --------------------------------------------------------------------------------------


def test_bad_phone_shows_an_inline_error_and_keeps_the_details(client, patient):
    response = client.post("/patients/PAT-0001/", donate_body(phone_number="12345"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_phone_number_error"' in html and "phone number" in html
    assert 'aria-invalid="true"' in html
    assert 'value="asha@example.org"' in html
    assert not Donation.objects.exists()


@pytest.mark.parametrize("phone", ["+254712345678", "+256772123456", "0222123456"], ids=["KE", "UG", "TZ-landline"])
def test_a_phone_the_rail_cannot_reach_is_an_inline_error_on_the_field(client, patient, azam, phone):
    response = client.post("/patients/PAT-0001/", donate_body(phone_number=phone))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_phone_number_error"' in html and "AzamPay cannot reach this number" in html
    assert "Enter a mobile number of TZ" in html
    assert not Donation.objects.exists() and not azam.calls  # nothing sent to AzamPay


def test_amount_outside_the_limits_is_an_inline_error(client, patient):
    html = client.post("/patients/PAT-0001/", donate_body(amount="", custom_amount="100")).content.decode()
    assert 'id="id_custom_amount_error"' in html and "smallest donation is TSh 500" in html
    assert not Donation.objects.exists()


def test_mobile_money_donation_starts_the_payment_and_redirects_to_the_status_page(client, patient, azam):
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    response = client.post("/patients/PAT-0001/", donate_body(custom_amount="7,500", amount=""))
    donation = Donation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("donation-status-page", kwargs={"reference": donation.public_token})
    assert donation.amount == Decimal("7500") and donation.patient == patient
    assert donation.donor.name == "Asha Said" and donation.donor.phone == "255712345678"
    sent = json.loads(checkout.calls[0].request.body)
    assert sent["accountNumber"] == "255712345678" and sent["provider"] == "Mpesa"
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.PENDING and payment.channel == "Mpesa"
    html = client.get(response["Location"]).content.decode()
    assert "Check your phone and enter your PIN" in html and 'aria-live="polite"' in html


def test_card_donation_redirects_to_the_checkout_page(client, patient, azam):
    azam.post(CARD_URL, json=fixture("post_checkout_url.json"))
    response = client.post("/patients/PAT-0001/", donate_body(method="azampay:card", phone_number=""))
    assert response.status_code == 302
    assert response["Location"].startswith("https://payments-sandbox.azampay.co.tz/")
    sent = json.loads(azam.calls[-1].request.body)
    assert "/donations/" in sent["redirectSuccessURL"]


def test_provider_refusal_rerenders_the_form_with_the_details_kept(client, patient, azam):
    azam.post(MNO_URL, json=fixture("checkout_problem_details_400.json"), status=400)
    response = client.post("/patients/PAT-0001/", donate_body())
    html = response.content.decode()
    assert response.status_code == 200
    assert "The payment could not be started" in html and 'role="alert"' in html
    assert 'value="0712345678"' in html and 'value="asha@example.org"' in html
    assert Donation.objects.get().status == Donation.Status.FAILED


def test_logged_in_donor_gives_as_their_account(client, patient, azam, donor_user):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    client.force_login(donor_user)
    html = client.get("/patients/PAT-0001/").content.decode()
    assert 'id="id_email"' not in html  # the account's email is used
    client.post("/patients/PAT-0001/", donate_body())
    assert Donation.objects.get().donor == donor_user.donor


def test_donate_form_is_rate_limited_per_client_ip(client, patient, settings, azam):
    """Counted are the payments it would start (config/tests/test_rate_limits.py has the API's and the phone's)."""
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    settings.DONATE_RATE_LIMIT_PER_MINUTE = 1
    assert client.post("/patients/PAT-0001/", donate_body()).status_code == 302
    response = client.post("/patients/PAT-0001/", donate_body(phone_number="0712345679"))
    assert response.status_code == 429
    assert "Too many donation attempts" in response.content.decode()
    assert response["Retry-After"]
    assert Donation.objects.count() == 1


def test_prefill_from_a_try_again_link(client, patient):
    html = client.get("/patients/PAT-0001/?amount=7000&phone=0712345602&channel=Airtel&name=Asha").content.decode()
    assert 'value="7000"' in html and 'value="0712345602"' in html and 'value="Asha"' in html
    assert re.search(r'value="azampay:Airtel" required checked', html)
    html = client.get("/patients/PAT-0001/?amount=10000").content.decode()
    assert re.search(r'value="10000" checked', html)


def test_csrf_is_enforced_on_the_donate_form(patient):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/patients/PAT-0001/", donate_body()).status_code == 403


# --- Recent donations: no other donor's personal data ---------------------------------------------------


def test_recent_donations_show_first_names_or_anonymous_never_contacts(client, patient):
    shown = DonorFactory(name="Zuberi Kombo", email="zuberi@example.org", phone="255754000111")
    hidden = DonorFactory(name="Secret Person", email="secret@example.org", phone="255754000222")
    DonationFactory(patient=patient, donor=shown, status=Donation.Status.COMPLETED, amount=Decimal("10000"))
    DonationFactory(patient=patient, donor=hidden, status=Donation.Status.COMPLETED, anonymous=True)
    DonationFactory(patient=patient, donor=DonorFactory(name="Pending Pat"), status=Donation.Status.PENDING)
    html = client.get("/patients/PAT-0001/").content.decode()
    assert "Zuberi" in html and "Anonymous" in html
    for private in ("Kombo", "Secret", "zuberi@example.org", "255754000111", "754000", "Pending Pat"):
        assert private not in html


# --- Status page ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("pending", "", "Check your phone and enter your PIN"),
        ("failed", "Insufficient funds", "balance was too low"),
        ("cancelled", "Cancelled by the payer", "cancelled on the phone"),
        ("expired", "No confirmation from the provider in time.", "request expired"),
        ("failed", "Something odd", "did not go through"),
    ],
)
def test_status_page_renders_each_state(client, patient, status, reason, expected):
    payment = PaymentFactory(donation__patient=patient, donation__status=status, donation__status_reason=reason)
    response = client.get(f"/donations/{payment.donation.public_token}/")
    html = response.content.decode()
    assert response.status_code == 200 and expected in html
    if status != "pending":
        assert 'id="try-again"' in html and "/patients/PAT-0001/?" in html


def test_completed_status_page_thanks_with_the_provider_receipt(client, patient):
    payment = PaymentFactory(
        donation__patient=patient, donation__status="completed", status="succeeded", receipt="MPX123RCPT"
    )
    html = client.get(f"/donations/{payment.donation.public_token}/").content.decode()
    assert "Thank you" in html and "MPX123RCPT" in html and "TSh 5,000" in html and "Neema" in html
    panel = client.get(f"/donations/{payment.donation.public_token}/panel/").content.decode()
    assert "MPX123RCPT" in panel and "<html" not in panel


def test_unknown_donation_status_page_is_404(client):
    assert client.get("/donations/RHCI-DN-0-0/").status_code == 404


def test_try_again_keeps_the_details_only_for_the_browser_that_donated(client, patient, azam):
    azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    location = client.post("/patients/PAT-0001/", donate_body(phone_number="0712345602"))["Location"]
    donation = Donation.objects.get()
    Donation.objects.filter(pk=donation.pk).update(status="cancelled", status_reason="Cancelled by the payer")
    mine = client.get(location).content.decode()
    assert "phone=0712345602" in mine and "channel=Mpesa" in mine and "email=asha%40example.org" in mine
    assert "amount=5000" in mine
    strangers = Client().get(location).content.decode()
    assert "0712345602" not in strangers and "asha" not in strangers.lower()
    assert "amount=5000" in strangers


def test_friendly_reason_never_shows_raw_provider_text():
    assert (
        friendly_reason("failed", "ERR_9923 upstream gateway") == "The payment did not go through. No money was taken."
    )


# --- Accounts -------------------------------------------------------------------------------------------


def test_signup_then_login_and_my_donations_lists_only_mine(client, patient):
    response = client.post(
        "/signup/",
        {
            "username": "zawadi",
            "email": "zawadi@example.org",
            "name": "Zawadi",
            "phone_number": "0712000111",
            "password": "Long-enough-pass-42",
        },
    )
    assert response.status_code == 200 and "Check your email" in response.content.decode()  # test_registration
    donor = Donor.objects.get(user__username="zawadi")
    assert donor.phone == "255712000111"
    login = client.post("/login/", {"username": "zawadi", "password": "Long-enough-pass-42"})
    assert login.status_code == 302 and login["Location"] == "/my/donations/"
    PaymentFactory(
        donation__donor=donor,
        donation__patient=patient,
        donation__status="completed",
        status="succeeded",
        receipt="RCPT-MINE",
    )
    DonationFactory(patient=patient, donor=DonorFactory(name="Someone Else"), reference="RHCI-DN-999-OTHER")
    html = client.get("/my/donations/").content.decode()
    assert "RCPT-MINE" in html and "Completed" in html
    assert "RHCI-DN-999-OTHER" not in html


def test_signup_shows_service_errors_next_to_fields(client, donor_user):
    html = client.post(
        "/signup/", {"username": "zawadi", "email": "new@example.org", "password": "12345678", "phone_number": "12"}
    ).content.decode()
    assert "This password is entirely numeric." in html
    assert 'aria-invalid="true"' in html  # shown on their fields


def test_login_and_logout(client, donor_user):
    assert client.get("/my/donations/")["Location"].startswith("/login/")
    assert "Log in" in client.get("/login/").content.decode()
    response = client.post("/login/", {"username": "amani", "password": "S3cure-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/my/donations/"
    assert "Log out" in client.get("/my/donations/").content.decode()
    assert client.post("/logout/").status_code == 302
    assert client.get("/my/donations/").status_code == 302


# --- Telegram receipts ----------------------------------------------------------------------------------


def test_telegram_send_posts_to_the_bot_api_and_never_raises(settings):
    settings.TELEGRAM_BOT_TOKEN = "123:abc"
    settings.TELEGRAM_API_URL = "https://tg.example"
    with responses.RequestsMock() as mock:
        sent = mock.post("https://tg.example/bot123:abc/sendMessage", json={"ok": True, "result": {}})
        assert telegram_send("42", "hello") is True
        assert json.loads(sent.calls[0].request.body) == {"chat_id": "42", "text": "hello"}
    with responses.RequestsMock() as mock:
        mock.post(
            "https://tg.example/bot123:abc/sendMessage", json={"ok": False, "description": "chat not found"}, status=400
        )
        assert telegram_send("42", "hello") is False
    with responses.RequestsMock() as mock:
        mock.post("https://tg.example/bot123:abc/sendMessage", body=ConnectionError("down"))
        assert telegram_send("42", "hello") is False
    settings.TELEGRAM_BOT_TOKEN = ""
    assert telegram_send("42", "hello") is False


def test_donation_receipt_text_has_the_agreed_lines(patient):
    payment = PaymentFactory(
        donation__patient=patient,
        donation__status="completed",
        donation__amount=Decimal("10000"),
        status="succeeded",
        receipt="MPX999",
        provider_reference="abc123",
    )
    text = donation_receipt_text(payment.donation)
    assert text.startswith("🎉 Payment Receipt\n\nThank you for your payment!")
    assert "💰 Amount: TZS 10,000.00" in text and "🧾 M-Pesa Receipt: MPX999" in text
    assert "📅 Date: " in text and "Transaction ID: abc123" in text and "Neema" in text


def test_receipt_email_template_renders():
    from django.template.loader import render_to_string

    donation = DonationFactory(status="completed", donor=DonorFactory(name="Asha"))
    text = render_to_string(
        "emails/receipt.txt",
        {"donation": donation, "money": "TSh 5,000", "target": "Neema", "receipt": "R1", "status_url": "http://x/d/1/"},
    )
    assert "Thank you, Asha!" in text and "TSh 5,000" in text and "R1" in text and "&" not in text


def test_telegram_receipt_reaches_the_sandbox_telegram(settings, patient):
    from payments.sandbox.server import run_sandbox

    server = run_sandbox(port=0)
    try:
        settings.TELEGRAM_BOT_TOKEN = "1:sandbox-bot-token"
        settings.TELEGRAM_API_URL = f"{server.base_url}/telegram"
        payment = PaymentFactory(
            donation__patient=patient, donation__status="completed", status="succeeded", receipt="MPX777"
        )
        assert telegram_send("4242", donation_receipt_text(payment.donation)) is True
        messages = server.store.messages_json()
        assert len(messages) == 1
        assert str(messages[0]["chat_id"]) == "4242" and "MPX777" in messages[0]["text"]
    finally:
        server.shutdown()


def test_admin_texts_have_the_agreed_lines_with_the_phone_masked(patient):
    paid = PaymentFactory(donation__patient=patient, donation__status="completed", status="succeeded", receipt="R9")
    text = donation_admin_text(paid.donation)
    assert text.startswith("✅ Payment Successful") and "📱 Phone: 2557****678" in text and "R9" in text
    assert "255712345678" not in text
    failed = PaymentFactory(
        donation__patient=patient, donation__status="failed", donation__status_reason="Insufficient funds"
    )
    text = donation_admin_text(failed.donation)
    assert text.startswith("❌ Payment Failed") and "❗ Reason: Insufficient funds" in text
