"""The operator's admin in a real browser (Debian's Chromium via Playwright, against the live site): a superuser
signs in with password and TOTP code, lands on the dashboard, follows a number to the list behind it, reads a
payment's timeline, and finds no way to delete it.

Never downloads a browser: skips cleanly when /usr/bin/chromium is missing (CI installs it through make).
"""

import time
from decimal import Decimal

import pytest
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from donor.tests.test_browser import CHROMIUM, chromium  # noqa: F401 (the shared browser fixture)
from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def desk(chromium):  # noqa: F811
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def code_for(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def test_an_operator_signs_in_with_a_code_and_reads_the_dashboard_and_a_timeline(live_server, desk, django_user_model):
    from playwright.sync_api import expect

    admin = django_user_model.objects.create_superuser("ops", "ops@example.org", "a-long-admin-pass-42")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    PaymentFactory(status=Payment.Status.SUCCEEDED, amount=Decimal("5000"), completed_at=timezone.now())
    pending = PaymentFactory()
    CallbackEvent.objects.create(
        provider="azampay", body="{}", body_digest="d", status="rejected", trust="rejected", payment=pending
    )

    desk.goto(f"{live_server.url}/admin/")
    desk.fill("input[name=username]", "ops")
    desk.fill("input[name=password]", "a-long-admin-pass-42")
    desk.fill("input[name=otp_token]", code_for(device))
    desk.click("input[type=submit], button[type=submit]")

    expect(desk.get_by_role("heading", name="Needs a person")).to_be_visible()
    today = desk.locator(".module", has=desk.get_by_role("heading", name="Today"))
    expect(today).to_contain_text("azampay")
    expect(desk.locator("svg.chart")).to_have_count(1)  # one currency received money
    expect(desk.locator("svg.chart rect")).to_have_count(30)

    # the "Pending" number of today's row opens the payments list filtered to it
    today.locator("tbody tr").first.locator("td").nth(5).locator("a").click()
    expect(desk.locator("#result_list tbody tr")).to_have_count(1)
    expect(desk.locator("#result_list")).to_contain_text(pending.reference)

    desk.get_by_role("link", name=pending.reference).click()
    expect(desk.locator("table.timeline")).to_contain_text("rejected, rejected")
    expect(desk.get_by_role("button", name="Check with provider now")).to_be_visible()
    expect(desk.locator("a.deletelink")).to_have_count(0)
    expect(desk.locator("input[name=_save]")).to_have_count(0)

    response = desk.goto(f"{live_server.url}/admin/payments/payment/{pending.pk}/delete/")
    assert response is not None and response.status == 403
    assert Payment.objects.filter(pk=pending.pk).exists()
