"""SMS end to end over real HTTP: a sandbox M-Pesa donation that completes sends exactly one SMS to the phone that
paid, seen at the sandbox's /_sandbox/sms/messages, also when Daraja delivers its callback three times."""

from decimal import Decimal

import pytest
import requests

from donor.models import SmsMessage
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.tests.e2e.drivers import DRIVERS
from payments.tests.e2e.support import donate_via_api, handle_of, wait_for_deliveries, wait_for_status, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PATIENT = "PAT-KE-SMS"


@pytest.fixture
def sandbox(live_server, settings):
    """M-Pesa's sandbox (drivers.py, `Mpesa`), its Africa's Talking SMS gateway the site's."""
    with DRIVERS["mpesa"].running(live_server, settings) as server:
        settings.SMS_GATEWAY = "africastalking"
        settings.AFRICASTALKING_USERNAME = "sandbox"
        settings.AFRICASTALKING_API_KEY = "sandbox-api-key"
        settings.AFRICASTALKING_API_URL = f"{server.base_url}/africastalking"
        yield server


def sms_messages(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.base_url}/_sandbox/sms/messages", timeout=10).json()


@pytest.mark.parametrize(("phone", "deliveries"), [("0712345678", 1), ("0712345604", 3)])
def test_a_completed_sandbox_donation_sends_one_sms_to_the_payer(live_server, sandbox, phone, deliveries):
    PatientFactory(code=PATIENT, currency="KES", funding_goal=Decimal("1000000"))
    created = donate_via_api(live_server, patient=PATIENT, amount="2500", currency="KES", provider="mpesa",
                             phone_number=phone)  # fmt: skip
    assert wait_for_status(live_server, created["reference"])["status"] == "completed"
    wait_for_deliveries(sandbox, "mpesa", deliveries, transactionId=created["payment"]["provider_reference"])
    wait_until(lambda: SmsMessage.objects.filter(status="sent").exists())
    wait_until(lambda: sms_messages(sandbox))
    [message] = sms_messages(sandbox)
    assert message["to"] == "+254" + phone[1:]
    text = message["message"]
    assert "KSh 2,500" in text and PATIENT in text and len(text) <= 160
    assert f"{live_server.url}/donations/{handle_of(created['reference'])}/" in text
    receipt = Payment.objects.get(reference=created["reference"]).receipt
    assert receipt and receipt in text
    assert SmsMessage.objects.count() == 1
