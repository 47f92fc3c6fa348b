"""Swahili and English: the catalogue is complete and compiled, every portal page renders in Swahili with no
English left, the switch works without JavaScript, and the donor's language reaches their messages."""

import html as html_lib
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import trans_real

from donor.models import Donor
from donor.money import money_for_people
from donor.notifications import notices_record, notices_send
from donor.sms import donation_sms_text
from donor.tests.factories import DonationFactory, DonorFactory
from integrations.sms import gsm7_length
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.services.donations import DonationRequest
from payments.tests.factories import PaymentFactory
from pledges import run
from pledges.models import Pledge, PledgeCycle
from pledges.services import manage_token, pay_url, pledge_create
from portal.templatetags.people import ago

PO = Path(settings.BASE_DIR) / "locale" / "sw" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SW = {"HTTP_ACCEPT_LANGUAGE": "sw"}
# Template text that, seen on a Swahili page, means a string was left unmarked (the catalogue's own msgids are
# checked too: see english_left).
ENGLISH = [
    "Patient donations",
    "General fund",
    "Log in",
    "Sign up",
    "My donations",
    "Donate",
    "Pay with",
    "Amount",
    "Reference",
    "Status",
    "Thank you",
    "Try again",
    "Check your phone",
    "still needed",
    "raised of",
    "Recent donations",
    "the general fund",
    "Give monthly",
    "Next payment",
    "Skip the next payment",
    "Page not found",
    "Create an account",
    "Username",
    "Password",
    "Mobile money number",
    "Your monthly pledge",
    "Manage this pledge",
]


def catalogue() -> polib.POFile:
    return polib.pofile(str(PO))


def test_every_catalogue_entry_is_translated_and_none_is_fuzzy():
    po = catalogue()
    assert not po.metadata_is_fuzzy and po.metadata["Language"] == "sw"
    problems = []
    for entry in po:
        if entry.obsolete:
            continue
        strings = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        if "fuzzy" in entry.flags or not all(s.strip() for s in strings):
            problems.append(entry.msgid)
        names = re.compile(r"%\(\w+\)[sd]").findall
        if not entry.msgid_plural:  # the placeholders survive translation (a missing one raises at run time)
            if set(names(entry.msgstr)) != set(names(entry.msgid)):
                problems.append(f"placeholders: {entry.msgid}")
        elif set(names(strings[-1])) != set(names(entry.msgid_plural)) or not all(
            set(names(text)) <= set(names(entry.msgid_plural)) for text in strings
        ):  # a singular form may say "one" in words, but the plural keeps the count
            problems.append(f"placeholders: {entry.msgid}")
    assert problems == []


def test_the_committed_mo_is_the_po_compiled():
    """The .mo shipped in the repository has exactly the .po's messages (run compilemessages after editing it)."""

    def messages(entries) -> dict:
        found = {}
        for entry in entries:
            if entry.obsolete or not entry.msgid:
                continue
            if entry.msgid_plural:
                found[(entry.msgid, entry.msgid_plural)] = tuple(
                    entry.msgstr_plural[k] for k in sorted(entry.msgstr_plural)
                )
            else:
                found[entry.msgid] = entry.msgstr
        return found

    assert messages(polib.mofile(str(MO))) == messages(catalogue())


@pytest.mark.parametrize(
    ("language", "minutes", "written"),
    [("en", 1, "1 minute ago"), ("en", 125, "2 hours ago"), ("sw", 5, "dakika 5 zilizopita"),
     ("sw", 60 * 24, "siku 1 iliyopita"), ("sw", 60 * 24 * 40, "mwezi 1 uliopita"), ("sw", 0, "sasa hivi")],
)  # fmt: skip
def test_how_long_ago_agrees_with_its_unit_in_swahili(language, minutes, written):
    with translation.override(language):
        said = ago(timezone.now() - timedelta(minutes=minutes, seconds=5 if minutes else 0))
    assert said.replace("\xa0", " ") == written  # kept on one line (non-breaking spaces)


def test_amounts_are_written_as_people_write_them():
    assert money_for_people(Decimal("5000"), "TZS") == "TSh 5,000"
    assert money_for_people(Decimal("2500"), "KES") == "KSh 2,500"
    assert money_for_people(Decimal("10000"), "UGX") == "USh 10,000"
    assert money_for_people(Decimal("12.50"), "EUR") == "EUR 12.50"


@pytest.mark.parametrize("language", ["en", "sw"])
def test_the_donation_sms_is_one_gsm7_message_in_each_language(language):
    with translation.override(language):
        text = donation_sms_text(amount=Decimal("1250000"), currency="TZS", patient_code="PAT-0001",
                                 receipt="MPX1234567890ABCD",
                                 link="https://donate.example.org/donations/" + "x" * 32 + "/")  # fmt: skip
    assert gsm7_length(text) <= 160 and "TSh 1,250,000" in text and "/donations/" + "x" * 32 in text
    assert ("PAT-0001" in text) and (("kwa PAT-0001" in text) == (language == "sw"))


# --- The pages, walked in Swahili ---------------------------------------------------------------------------


@pytest.fixture
def used_messages(monkeypatch):
    """Every msgid looked up while rendering in Swahili, and those the loaded catalogues have no translation for."""
    with translation.override("sw"):
        sw = trans_real.translation("sw")
    looked_up: set[str] = set()
    untranslated: set[str] = set()
    gettext, ngettext = sw.gettext, sw.ngettext

    def recording_gettext(message):
        looked_up.add(message)
        if message and message not in sw._catalog:
            untranslated.add(message)
        return gettext(message)

    def recording_ngettext(singular, plural, number):
        looked_up.add(singular)
        if (singular, 0) not in sw._catalog:
            untranslated.add(singular)
        return ngettext(singular, plural, number)

    monkeypatch.setattr(sw, "gettext", recording_gettext)
    monkeypatch.setattr(sw, "ngettext", recording_ngettext)
    return looked_up, untranslated


def english_left(page: str) -> list[str]:
    """English words of ours on a page: the catalogue's longer msgids (no placeholders) and ENGLISH."""
    ours = [e.msgid for e in catalogue() if len(e.msgid) > 14 and "%" not in e.msgid and "<" not in e.msgid]
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page))
    text = " ".join(text.split())
    return [phrase for phrase in {*ours, *ENGLISH} if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text)]


@pytest.fixture
def world(db, azampay_settings, settings):
    settings.SITE_URL = "https://donate.example.org"
    patient = PatientFactory(code="PAT-0001", name="Neema Mushi", condition="Clubfoot", currency="TZS",
                             story="Neema is four.", treatment="Ponseti casting", funding_goal=Decimal("100000"),
                             funding_received=Decimal("25000"))  # fmt: skip
    PatientFactory(code="PAT-0002", name="Baraka Ally", status=Patient.Status.FULLY_FUNDED)
    pending = PaymentFactory(donation__patient=patient, status="pending").donation
    completed = PaymentFactory(donation__patient=patient, donation__status="completed", status="succeeded",
                               donation__completed_at=timezone.now() - timedelta(minutes=5),
                               receipt="MPX123").donation  # fmt: skip
    failed = PaymentFactory(donation__patient=patient, donation__status="failed", status="failed",
                            donation__status_reason="Insufficient balance").donation  # fmt: skip
    request = DonationRequest(amount=Decimal("5000"), currency="TZS", provider="azampay", channel="Mpesa",
                              phone_number="0712345678", patient_code=patient.code, name="Asha")  # fmt: skip
    pledge = pledge_create(request, day_of_month=10, user=None, today=date(2027, 1, 5))
    cycle = PledgeCycle.objects.create(pledge=pledge, due_on=pledge.next_due_on)
    return {"patient": patient, "pending": pending, "completed": completed, "failed": failed, "pledge": pledge,
            "cycle": cycle}  # fmt: skip


def test_every_portal_page_is_swahili_with_no_english_left(world, used_messages, django_user_model):
    anonymous, signed_in = Client(**SW), Client(**SW)
    user = django_user_model.objects.create_user(username="amani", password="x-Long-enough-9")
    donor = DonorFactory(user=user, name="Amani")
    world["pledge"].donor = donor
    world["pledge"].save()
    DonationFactory(donor=donor, patient=world["patient"], status="completed")
    signed_in.force_login(user)
    token = manage_token(world["pledge"])
    pages = {
        "home": (anonymous, "/"),
        "patient": (anonymous, "/patients/PAT-0001/"),
        "fully funded patient": (anonymous, "/patients/PAT-0002/"),
        "general fund": (anonymous, "/general-fund/"),
        "status pending": (anonymous, f"/donations/{world['pending'].public_token}/"),
        "status completed": (anonymous, f"/donations/{world['completed'].public_token}/"),
        "status failed": (anonymous, f"/donations/{world['failed'].public_token}/"),
        "signup": (anonymous, "/signup/"),
        "login": (anonymous, "/login/"),
        "my donations": (signed_in, "/my/donations/"),
        "my pledges": (signed_in, "/my/pledges/"),
        "pledge manage": (anonymous, f"/pledges/manage/{token}/"),
        "pledge pay": (anonymous, pay_url(world["cycle"]).removeprefix(settings.SITE_URL)),
        "pledge link not valid": (anonymous, "/pledges/manage/not-a-token/"),
        "404": (anonymous, "/no-such-page/"),
    }
    for name, (client, path) in pages.items():
        response = client.get(path)
        page = response.content.decode()
        assert response.status_code in (200, 404), name
        assert '<html lang="sw">' in page, name
        assert english_left(page) == [], (name, english_left(page))
        if name == "patient":  # the recent gifts, with how long ago in Swahili's own agreement
            assert "dakika 5 zilizopita" in page.replace("\xa0", " ") and "TSh 5,000" in page
    # Forms answered: sign-up done, a form error, a monthly pledge started.
    done = anonymous.post("/signup/", {"username": "zawadi", "email": "z@example.org", "password": "x-Long-enough-9"})
    assert '<html lang="sw">' in done.content.decode() and english_left(done.content.decode()) == []
    refused = anonymous.post("/patients/PAT-0001/", {"custom_amount": "1", "method": "azampay:Mpesa",
                                                     "phone_number": "0712345678", "monthly": "on"})  # fmt: skip
    page = refused.content.decode()
    assert "Chagua tarehe ya mwezi" in page and english_left(page) == []
    started = anonymous.post("/patients/PAT-0001/", {"amount": "5000", "method": "azampay:Mpesa",
                                                     "phone_number": "0712345678", "monthly": "on",
                                                     "day_of_month": "10"})  # fmt: skip
    page = started.content.decode()
    assert started.status_code == 201 and "Ahadi yako ya kila mwezi imewekwa" in page and english_left(page) == []
    looked_up, untranslated = used_messages
    assert len(looked_up) > 80  # the walk did render through the catalogue
    # The switch names each language in its own words (name_local); Django looks the LANGUAGES names up too.
    assert sorted(untranslated - {name for _code, name in settings.LANGUAGES}) == []


def test_english_is_the_default_and_the_html_says_so(world):
    page = Client().get("/").content.decode()
    assert '<html lang="en">' in page and "Fund a patient's treatment" in page


def test_the_switch_works_without_javascript_and_a_signed_in_donor_keeps_the_choice(world, django_user_model):
    user = django_user_model.objects.create_user(username="amani", password="x-Long-enough-9")
    donor = DonorFactory(user=user, language="en")
    client = Client()
    client.force_login(user)
    home = client.get("/patients/PAT-0001/").content.decode()
    assert 'action="/language/"' in home and 'name="language" value="sw"' in home
    response = client.post("/language/", {"language": "sw", "next": "/patients/PAT-0001/"})
    assert response.status_code == 302 and response["Location"] == "/patients/PAT-0001/"
    page = client.get("/patients/PAT-0001/").content.decode()
    assert '<html lang="sw">' in page and "Mchangie Neema" in page and 'value="en"' in page
    donor.refresh_from_db()
    assert donor.language == "sw"


# --- The donor's language in their messages -------------------------------------------------------------------


def test_a_guest_who_gives_from_a_swahili_page_gets_a_swahili_receipt_and_sms(world, settings):
    settings.SMS_GATEWAY = ""  # the SMS text itself is checked below; here the email
    Client(**SW).post("/patients/PAT-0001/", {"amount": "5000", "method": "azampay:Mpesa",
                                              "phone_number": "0712345678", "email": "asha@example.org"})  # fmt: skip
    donor = Donor.objects.get(email="asha@example.org")
    assert donor.language == "sw"
    payment = PaymentFactory(donation__donor=donor, donation__patient=world["patient"], donation__status="completed",
                             status="succeeded", receipt="MPX9")  # fmt: skip
    mail.outbox.clear()
    translation.activate(
        "en"
    )  # the test client's request left Swahili active in this thread: the relay runs in English
    notices_record(donation_id=payment.donation_id)
    notices_send(donation_id=payment.donation_id)
    assert translation.get_language() == "en"  # the override ends with the message
    [email] = mail.outbox
    assert email.subject.startswith("Asante: mchango wako") and "TSh 5,000" in email.body
    assert "Mchango wako wa TSh 5,000 kwa Neema umethibitishwa." in email.body and "Risiti ya mtoa huduma" in email.body


def test_an_api_request_in_swahili_is_answered_in_swahili_and_remembered(world, api_client):
    response = api_client.post("/api/v1.0/donors/pledges/", {"patient": "PAT-0001", "amount": "5000",
                               "currency": "TZS", "provider": "azampay", "channel": "Mpesa",
                               "phone_number": "0712345678", "day_of_month": 1},
                               format="json", HTTP_ACCEPT_LANGUAGE="sw")  # fmt: skip
    assert response.status_code == 201 and response.json()["language"] == "sw"
    assert Pledge.objects.get(reference=response.json()["reference"]).language == "sw"
    refused = api_client.post("/api/v1.0/donors/pledges/", {"patient": "PAT-0001", "amount": "abc", "currency": "TZS",
                              "provider": "azampay", "channel": "Mpesa", "phone_number": "0712345678",
                              "day_of_month": 5}, format="json", HTTP_ACCEPT_LANGUAGE="sw")  # fmt: skip
    body = refused.json()
    assert refused.status_code == 400 and body["code"] == "VALIDATION_ERROR"
    donation = api_client.post("/api/v1.0/donors/donations/", {"patient": "PAT-0001", "amount": "1",
                               "currency": "TZS", "provider": "azampay", "channel": "Mpesa",
                               "phone_number": "0712345678"}, format="json", HTTP_ACCEPT_LANGUAGE="sw")  # fmt: skip
    assert donation.status_code == 400 and "Mchango mdogo kabisa ni TSh" in str(donation.json()["errors"]["amount"])


def test_a_swahili_pledges_reminder_is_swahili_and_fits_one_sms_with_its_link(world, monkeypatch):
    """pledges_run makes the pledge's language the active one for its messages (pledges.run.pledges_run)."""
    pledge = world["pledge"]
    Pledge.objects.filter(pk=pledge.pk).update(language="sw")
    texts: list[str] = []
    monkeypatch.setattr(run, "pledge_tell", lambda pledge, **kw: texts.append(kw["sms"]))
    report = run.pledges_run(now=timezone.make_aware(datetime.combine(world["cycle"].due_on - timedelta(2), time(10))))
    assert report.reminded == 1
    [text] = texts
    assert text.startswith(("Ukumbusho:", "Mchango wako")) and gsm7_length(text) <= 160 and "/pledges/manage/" in text
