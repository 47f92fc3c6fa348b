"""The donor portal in a real browser on a phone-sized screen: Debian's Chromium driven by Playwright,
against the live site and the provider sandbox (real HTTP callbacks between them).

Never downloads a browser: it launches /usr/bin/chromium and skips cleanly when that is missing.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.sandbox.server import run_sandbox

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
TIMEOUT_MS = 20_000
# The sandbox's success callback lands about this many seconds after the prompt: slow enough for the status
# page to be seen pending first (the "updates without reloading" proof), even on a slow CI machine.
SANDBOX_TIME_SCALE = 2.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def chromium():
    """One browser per module. Playwright's sync API keeps an event loop running in this thread while it is
    open, which makes Django refuse ORM calls; the tests' own ORM calls are synchronous, so allow them for
    exactly as long as the browser lives (module scope: later test modules run without the flag)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    playwright_api.expect.set_options(timeout=TIMEOUT_MS)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def phone(chromium):
    """A fresh phone-sized browser tab (its own cookies) per test."""
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def sandbox(live_server, settings):
    """The provider sandbox, its callbacks a little slower than real time (SANDBOX_TIME_SCALE)."""
    server = run_sandbox(port=0, callback_url=live_server.url + CALLBACK_PATH, time_scale=SANDBOX_TIME_SCALE)
    config = dict(settings.PAYMENT_PROVIDERS["azampay"])
    config.update(AZAMPAY_CONFIG.sandbox_credentials())
    config.update(
        {
            "auth_url": f"{server.base_url}/azampay-auth",
            "api_url": f"{server.base_url}/azampay",
            "callback_password": settings.PAYMENT_PROVIDERS["azampay"]["callback_password"],
        }
    )
    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "azampay": config}
    settings.SITE_URL = live_server.url
    settings.DONATE_RATE_LIMIT_PER_MINUTE = 1000
    yield server
    server.shutdown()


@pytest.fixture
def patients(db) -> list[Patient]:
    """Raised so far as the demo records it (ledger_seed_opening_balance): the cached totals equal the ledger,
    so the page's progress bar and its "where the money went" agree."""
    from donor.ledger import ledger_seed_opening_balance

    hospital = TreatmentPartnerFactory(name="CCBRT Hospital", city="Dar es Salaam")
    patients = [
        PatientFactory(
            code="PAT-0001",
            name="Neema Mushi",
            condition="Clubfoot",
            treatment="Ponseti casting and a small tendon release",
            story="Neema is four and loves to dance. Casting now means she will walk and run like her friends.",
            currency="TZS",
            funding_goal=Decimal("1200000"),
            treatment_partner=hospital,
        ),
        PatientFactory(
            code="PAT-0002",
            name="Baraka Otieno",
            condition="Cleft lip",
            story="Baraka is two. A one-hour operation will let him eat and smile without pain.",
            currency="KES",
            funding_goal=Decimal("90000"),
        ),
        PatientFactory(
            code="PAT-0003",
            name="Grace Namubiru",
            condition="Hydrocephalus",
            story="Grace needs a shunt to relieve the pressure on her brain.",
            currency="UGX",
            funding_goal=Decimal("3000000"),
        ),
    ]
    for patient, raised in zip(patients, ("450000", "12000", "3000000"), strict=True):
        ledger_seed_opening_balance(patient=patient, amount=Decimal(raised))
        patient.refresh_from_db()
    return patients


def donate(page, *, amount_label: str = "TSh 10,000", method: str = "M-Pesa (Vodacom)", number: str = "") -> None:
    """On a patient page: pick a preset, a payment method, type the number, press Donate."""
    page.get_by_label(amount_label, exact=True).check()
    page.get_by_label(method).check()
    if number:
        page.get_by_label("Mobile money number").fill(number)
    page.get_by_label("Your name (optional)").fill("Asha Said")
    page.get_by_label("Email for your receipt (optional)").fill("asha@example.org")
    page.get_by_role("button", name="Donate").click()


def test_mpesa_donation_completes_live_with_a_receipt(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    phone.goto(live_server.url + "/")
    expect(phone.get_by_role("heading", name="Neema")).to_be_visible()
    phone.get_by_role("link", name="Help Neema").click()
    expect(phone).to_have_url(re.compile(r"/patients/PAT-0001/$"))
    donate(phone, number="0712345678")

    # The donor's link is the donation's public token, never its guessable reference.
    expect(phone).to_have_url(re.compile(r"/donations/[A-Za-z0-9_-]{32}/$"))
    phone.evaluate("window.__sameDocument = true")  # survives only if the page never reloads
    expect(phone.get_by_role("heading", name="Check your phone and enter your PIN")).to_be_visible()
    expect(phone.get_by_role("heading", name=re.compile("Thank you"))).to_be_visible()
    expect(phone.locator("#receipt")).not_to_be_empty()
    assert phone.evaluate("window.__sameDocument") is True
    expect(phone.locator("#status-panel")).to_contain_text("TSh 10,000")
    expect(phone.locator("#status-panel")).to_contain_text("Neema")
    expect(phone.locator("#status-panel")).to_contain_text("Completed")


def test_cancelled_payment_explains_and_try_again_keeps_the_details(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    phone.goto(live_server.url + "/patients/PAT-0001/")
    donate(phone, amount_label="TSh 25,000", method="Airtel Money", number="0712345602")
    expect(phone.get_by_role("heading", name="Payment cancelled")).to_be_visible()
    expect(phone.locator("#status-reason")).to_contain_text("cancelled on the phone")
    phone.get_by_role("link", name="Try again").click()

    expect(phone).to_have_url(re.compile(r"/patients/PAT-0001/\?"))
    expect(phone.get_by_label("Mobile money number")).to_have_value("0712345602")
    expect(phone.get_by_label("Airtel Money")).to_be_checked()
    expect(phone.locator("input[name=amount][value='25000']")).to_be_checked()
    expect(phone.get_by_label("Your name (optional)")).to_have_value("Asha Said")
    expect(phone.get_by_label("Email for your receipt (optional)")).to_have_value("asha@example.org")


def test_bad_phone_number_is_explained_next_to_the_field(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    phone.goto(live_server.url + "/patients/PAT-0001/")
    donate(phone, number="12345")
    expect(phone.locator("#id_phone_number_error")).to_contain_text("phone number")
    expect(phone.get_by_label("Mobile money number")).to_have_attribute("aria-invalid", "true")


def test_card_payment_goes_to_the_checkout_and_comes_back_completed(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    phone.goto(live_server.url + "/patients/PAT-0001/")
    phone.get_by_label("Card (Visa, Mastercard)").check()
    expect(phone.get_by_label("Mobile money number")).to_be_hidden()
    donate(phone, amount_label="TSh 50,000", method="Card (Visa, Mastercard)")

    expect(phone).to_have_url(re.compile(re.escape(sandbox.base_url) + r"/azampay/checkout/"))
    phone.get_by_role("button", name="Pay").click()
    expect(phone).to_have_url(re.compile(re.escape(live_server.url) + r"/donations/[A-Za-z0-9_-]{32}/\?return=success"))
    expect(phone.get_by_role("heading", name=re.compile("Thank you"))).to_be_visible()
    expect(phone.locator("#status-panel")).to_contain_text("TSh 50,000")


def test_currency_without_a_provider_says_coming_soon(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    from portal.web import payment_methods

    currency = next((c for c in ("EUR", "UGX", "RWF") if not payment_methods(c)), "")
    if not currency:
        pytest.skip("every test currency has a provider now")
    phone.goto(f"{live_server.url}/general-fund/?currency={currency}")
    expect(phone.get_by_text(f"Online payment for {currency} is coming soon")).to_be_visible()
    expect(phone.get_by_role("button", name="Donate")).to_have_count(0)


def test_sign_up_donate_and_see_it_in_my_donations(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    phone.goto(live_server.url + "/")
    phone.get_by_role("link", name="Sign up").click()
    phone.get_by_label("Username").fill("zawadi")
    phone.get_by_label("Email").fill("zawadi@example.org")
    phone.get_by_label("Your name (optional)").fill("Zawadi Juma")
    phone.get_by_label("Mobile number (optional)").fill("0712000111")
    phone.get_by_label("Password").fill("Long-enough-pass-42")
    phone.get_by_role("button", name="Create account").click()
    # The same page whether or not the account was made (it tells no one who has one): the email says which.
    expect(phone.get_by_role("heading", name="Check your email")).to_be_visible()
    phone.get_by_role("main").get_by_role("link", name="Log in").click()
    phone.get_by_label("Username").fill("zawadi")
    phone.get_by_label("Password").fill("Long-enough-pass-42")
    phone.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="My donations")).to_be_visible()
    expect(phone.get_by_text("No donations yet")).to_be_visible()

    phone.goto(live_server.url + "/patients/PAT-0001/")
    phone.get_by_label("TSh 5,000", exact=True).check()
    phone.get_by_label("M-Pesa (Vodacom)").check()
    phone.get_by_label("Mobile money number").fill("0712000111")
    phone.get_by_role("button", name="Donate").click()
    expect(phone.get_by_role("heading", name=re.compile("Thank you"))).to_be_visible()

    phone.get_by_role("link", name="My donations").click()
    card = phone.locator("article.card").first
    expect(card).to_contain_text("TSh 5,000")
    expect(card).to_contain_text("Neema")
    expect(card).to_contain_text("Completed")
    expect(card).to_contain_text("Receipt")

    phone.get_by_role("button", name="Log out").click()
    expect(phone.get_by_role("link", name="Log in")).to_be_visible()
