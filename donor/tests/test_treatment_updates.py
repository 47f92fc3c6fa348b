"""Treatment updates reach the donors who funded the patient: one message per person and channel however many
gifts they made and however often the fan-out runs, none to donors whose money went back or who unsubscribed,
nothing before a second person approves, in the donor's language, with one-click unsubscribe headers."""

import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import responses
from django.core import mail
from django.test import Client

from donor.models import Donation, Notice, NoticeSubscription
from donor.notifications import notices_send
from donor.services import donation_refund, donor_for_guest
from donor.updates import notice_subscribe, update_notices_record
from patients.models import TreatmentUpdate
from patients.tests.factories import PatientFactory
from patients.updates import UpdateRefused, treatment_update_approve, treatment_update_write
from payments.models import AuditEntry
from payments.tests.factories import completed_donation, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    return PatientFactory(name="Amina Juma", currency="TZS", funding_goal=Decimal("100000"))


@pytest.fixture
def writer():
    return staff_user("update-writer", "patients.add_treatmentupdate", "patients.view_treatmentupdate")


@pytest.fixture
def checker():
    return staff_user("update-checker", "patients.approve_treatmentupdate", "patients.view_treatmentupdate")


def paid(patient, donor, amount="5000") -> Donation:
    return completed_donation(patient, donor, amount)


def update_emails() -> list:
    return [m for m in mail.outbox if m.subject.startswith("News of")]


def approve(update, checker, capture) -> None:
    with capture(execute=True):
        treatment_update_approve(update_id=update.pk, approved_by=checker)


def test_a_donor_with_three_gifts_gets_one_email_and_refunded_or_unsubscribed_donors_none(
    patient, writer, checker, django_capture_on_commit_callbacks
):
    faithful = donor_for_guest(name="Baraka", email="baraka@example.org")
    for _gift in range(3):
        paid(patient, faithful)
    refunded = donor_for_guest(name="Neema", email="neema@example.org")
    donation_refund(donation_id=paid(patient, refunded).pk, amount=Decimal("5000"))
    gone = donor_for_guest(name="Juma", email="juma@example.org")
    paid(patient, gone)
    NoticeSubscription.objects.create(channel="email", address="juma@example.org", subscribed=False)
    other_patient_donor = donor_for_guest(email="elsewhere@example.org")
    paid(PatientFactory(currency="TZS"), other_patient_donor)
    mail.outbox.clear()

    update = treatment_update_write(author=writer, patient=patient, kind="final", text="Amina walks again.")
    approve(update, checker, django_capture_on_commit_callbacks)

    assert [m.to for m in update_emails()] == [["baraka@example.org"]]
    assert "Amina walks again." in update_emails()[0].body
    assert Notice.objects.filter(treatment_update=update).count() == 1
    audit = AuditEntry.objects.filter(target=f"patient {patient.code}").order_by("pk")
    assert [(a.action, a.actor) for a in audit] == [("update.write", writer), ("update.approve", checker)]


def test_guest_rows_with_one_email_are_one_person(patient, writer, checker, django_capture_on_commit_callbacks):
    for _gift in range(3):  # a guest gets a Donor row per donation (donor_for_guest): still one person
        paid(patient, donor_for_guest(email="Rehema@Example.org"))
    approve(treatment_update_write(author=writer, patient=patient, kind="preliminary", text="Surgery on Monday."),
            checker, django_capture_on_commit_callbacks)  # fmt: skip
    assert [m.to for m in update_emails()] == [["rehema@example.org"]]


def test_an_unapproved_update_sends_nothing_and_its_writer_cannot_approve_it(patient, writer):
    paid(patient, donor_for_guest(email="baraka@example.org"))
    mail.outbox.clear()
    update = treatment_update_write(author=writer, patient=patient, kind="delay", text="The surgeon is away.")
    assert update_notices_record(update=update) == 0
    notices_send()
    assert update_emails() == [] and not Notice.objects.filter(kind="update").exists()
    writer_and_checker = staff_user("both", "patients.add_treatmentupdate", "patients.approve_treatmentupdate")
    own = treatment_update_write(author=writer_and_checker, patient=patient, kind="delay", text="Still away.")
    with pytest.raises(UpdateRefused, match="someone other than"):
        treatment_update_approve(update_id=own.pk, approved_by=writer_and_checker)
    assert TreatmentUpdate.objects.get(pk=own.pk).status == TreatmentUpdate.Status.REQUESTED


def test_running_the_fan_out_again_sends_nothing_new(patient, writer, checker, django_capture_on_commit_callbacks):
    paid(patient, donor_for_guest(email="baraka@example.org"))
    update = treatment_update_write(author=writer, patient=patient, kind="final", text="Home now.")
    approve(update, checker, django_capture_on_commit_callbacks)
    assert len(update_emails()) == 1
    update.refresh_from_db()
    assert update_notices_record(update=update) == 0
    notices_send()
    assert len(update_emails()) == 1
    with pytest.raises(UpdateRefused, match="not awaiting approval"):
        treatment_update_approve(update_id=update.pk, approved_by=checker)


def test_the_email_carries_one_click_unsubscribe_headers_and_the_link_works_without_login(
    patient, writer, checker, django_capture_on_commit_callbacks
):
    donor = donor_for_guest(email="baraka@example.org")
    paid(patient, donor)
    approve(treatment_update_write(author=writer, patient=patient, kind="final", text="Home now."), checker,
            django_capture_on_commit_callbacks)  # fmt: skip
    email = update_emails()[0]
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = email.extra_headers["List-Unsubscribe"].strip("<>")
    assert link in email.body and link.startswith("http")
    path = link.split("://", 1)[1].split("/", 1)[1]

    anonymous = Client()
    page = anonymous.get(f"/{path}")
    assert page.status_code == 200 and b"Stop the updates" in page.content
    assert not NoticeSubscription.objects.exists()  # a GET (a link scanner) unsubscribes nobody
    one_click = anonymous.post(f"/{path}", {"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    choice = NoticeSubscription.objects.get()
    assert (choice.channel, choice.address, choice.subscribed, choice.source) == (
        "email", "baraka@example.org", False, "one-click")  # fmt: skip

    mail.outbox.clear()
    paid(patient, donor)
    approve(treatment_update_write(author=writer, patient=patient, kind="final", text="Back at school."), checker,
            django_capture_on_commit_callbacks)  # fmt: skip
    assert update_emails() == []


def test_a_tampered_unsubscribe_link_is_refused(patient):
    assert Client().post("/unsubscribe/12:forged/").status_code == 404
    assert not NoticeSubscription.objects.exists()


def test_a_photo_needs_the_patients_recorded_consent(patient, writer):
    with pytest.raises(UpdateRefused, match="photo consent"):
        treatment_update_write(author=writer, patient=patient, kind="final", text="Smiling.",
                               photo_url="https://example.org/amina.jpg")  # fmt: skip


def test_a_partners_member_writes_only_for_that_partners_patients(patient):
    member = staff_user("nurse", "patients.add_treatmentupdate")
    patient.treatment_partner.members.add(member)
    treatment_update_write(author=member, patient=patient, kind="preliminary", text="Admitted today.")
    with pytest.raises(UpdateRefused, match="may not write"):
        treatment_update_write(author=member, patient=PatientFactory(), kind="preliminary", text="Admitted.")


TELEGRAM = "https://api.telegram.example/bot1:test-token/sendMessage"


def text(body: bytes | str | None) -> str:
    raw = body.decode() if isinstance(body, bytes) else body or ""
    return raw if raw.startswith("{") else unquote_plus(raw)  # Telegram's JSON, or the SMS gateway's form


def test_telegram_and_sms_go_only_where_the_donor_opted_in(
    patient, writer, checker, settings, django_capture_on_commit_callbacks
):
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_API_URL = "1:test-token", "https://api.telegram.example"
    settings.ADMIN_CHAT_ID = ""
    settings.SMS_GATEWAY, settings.AFRICASTALKING_API_URL = "africastalking", "https://api.sandbox.africastalking.com"
    settings.AFRICASTALKING_USERNAME, settings.AFRICASTALKING_API_KEY = "sandbox", "test-key"
    texting = donor_for_guest(email="", phone="255700000001")
    texting.telegram_chat_id = "4242"
    texting.save()
    quiet = donor_for_guest(email="", phone="255700000002")  # gave a phone, never asked for texts
    for donor in (texting, quiet):
        paid(patient, donor)
    notice_subscribe(channel="sms", address="255700000001", source="staff")
    sms_answer = json.loads((Path(__file__).parent / "fixtures" / "africastalking_send_success.json").read_text())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as far_side:
        far_side.post(TELEGRAM, json={"ok": True, "result": {"message_id": 1}})
        far_side.post("https://api.sandbox.africastalking.com/version1/messaging", json=sms_answer, status=201)
        approve(treatment_update_write(author=writer, patient=patient, kind="final", text="Home now."), checker,
                django_capture_on_commit_callbacks)  # fmt: skip
        bodies = [(c.request.url, text(c.request.body)) for c in far_side.calls]
    telegram = [body for url, body in bodies if url == TELEGRAM and "Home now" in body]
    sms = [body for url, body in bodies if "africastalking" in url and "Home now" in body]
    assert len(telegram) == 1 and json.loads(telegram[0])["chat_id"] in ("4242", 4242)
    assert len(sms) == 1 and "+255700000001" in sms[0] and "Stop: http://127.0.0.1:8000/unsubscribe/" in sms[0]
    assert set(Notice.objects.filter(kind="update").values_list("channel", flat=True)) == {"telegram", "sms"}


def test_the_message_is_in_the_donors_language(patient, writer, checker, django_capture_on_commit_callbacks):
    swahili, english = donor_for_guest(email="neema@example.org"), donor_for_guest(email="ben@example.org")
    swahili.language = "sw"
    swahili.save()
    for donor in (swahili, english):
        paid(patient, donor)
    approve(treatment_update_write(author=writer, patient=patient, kind="final", text="Amina anatembea tena."),
            checker, django_capture_on_commit_callbacks)  # fmt: skip
    by_address = {m.to[0]: m for m in mail.outbox if "Amina anatembea tena." in m.body}
    assert by_address["neema@example.org"].subject == "Habari za Amina, ambaye ulisaidia kulipia matibabu yake"
    assert "Matibabu yamekamilika" in by_address["neema@example.org"].body
    assert "Sitisha" not in by_address["neema@example.org"].body  # the SMS words stay out of the email
    assert by_address["ben@example.org"].subject == "News of Amina, whose treatment you helped pay for"
    assert "Treatment is complete" in by_address["ben@example.org"].body
