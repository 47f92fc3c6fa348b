"""The operator's admin in a real browser (Debian's Chromium via Playwright, against the live site): a superuser
signs in with password and TOTP code, lands on the dashboard, follows a number to the list behind it, reads a
payment's timeline, and finds no way to delete it; at a laptop's 1366x768 the dashboard's tables use the page's
width and their column headings stay on one line.

Never downloads a browser: skips cleanly when /usr/bin/chromium is missing (CI installs it through make).
"""

import time
from decimal import Decimal

import pytest
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from payments.models import CallbackEvent, Payment
from payments.tests.factories import PaymentFactory
from portal.tests.test_browser import CHROMIUM, chromium  # noqa: F401 (the shared browser fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]

DESKTOP = {"width": 1280, "height": 900}
LAPTOP = {"width": 1366, "height": 768}
# Each text line a cell's text makes: the distinct tops of its line boxes (a word broken letter by letter has many).
TEXT_LINES = """cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size;
}"""


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


def sign_in(page, live_server, django_user_model) -> None:
    admin = django_user_model.objects.create_superuser("ops", "ops@example.org", "a-long-admin-pass-42")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "a-long-admin-pass-42")
    page.fill("input[name=otp_token]", code_for(device))
    page.click("input[type=submit], button[type=submit]")


def test_an_operator_signs_in_with_a_code_and_reads_the_dashboard_and_a_timeline(live_server, desk, django_user_model):
    from playwright.sync_api import expect

    PaymentFactory(status=Payment.Status.SUCCEEDED, amount=Decimal("5000"), completed_at=timezone.now())
    pending = PaymentFactory()
    CallbackEvent.objects.create(
        provider="azampay", body="{}", body_digest="d", status="rejected", trust="rejected", payment=pending
    )

    sign_in(desk, live_server, django_user_model)

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


def test_at_1366_pixels_the_dashboard_tables_use_the_width_and_each_heading_is_one_line(
    live_server,
    chromium,  # noqa: F811
    django_user_model,
    tmp_path,
):
    from playwright.sync_api import expect

    PaymentFactory(status=Payment.Status.SUCCEEDED, amount=Decimal("5000"), completed_at=timezone.now())
    context = chromium.new_context(viewport=LAPTOP)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        sign_in(page, live_server, django_user_model)
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        page.screenshot(path=str(tmp_path / "dashboard-1366.png"), full_page=True)  # kept in the basetemp, to look at

        headings = page.locator(".ops-dashboard thead th")
        assert headings.count() >= 11  # the windows' six columns and the providers' five
        lines = {cell.inner_text(): cell.evaluate(TEXT_LINES) for cell in headings.all()}
        assert set(lines.values()) == {1}, lines
        main = page.locator("#content-main").bounding_box()
        table = page.locator(".ops-dashboard table").nth(1).bounding_box()
        sidebar = page.locator("#content-related").bounding_box()
        assert main and table and sidebar
        assert table["width"] > LAPTOP["width"] / 2  # not the admin index's fixed 600 px column
        assert table["x"] + table["width"] <= sidebar["x"]  # beside the app list, never under it
    finally:
        context.close()
