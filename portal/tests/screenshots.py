"""Regenerates docs/screenshots/*.png of the donor portal at a phone-sized viewport (390x844): the English pages,
then the Swahili ones (sw-*.png), reached through the language switch as a donor would.

Not collected by the normal suite (the file name does not start with test_); run it on purpose (`make screenshots`):

    DJANGO_SETTINGS_MODULE=config.settings_test .venv/bin/python -m pytest portal/tests/screenshots.py -q
"""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from portal.tests import test_browser as browser

# The browser tests' fixtures, shared (a module-level name is how pytest finds a fixture).
chromium = browser.chromium
phone = browser.phone
sandbox = browser.sandbox
patients = browser.patients
CHROMIUM = browser.CHROMIUM

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


def shot(page, name: str, *, full_page: bool = False) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)


def test_screenshots(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    site = live_server.url
    phone.goto(site + "/")
    shot(phone, "01-home", full_page=True)

    phone.goto(site + "/patients/PAT-0001/")
    shot(phone, "02-patient", full_page=True)

    phone.get_by_label("TSh 10,000", exact=True).check()
    phone.get_by_label("M-Pesa (Vodacom)").check()
    phone.get_by_label("Mobile money number").fill("071234")
    phone.get_by_role("button", name="Donate").click()
    expect(phone.locator("#id_phone_number_error")).to_be_visible()
    phone.locator("#phone-field").scroll_into_view_if_needed()
    shot(phone, "03-phone-error")

    phone.get_by_label("Mobile money number").fill("0712345606")  # the sandbox answers ~10 s late
    phone.get_by_role("button", name="Donate").click()
    expect(phone.get_by_role("heading", name="Check your phone and enter your PIN")).to_be_visible()
    shot(phone, "04-status-pending")
    expect(phone.get_by_role("heading", name=re.compile("Thank you"))).to_be_visible(timeout=30_000)
    shot(phone, "05-status-completed")

    phone.goto(site + "/patients/PAT-0001/")
    phone.get_by_label("TSh 5,000", exact=True).check()
    phone.get_by_label("Tigo Pesa (Mixx by Yas)").check()
    phone.get_by_label("Mobile money number").fill("0712345602")
    phone.get_by_role("button", name="Donate").click()
    expect(phone.get_by_role("heading", name="Payment cancelled")).to_be_visible()
    shot(phone, "06-status-cancelled")

    phone.goto(site + "/patients/PAT-0002/")
    phone.locator("#donate").scroll_into_view_if_needed()
    shot(phone, "07-patient-kes")

    phone.goto(site + "/general-fund/")
    shot(phone, "08-general-fund", full_page=True)

    phone.goto(site + "/signup/")
    shot(phone, "09-signup")
    phone.get_by_label("Username").fill("zawadi")
    phone.get_by_label("Email").fill("zawadi@example.org")
    phone.get_by_label("Your name (optional)").fill("Zawadi Juma")
    phone.get_by_label("Password").fill("Long-enough-pass-42")
    phone.get_by_role("button", name="Create account").click()
    expect(phone.get_by_role("heading", name="Check your email")).to_be_visible()
    phone.goto(site + "/login/")  # signing up does not sign in (donor.services.donor_signup)
    phone.get_by_label("Username").fill("zawadi")
    phone.get_by_label("Password").fill("Long-enough-pass-42")
    phone.get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="My donations")).to_be_visible()
    phone.goto(site + "/patients/PAT-0001/")
    phone.get_by_label("TSh 50,000", exact=True).check()
    phone.get_by_label("M-Pesa (Vodacom)").check()
    phone.get_by_label("Mobile money number").fill("0712000111")
    phone.get_by_role("button", name="Donate").click()
    expect(phone.get_by_role("heading", name=re.compile("Thank you"))).to_be_visible()
    phone.get_by_role("link", name="My donations").click()
    expect(phone.get_by_role("heading", name="My donations")).to_be_visible()
    shot(phone, "10-my-donations", full_page=True)

    phone.get_by_role("button", name="Log out").click()
    phone.goto(site + "/login/")
    shot(phone, "11-login")
    phone.goto(site + "/patients/PAT-9999/")
    shot(phone, "12-not-found")


def test_screenshots_in_swahili(live_server, sandbox, patients, phone):
    from playwright.sync_api import expect

    site = live_server.url
    phone.goto(site + "/")
    phone.get_by_role("button", name="Kiswahili").click()  # the switch: a plain form, remembered in a cookie
    expect(phone.locator("html")).to_have_attribute("lang", "sw")
    shot(phone, "sw-01-home", full_page=True)

    phone.goto(site + "/patients/PAT-0001/")
    shot(phone, "sw-02-patient", full_page=True)

    phone.get_by_label("TSh 10,000", exact=True).check()
    phone.get_by_label("M-Pesa (Vodacom)").check()
    phone.get_by_label("Namba ya simu ya kulipia").fill("071234")
    phone.get_by_role("button", name="Changia", exact=True).click()
    expect(phone.locator("#id_phone_number_error")).to_be_visible()
    phone.locator("#phone-field").scroll_into_view_if_needed()
    shot(phone, "sw-03-phone-error")

    phone.get_by_label("Namba ya simu ya kulipia").fill("0712345606")  # the sandbox answers ~10 s late
    phone.get_by_role("button", name="Changia", exact=True).click()
    expect(phone.get_by_role("heading", name="Angalia simu yako na uweke PIN")).to_be_visible()
    shot(phone, "sw-04-status-pending")
    expect(phone.get_by_role("heading", name=re.compile("Asante"))).to_be_visible(timeout=30_000)
    shot(phone, "sw-05-status-completed")

    phone.goto(site + "/patients/PAT-0001/")
    phone.get_by_label("TSh 5,000", exact=True).check()
    phone.get_by_label("Tigo Pesa (Mixx by Yas)").check()
    phone.get_by_label("Namba ya simu ya kulipia").fill("0712345602")
    phone.get_by_role("button", name="Changia", exact=True).click()
    expect(phone.get_by_role("heading", name="Malipo yameghairiwa")).to_be_visible()
    shot(phone, "sw-06-status-cancelled")

    phone.goto(site + "/general-fund/")
    shot(phone, "sw-07-general-fund", full_page=True)

    phone.goto(site + "/signup/")
    shot(phone, "sw-08-signup")
    phone.get_by_label("Jina la mtumiaji").fill("zawadi")
    phone.get_by_label("Barua pepe", exact=True).fill("zawadi@example.org")
    phone.get_by_label("Nenosiri").fill("Long-enough-pass-42")
    phone.get_by_role("button", name="Fungua akaunti").click()
    phone.goto(site + "/login/")
    shot(phone, "sw-09-login")
    phone.get_by_label("Jina la mtumiaji").fill("zawadi")
    phone.get_by_label("Nenosiri").fill("Long-enough-pass-42")
    phone.get_by_role("button", name="Ingia").click()
    expect(phone.get_by_role("heading", name="Michango yangu")).to_be_visible()

    phone.goto(site + "/patients/PAT-0001/")
    phone.get_by_label("TSh 25,000", exact=True).check()
    phone.get_by_label("M-Pesa (Vodacom)").check()
    phone.get_by_label("Namba ya simu ya kulipia").fill("0712000111")
    phone.get_by_label("Changia kiasi hiki kila mwezi (pesa kwa simu)").check()
    phone.get_by_label("Tarehe ya kila mwezi").select_option("15")
    phone.locator("#monthly").scroll_into_view_if_needed()
    shot(phone, "sw-10-give-monthly")
    phone.get_by_role("button", name="Changia", exact=True).click()
    expect(phone.get_by_role("heading", name="Asante! Ahadi yako ya kila mwezi imewekwa")).to_be_visible()
    shot(phone, "sw-11-pledge-started", full_page=True)
    phone.get_by_role("link", name="Simamia ahadi hii").click()
    shot(phone, "sw-12-pledge-manage", full_page=True)

    phone.get_by_role("link", name="Ahadi zangu").click()
    shot(phone, "sw-13-my-pledges", full_page=True)
    phone.get_by_role("link", name="Michango yangu").click()
    shot(phone, "sw-14-my-donations", full_page=True)

    phone.goto(site + "/patients/PAT-9999/")
    shot(phone, "sw-15-not-found")


def test_share_kit_screenshot(live_server, sandbox, phone):
    """The share page of a KES patient whose book has gifts and a payout: the card, the paybill way in English
    and Swahili, the QR code, where the money went."""
    from django.utils import timezone

    from donor.services import donor_for_guest
    from patients.tests.factories import PatientFactory
    from payments.models import Payout
    from payments.tests.factories import completed_donation, staff_user

    patient = PatientFactory(code="PAT-0006", name="Wanjiru Kamau", treatment="Reconstructive surgery",
                             currency="KES", funding_goal=Decimal("120000"))  # fmt: skip
    for amount in ("25000", "10000", "2500"):
        completed_donation(patient, donor_for_guest(email="donor@example.org"), amount, provider="mpesa", channel="")
    Payout.objects.create(reference="RHCI-PO-demo", patient=patient, treatment_partner=patient.treatment_partner,
                          provider="mpesa", msisdn="254708374149", amount=Decimal("30000"), currency="KES",
                          requested_by=staff_user("maker"), status="paid", receipt="TLB7QX2K9P",
                          completed_at=timezone.now())  # fmt: skip
    phone.goto(live_server.url + "/p/PAT-0006")
    shot(phone, "13-share-kit", full_page=True)
