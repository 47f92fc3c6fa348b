"""Receipts: numbered once, voided or reissued by a refund, marked when copied, in the donor's language, attached
to the email receipt and downloadable by signed link; the PDF's text is read back with pypdf."""

from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils import timezone

from donor.models import Donation
from donor.notifications import notices_record, notices_send
from donor.services import donation_refund
from donor.tests.factories import DonorFactory
from receipts.models import Receipt
from receipts.services import ReceiptRefused, receipt_issue, receipt_pdf_for
from receipts.tests.helpers import completed_donation, paid_donation, pdf_fonts, pdf_text

pytestmark = pytest.mark.django_db

NO_GOODS = "No goods or services were provided in return for this donation."


@pytest.fixture(autouse=True)
def organisation(settings):
    settings.ORGANISATION_NAME = "Tumaini Medical Fund"
    settings.ORGANISATION_REGISTRATION_NUMBER = "OONGO/R/1234"
    settings.SITE_URL = "https://donate.example.org"


def test_a_receipt_is_numbered_once_per_donation_and_consecutively_in_its_year():
    first, second = completed_donation(), completed_donation()

    receipt = receipt_issue(donation_id=first.pk)
    again = receipt_issue(donation_id=first.pk)
    other = receipt_issue(donation_id=second.pk)

    year = first.completed_at.year
    assert receipt.pk == again.pk and receipt.number == f"RCT-{year}-000001"
    assert other.number == f"RCT-{year}-000002"
    assert Receipt.objects.count() == 2


def test_a_donation_that_was_not_completed_has_no_receipt_and_takes_no_number():
    donation = paid_donation()
    with pytest.raises(ReceiptRefused):
        receipt_issue(donation_id=donation.pk)
    assert receipt_issue(donation_id=completed_donation().pk).sequence == 1


def test_the_receipt_shows_the_organisation_the_gift_and_the_no_goods_line():
    donation = completed_donation(receipt="SGH7K2L9QW", amount=Decimal("5000"))

    receipt, pdf = receipt_pdf_for(donation_id=donation.pk)

    text = pdf_text(pdf)
    assert pdf.startswith(b"%PDF")
    for expected in ("Tumaini Medical Fund", "OONGO/R/1234", receipt.number, "TSh 5,000", "SGH7K2L9QW", "M-Pesa",
                     timezone.localtime(donation.completed_at).strftime("%Y-%m-%d"), donation.donor.name,
                     donation.patient.code,
                     NO_GOODS):  # fmt: skip
        assert expected in text, expected
    assert "VOID" not in text and "DUPLICATE" not in text


def test_a_general_fund_gift_says_so():
    donation = completed_donation(patient=None, currency="KES", amount=Decimal("2500"))
    text = pdf_text(receipt_pdf_for(donation_id=donation.pk)[1])
    assert "The general fund" in text and "KSh 2,500" in text


def test_a_full_refund_voids_the_receipt_under_the_same_number():
    donation = completed_donation()
    original = receipt_issue(donation_id=donation.pk)

    donation_refund(donation_id=donation.pk, amount=Decimal("5000"))
    receipt, pdf = receipt_pdf_for(donation_id=donation.pk)

    assert (receipt.number, receipt.version, receipt.void) == (original.number, 2, True)
    assert receipt.voided_at is not None
    text = pdf_text(pdf)
    assert "VOID" in text and original.number in text and "refunded in full" in text


def test_a_partial_refund_reissues_the_receipt_with_the_amount_kept():
    donation = completed_donation(amount=Decimal("5000"))
    original = receipt_issue(donation_id=donation.pk)

    donation_refund(donation_id=donation.pk, amount=Decimal("2000"))
    receipt, pdf = receipt_pdf_for(donation_id=donation.pk)

    assert (receipt.number, receipt.version, receipt.void) == (original.number, 2, False)
    assert (receipt.amount, receipt.refunded) == (Decimal("3000"), Decimal("2000"))
    text = pdf_text(pdf)
    assert "TSh 3,000" in text and "TSh 2,000" in text and "Version 2" in text and "VOID" not in text
    assert receipt_issue(donation_id=donation.pk).pk == receipt.pk  # nothing new: no third version


def test_the_first_download_is_the_original_and_a_second_one_is_marked_duplicate():
    donation = completed_donation()
    _, first = receipt_pdf_for(donation_id=donation.pk)
    _, second = receipt_pdf_for(donation_id=donation.pk)
    assert "DUPLICATE" not in pdf_text(first)
    assert "DUPLICATE" in pdf_text(second) and "Copy of the receipt first issued on" in pdf_text(second)


def test_a_swahili_receipt_embeds_dejavu_and_its_text_reads_back_whole():
    donor = DonorFactory(language="sw", name="Neema Mwakyusa")
    donation = completed_donation(donor=donor, amount=Decimal("5000"))

    receipt, pdf = receipt_pdf_for(donation_id=donation.pk)

    assert receipt.language == "sw"
    text = pdf_text(pdf)
    for expected in ("Risiti ya mchango", "Namba ya usajili", "Mfadhili", "Neema Mwakyusa", "Tarehe ya mchango",
                     "Kiasi kilichopokelewa", "TSh 5,000", "Risiti ya mtoa huduma", "Asante kwa mchango wako.",
                     "Hakuna bidhaa wala huduma iliyotolewa kwa malipo ya mchango huu.",
                     f"Matibabu ya {donation.patient.first_name} (mgonjwa {donation.patient.code})"):  # fmt: skip
        assert expected in text, expected
    fonts = pdf_fonts(pdf)
    assert fonts and all(font["embedded"] and "DejaVu" in font["name"] for font in fonts), fonts


def test_the_email_receipt_carries_the_pdf(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    donation = paid_donation()
    with transaction.atomic():
        from donor.services import donation_complete

        donation_complete(donation_id=donation.pk)
        notices_record(donation_id=donation.pk)
    mail.outbox.clear()

    assert notices_send(donation_id=donation.pk)["sent"] == 1

    (message,) = mail.outbox
    receipt = Receipt.objects.get(donation=donation)
    ((name, content, mimetype),) = message.attachments
    assert (name, mimetype) == (f"{receipt.number}.pdf", "application/pdf")
    assert receipt.number in pdf_text(content) and "DUPLICATE" not in pdf_text(content)
    assert f"attached: {receipt.number}.pdf" in message.body
    assert receipt.delivered_at is not None and receipt.content_hash


def test_the_status_body_gives_a_signed_receipt_link_once_completed_that_works_without_login():
    donation = paid_donation()
    status_url = f"/api/v1.0/donors/donations/{donation.public_token}/status/"
    assert Client().get(status_url).json()["receipt_pdf_url"] is None

    from donor.services import donation_complete

    donation_complete(donation_id=donation.pk)
    link = Client().get(status_url).json()["receipt_pdf_url"]

    assert link.startswith("https://donate.example.org/receipts/")
    response = Client().get(link.removeprefix("https://donate.example.org"))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert Receipt.objects.get(donation=donation).number in pdf_text(response.content)
    tampered = link.removeprefix("https://donate.example.org")[:-8] + "AAAA.pdf"
    assert Client().get(tampered).status_code == 404
    unsigned = f"/receipts/{donation.public_token}.pdf"
    assert Client().get(unsigned).status_code == 404


def test_the_portal_serves_a_receipt_only_to_its_owner(donor_user, client):
    from donor.services import donor_for_user

    mine = completed_donation(donor=donor_for_user(user=donor_user))
    theirs = completed_donation()
    client.force_login(donor_user)

    response = client.get(f"/my/donations/{mine.public_token}/receipt.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert client.get(f"/my/donations/{theirs.public_token}/receipt.pdf").status_code == 404
    page = client.get("/my/donations/").content.decode()
    assert f"/my/donations/{mine.public_token}/receipt.pdf" in page
    assert f"/my/statements/{mine.completed_at.year}.pdf" in page


def test_a_refunded_donation_stays_refunded_for_the_receipt_link():
    donation = completed_donation()
    donation_refund(donation_id=donation.pk, amount=donation.amount)
    donation.refresh_from_db()
    assert donation.status == Donation.Status.REFUNDED
    assert receipt_issue(donation_id=donation.pk).void


def test_a_completed_donation_with_nothing_on_the_ledger_gets_its_email_without_a_pdf_and_a_404_link(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    from donor.tests.factories import DonationFactory

    donation = DonationFactory(status=Donation.Status.COMPLETED)  # no credit: nothing to receipt
    notices_record(donation_id=donation.pk)
    mail.outbox.clear()

    assert notices_send(donation_id=donation.pk)["sent"] == 1
    assert mail.outbox[0].attachments == [] and not Receipt.objects.exists()
    from receipts.services import receipt_signed_url

    link = receipt_signed_url(donation=donation)
    assert Client().get(link.removeprefix("https://donate.example.org")).status_code == 404


def test_the_deploy_check_warns_about_the_demo_organisation(settings):
    from receipts.checks import organisation_check

    assert organisation_check(None) == []
    settings.ORGANISATION_REGISTRATION_NUMBER = "NGO/00000/DEMO"
    assert [w.id for w in organisation_check(None)] == ["receipts.W001"]


@pytest.mark.parametrize(
    ("backend", "warned"),
    [("django.core.mail.backends.console.EmailBackend", True), ("django.core.mail.backends.smtp.EmailBackend", False)],
)
def test_the_deploy_check_warns_while_receipts_would_not_leave_the_machine(settings, backend, warned):
    from receipts.checks import email_check

    settings.EMAIL_BACKEND = backend
    assert [w.id for w in email_check(None)] == (["receipts.W002"] if warned else [])


def test_email_url_sets_the_mail_server_its_login_and_tls():
    import subprocess
    import sys

    names = "EMAIL_BACKEND EMAIL_HOST EMAIL_PORT EMAIL_HOST_USER EMAIL_HOST_PASSWORD EMAIL_USE_TLS EMAIL_TIMEOUT"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"print(*(getattr(settings, n) for n in {names.split()!r}))"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "PATH": "/usr/bin:/bin",
        "EMAIL_URL": "smtp+tls://receipts%40example.org:p%40ss@smtp.example.org:587",
        "EMAIL_TIMEOUT": "7",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    assert out.split() == [
        "django.core.mail.backends.smtp.EmailBackend", "smtp.example.org", "587", "receipts@example.org", "p@ss",
        "True", "7",
    ]  # fmt: skip


def test_a_donor_created_in_a_swahili_request_gets_swahili_receipts():
    from django.utils import translation

    from donor.services import donor_for_guest

    with translation.override("sw"):
        swahili = donor_for_guest(name="Baraka")
    with translation.override("fr"):  # a language the site does not have
        other = donor_for_guest(name="Claire")
    assert (swahili.language, other.language, donor_for_guest(name="Juma").language) == ("sw", "en", "en")


def test_staff_see_receipts_in_the_admin_and_cannot_edit_them(client, django_user_model):
    from config.tests.helpers import login_with_second_factor

    login_with_second_factor(client, django_user_model.objects.create_superuser("ops", "ops@example.org", "pw-12345"))
    admin_client = client
    receipt = receipt_issue(donation_id=completed_donation().pk)
    page = admin_client.get("/admin/receipts/receipt/")
    assert page.status_code == 200 and receipt.number in page.content.decode()
    assert admin_client.get(f"/admin/receipts/receipt/{receipt.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/receipts/receipt/{receipt.pk}/delete/").status_code == 403


def test_the_refund_notice_carries_the_reissued_receipt_and_a_resent_email_is_never_a_copy(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    donation = completed_donation(amount=Decimal("5000"))
    notices_record(donation_id=donation.pk)
    notices_send(donation_id=donation.pk)
    with transaction.atomic():
        donation_refund(donation_id=donation.pk, amount=Decimal("1500"))
        notices_record(donation_id=donation.pk, refund=True)
    mail.outbox.clear()

    assert notices_send(donation_id=donation.pk)["sent"] == 1

    ((name, content, _),) = mail.outbox[0].attachments
    number = Receipt.objects.get(donation=donation, version=1).number
    assert name == f"{number}-v2.pdf"
    text = pdf_text(content)
    assert "Version 2" in text and "TSh 3,500" in text and "DUPLICATE" not in text
    from receipts.services import receipt_attachments

    notice = donation.notices.get(kind="refund")
    ((_, again, _),) = receipt_attachments(notice=notice)  # the relay's retry after a failed send
    assert "DUPLICATE" not in pdf_text(again)
