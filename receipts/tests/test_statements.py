"""The yearly statement: its total is the ledger's completed minus refunded for that donor and year, in the portal
and over the API (JWT); a refund in the next year lands in the next year's statement."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from donor.models import Allocation
from donor.services import donation_refund, donor_for_user
from receipts.services import receipt_issue
from receipts.tests.helpers import completed_donation, pdf_text

pytestmark = pytest.mark.django_db


def ledger_total(donor, year: int) -> Decimal:
    """The ledger's own figure: every credit and reversal of the donor's donations dated in the (local) year."""
    rows = Allocation.objects.filter(donation__donor=donor)
    rows = [row for row in rows if timezone.localtime(row.created_at).year == year]
    return sum((row.amount for row in rows), Decimal("0"))


def statement_total(pdf: bytes) -> Decimal:
    (figure,) = re.findall(r"Total \(TZS\)\s*TSh ([\d,]+)", pdf_text(pdf))
    return Decimal(figure.replace(",", ""))


@pytest.fixture
def history(donor_user):
    """This year: three gifts to one donor (one refunded in part, one in full); last year: one gift; another
    donor's gift this year."""
    donor = donor_for_user(user=donor_user)
    gifts = [completed_donation(donor=donor, amount=Decimal(a)) for a in ("5000", "12000", "7500")]
    for gift in gifts:
        receipt_issue(donation_id=gift.pk)
    donation_refund(donation_id=gifts[1].pk, amount=Decimal("2000"))
    donation_refund(donation_id=gifts[2].pk, amount=Decimal("7500"))
    last_year = completed_donation(donor=donor, amount=Decimal("40000"))
    a_year_ago = timezone.now() - timedelta(days=366)
    Allocation.objects.filter(donation=last_year).update(created_at=a_year_ago)
    completed_donation(amount=Decimal("99000"))  # someone else's
    return donor


def test_the_statements_total_equals_the_ledgers(history, client, donor_user):
    year = timezone.localdate().year
    client.force_login(donor_user)

    response = client.get(f"/my/statements/{year}.pdf")

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert statement_total(response.content) == ledger_total(history, year) == Decimal("15000")
    text = pdf_text(response.content)
    assert "TSh 12,000" in text and "TSh 2,000" in text and "TSh 7,500" in text and "99,000" not in text
    assert "RCT-" in text and "No goods or services were provided in return for these donations." in text


def test_last_years_statement_holds_last_years_gift_only(history, client, donor_user):
    year = timezone.localdate().year - 1
    client.force_login(donor_user)
    response = client.get(f"/my/statements/{year}.pdf")
    assert statement_total(response.content) == ledger_total(history, year) == Decimal("40000")


def test_the_api_twin_needs_the_donors_token_and_gives_the_same_total(history, auth_client, api_client):
    year = timezone.localdate().year
    url = f"/api/v1.0/donors/statements/{year}.pdf"

    response = auth_client.get(url, HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert (
        statement_total(response.content)
        == Allocation.objects.filter(donation__donor=history, created_at__year=year).aggregate(total=Sum("amount"))[
            "total"
        ]
    )
    anonymous = api_client.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "AUTH_REQUIRED"
    too_early = auth_client.get("/api/v1.0/donors/statements/1999.pdf", HTTP_ACCEPT="application/pdf")
    assert too_early.status_code == 404 and too_early.json()["code"] == "NOT_FOUND"
    assert auth_client.get(f"/api/v1.0/donors/statements/{year + 1}.pdf").status_code == 404


def test_a_swahili_statement(history, client, donor_user):
    history.language = "sw"
    history.save(update_fields=["language"])
    client.force_login(donor_user)
    text = pdf_text(client.get(f"/my/statements/{timezone.localdate().year}.pdf").content)
    assert "Taarifa ya michango ya mwaka" in text and "Jumla (TZS)" in text and "Mfadhili" in text


def test_the_portal_statement_needs_a_login(client):
    response = client.get(f"/my/statements/{timezone.localdate().year}.pdf")
    assert response.status_code == 302 and "/login/" in response["Location"]
