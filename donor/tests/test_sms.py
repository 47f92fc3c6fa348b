"""The SMS receipt on the phone that paid: one message per completed donation however often its callback is
replayed (the outbox), one GSM-7 SMS with the amount as people write it, the patient, the receipt and the link;
delivery reports at a secret URL; a number that opted out is never texted again; masked numbers only.

Africa's Talking's far side is mocked with `responses`, with its real answer shapes (donor/tests/fixtures)."""

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses
from django.test import Client

from donor.models import Notice, SmsMessage, SmsOptOut
from donor.money import money_for_people
from donor.notifications import notices_send
from donor.sms import donation_sms_text, sms_send
from integrations.sms import AfricasTalkingGateway, SmsStatus, gsm7_clean, gsm7_length
from payments.models import Payment
from payments.tests.azampay_fakes import CALLBACK_URL, callback_body
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import post

FIXTURES = Path(__file__).parent / "fixtures"
AT_URL = "https://api.sandbox.africastalking.com/version1/messaging"
DLR_TOKEN = "dlr-secret-0123456789"  # noqa: S105 (a test value)
PHONE = "255712345678"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def sms_settings(settings):
    settings.SMS_GATEWAY = "africastalking"
    settings.AFRICASTALKING_USERNAME = "sandbox"
    settings.AFRICASTALKING_API_KEY = "test-key"
    settings.AFRICASTALKING_API_URL = "https://api.sandbox.africastalking.com"
    settings.AFRICASTALKING_SENDER_ID = ""
    settings.SMS_DELIVERY_REPORT_TOKEN = DLR_TOKEN
    settings.SITE_URL = "https://donate.example.org"
    return settings


@pytest.fixture
def at():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(AT_URL, json=fixture("africastalking_send_success.json"), status=201)
        yield mock


def at_calls(mock) -> list:
    return [c for c in mock.calls if c.request.url == AT_URL]


@pytest.mark.parametrize(
    ("amount", "currency", "written"),
    [("5000", "TZS", "TSh 5,000"), ("2500", "KES", "KSh 2,500"), ("10000", "UGX", "USh 10,000"),
     ("12.50", "EUR", "EUR 12.50"), ("1000000.00", "TZS", "TSh 1,000,000")],
)  # fmt: skip
def test_amounts_are_written_as_people_write_them(amount, currency, written):
    assert money_for_people(Decimal(amount), currency) == written


@pytest.mark.parametrize("receipt", ["QK12AB34", "X" * 40])
def test_the_receipt_sms_is_one_gsm7_message_with_amount_patient_receipt_and_link(receipt):
    link = "https://donate.example.org/donations/" + "A" * 32 + "/"
    text = donation_sms_text(amount=Decimal("5000"), currency="TZS", patient_code="PAT-TZ-0001",
                             receipt=receipt, link=link)  # fmt: skip
    assert gsm7_length(text) <= 160 and gsm7_clean(text) == text
    assert "TSh 5,000" in text and "PAT-TZ-0001" in text and receipt in text and text.endswith(link)


def test_characters_outside_gsm7_are_replaced_so_the_message_stays_one_part():
    assert gsm7_clean("Mchango – “asante” 🎉") == 'Mchango - "asante" ?'


@pytest.mark.django_db
@pytest.mark.usefixtures("azampay_settings", "sms_settings")
def test_a_callback_delivered_three_times_sends_one_sms_to_the_phone_that_paid(at, caplog):
    payment = PaymentFactory(provider="azampay", status=Payment.Status.PENDING, provider_reference="AZM-SMS-1",
                             msisdn=PHONE, donation__patient__code="PAT-TZ-0042")  # fmt: skip
    caplog.set_level(logging.INFO)
    for copy in range(3):
        assert post(CALLBACK_URL, callback_body(payment) + b" " * copy, run_on_commit=True)[0] == 200
    notices_send()  # the scheduler's relay too: nothing left to send
    [notice] = Notice.objects.filter(channel=Notice.Channel.SMS)
    assert notice.status == Notice.Status.SENT and notice.recipient == "2557****678"
    [call] = at_calls(at)
    form = dict(x.split("=", 1) for x in call.request.body.split("&"))
    assert form["to"] == "%2B255712345678" and form["username"] == "sandbox"
    assert call.request.headers["apiKey"] == "test-key"
    message = SmsMessage.objects.get()
    assert message.status == SmsMessage.Status.SENT
    assert message.gateway_message_id == "ATXid_03cb5ecf11ce748794c0f9a85c276259"
    assert "PAT-TZ-0042" in message.text and payment.donation.public_token in message.text
    assert PHONE not in caplog.text and "2557****678" in caplog.text  # masked in every log line


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_no_sms_is_recorded_when_sms_is_off_or_the_number_opted_out(settings, at):
    from donor.notifications import notices_record

    payment = PaymentFactory(status=Payment.Status.SUCCEEDED, msisdn=PHONE, donation__status="completed")
    SmsOptOut.objects.create(msisdn=PHONE, reason="UserInBlacklist")
    notices_record(donation_id=payment.donation_id)
    settings.SMS_GATEWAY = "none"
    other = PaymentFactory(status=Payment.Status.SUCCEEDED, msisdn="255712345679", donation__status="completed")
    notices_record(donation_id=other.donation_id)
    assert not Notice.objects.filter(channel=Notice.Channel.SMS).exists()
    assert at_calls(at) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_a_send_refused_as_blacklisted_opts_the_number_out_and_is_not_retried():
    with responses.RequestsMock() as mock:
        mock.post(AT_URL, json=fixture("africastalking_send_blacklisted.json"), status=201)
        assert sms_send(key="k1", msisdn=PHONE, text="hello") == ""  # final: the outbox does not retry it
        assert sms_send(key="k1", msisdn=PHONE, text="hello") == ""
        assert sms_send(key="k2", msisdn=PHONE, text="another") == ""
        assert len(mock.calls) == 1  # never sent to again
    assert SmsOptOut.objects.filter(msisdn=PHONE).exists()
    assert SmsMessage.objects.get(key="k2").status == SmsMessage.Status.OPTED_OUT


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_out_of_credit_or_gateway_down_is_retried_and_sent_once_it_works():
    with responses.RequestsMock() as mock:
        mock.post(AT_URL, json=fixture("africastalking_send_no_balance.json"), status=201)
        mock.post(AT_URL, body="Internal Server Error", status=500)
        mock.post(AT_URL, body=requests.ConnectionError("refused"))
        mock.post(AT_URL, json=fixture("africastalking_send_success.json"), status=201)
        assert "405 InsufficientBalance" in sms_send(key="k", msisdn=PHONE, text="hi")
        assert "HTTP 500" in sms_send(key="k", msisdn=PHONE, text="hi")
        assert "unreachable" in sms_send(key="k", msisdn=PHONE, text="hi")
        assert sms_send(key="k", msisdn=PHONE, text="hi") == ""
        assert sms_send(key="k", msisdn=PHONE, text="hi") == ""
        assert len(mock.calls) == 4
    assert SmsMessage.objects.get().status == SmsMessage.Status.SENT


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_a_timeout_after_sending_is_not_sent_again():
    # A second SMS is worse than none: the gateway may have sent it.
    with responses.RequestsMock() as mock:
        mock.post(AT_URL, body=requests.ReadTimeout("read timed out"))
        assert sms_send(key="k", msisdn=PHONE, text="hi") == ""
        assert sms_send(key="k", msisdn=PHONE, text="hi") == ""
        assert len(mock.calls) == 1
    assert SmsMessage.objects.get().status == SmsMessage.Status.UNKNOWN


def test_the_gateway_parses_africas_talking_delivery_reports():
    gateway = AfricasTalkingGateway(username="sandbox", api_key="k", api_url="https://x")
    delivered = gateway.parse_delivery_report({"id": "ATXid_1", "status": "Success", "phoneNumber": "+255712345678",
                                               "networkCode": "64002", "retryCount": "0"})  # fmt: skip
    assert delivered.status == SmsStatus.DELIVERED and not delivered.opted_out
    blacklisted = gateway.parse_delivery_report({"id": "ATXid_2", "status": "Rejected",
                                                 "failureReason": "UserInBlackList"})  # fmt: skip
    assert blacklisted.status == SmsStatus.FAILED and blacklisted.opted_out
    assert gateway.parse_delivery_report({"id": "ATXid_3", "status": "Buffered"}).status == SmsStatus.SENT
    assert gateway.parse_delivery_report({"status": "Success"}) is None
    assert gateway.parse_delivery_report({"id": "x", "status": "Exploded"}) is None


def dlr(token: str, **fields: str):
    return Client().post(f"/webhooks/sms/africastalking/{token}/", data=fields)


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_delivery_reports_at_the_secret_url_update_the_message_and_opt_out_a_blacklisted_number(caplog):
    caplog.set_level(logging.INFO)
    SmsMessage.objects.create(key="a", msisdn=PHONE, text="t", gateway="africastalking", status="sent",
                              gateway_message_id="ATXid_a")  # fmt: skip
    SmsMessage.objects.create(key="b", msisdn="255712345670", text="t", gateway="africastalking", status="sent",
                              gateway_message_id="ATXid_b")  # fmt: skip
    response = dlr(DLR_TOKEN, id="ATXid_a", status="Success", phoneNumber="+255712345678")
    assert response.status_code == 200 and response.json() == {"ok": True, "known": True}
    assert SmsMessage.objects.get(key="a").status == SmsMessage.Status.DELIVERED
    dlr(DLR_TOKEN, id="ATXid_b", status="Failed", failureReason="UserInBlacklist", phoneNumber="+255712345670")
    assert SmsMessage.objects.get(key="b").status == SmsMessage.Status.FAILED
    assert SmsOptOut.objects.filter(msisdn="255712345670").exists()
    assert "255712345670" not in caplog.text and PHONE not in caplog.text


@pytest.mark.django_db
@pytest.mark.usefixtures("sms_settings")
def test_delivery_reports_with_a_wrong_token_or_no_report_are_refused_in_the_error_shape():
    wrong = dlr("not-the-token", id="ATXid_a", status="Success")
    assert wrong.status_code == 404 and wrong.json()["code"] == "NOT_FOUND"
    junk = dlr(DLR_TOKEN, hello="world")
    assert junk.status_code == 400 and junk.json()["error"] == "Bad Request"
    unknown = dlr(DLR_TOKEN, id="ATXid_nobody", status="Success")
    assert unknown.status_code == 200 and unknown.json()["known"] is False
