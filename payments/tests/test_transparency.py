"""Where the money went: the patient page and the patient API show what was received, refunded, paid to the
treatment partner (with the payout's receipt) and still needed, and every figure equals what verify_ledger
proves, in a book with payouts, a full refund and a partial one. No donor's name or phone is in either."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from donor.models import Allocation, Donation
from donor.services import donor_for_guest
from patients.models import Patient
from patients.tests.factories import PatientFactory
from payments.models import Payout
from payments.services.ledger_check import book_check
from payments.services.refunds import refund_approve, refund_request
from payments.tests.factories import completed_donation, staff_user
from payments.transparency import patient_money_trail

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings")]


def paid(patient, amount, name) -> Donation:
    donor = donor_for_guest(name=name, email=f"{name.lower()}@example.org", phone="255712345678")
    return completed_donation(patient, donor, amount)


@pytest.fixture
def book():
    """Four gifts, one refunded in full and one in part (AzamPay: paid back by hand, approved with the transfer's
    receipt), two payouts paid to the partner and one still waiting for its approval."""
    patient = PatientFactory(code="PAT-0900", currency="TZS", funding_goal=Decimal("100000"))
    maker = staff_user("maker", "payments.add_refund", "payments.add_payout")
    checker = staff_user("checker", "payments.approve_refund")
    gifts = [paid(patient, amount, name) for amount, name in
             [("20000", "Baraka"), ("15000", "Neema"), ("10000", "Juma"), ("5000", "Rehema")]]  # fmt: skip
    for donation, amount in ((gifts[1], "15000"), (gifts[2], "4000")):
        refund = refund_request(donation=donation, amount=Decimal(amount), reason="asked", requested_by=maker)
        refund_approve(refund_id=refund.pk, approved_by=checker, receipt=f"AZ-BACK-{donation.pk}")
    now = timezone.now()
    for n, (amount, status) in enumerate([("12000", "paid"), ("3000", "paid"), ("1000", "requested")]):
        Payout.objects.create(reference=f"RHCI-PO-{n}", patient=patient, treatment_partner=patient.treatment_partner,
                              provider="mpesa", msisdn="254708374149", amount=Decimal(amount), currency="TZS",
                              requested_by=maker, status=status, receipt=f"TPO{n}" if status == "paid" else "",
                              completed_at=now - timedelta(days=3 - n) if status == "paid" else None)  # fmt: skip
    return Patient.objects.get(pk=patient.pk)


def test_the_money_trail_equals_the_ledger_verify_ledger_proves(book):
    assert book_check().ok  # the book is right, so its figures are the ones to show
    trail = patient_money_trail(patient=book)
    ledger = Allocation.objects.filter(patient=book)
    assert trail.received == ledger.filter(entry="credit").aggregate(t=Sum("amount"))["t"] == Decimal("50000")
    assert trail.received_count == 4
    assert trail.refunded == -ledger.filter(entry="reversal").aggregate(t=Sum("amount"))["t"] == Decimal("19000")
    assert trail.refunded_count == 2
    assert trail.net_received == ledger.aggregate(t=Sum("amount"))["t"] == book.funding_received == Decimal("31000")
    paid_out = Payout.objects.filter(patient=book, status="paid").aggregate(t=Sum("amount"))["t"]
    assert trail.paid_out == paid_out == Decimal("15000")
    assert [(p.amount, p.receipt) for p in trail.payouts] == [(Decimal("12000"), "TPO0"), (Decimal("3000"), "TPO1")]
    assert trail.held == Decimal("16000")
    assert trail.still_needed == book.amount_needed == Decimal("69000")


def test_the_patient_api_shows_the_same_figures_and_no_donor(book):
    answer = Client().get(f"/api/v1.0/patients/{book.code}/")
    assert answer.status_code == 200
    money = answer.json()["money"]
    trail = patient_money_trail(patient=book)
    assert Decimal(money["received"]) == trail.received and money["received_count"] == 4
    assert Decimal(money["refunded"]) == trail.refunded and money["refunded_count"] == 2
    assert Decimal(money["paid_out"]) == trail.paid_out
    assert [(Decimal(p["amount"]), p["receipt"]) for p in money["payouts"]] == [
        (Decimal("12000"), "TPO0"), (Decimal("3000"), "TPO1")]  # fmt: skip
    assert Decimal(money["still_needed"]) == Decimal("69000")
    assert answer.json()["share"]["url"].endswith(f"/p/{book.code}")
    body = answer.content.decode()
    assert not any(secret in body for secret in ("Baraka", "Neema", "Juma", "Rehema", "255712345678", "example.org"))


def test_the_patient_page_shows_where_the_money_went(book):
    html = Client().get(f"/patients/{book.code}/").content.decode()
    section = html[html.index('id="money"') :]
    section = section[: section.index("</section>")]
    for shown in ("TSh 50,000", "TSh 19,000", "TSh 15,000", "TSh 16,000", "TSh 69,000", "TPO0", "TPO1"):
        assert shown in section
    assert not any(secret in section for secret in ("Baraka", "Neema", "255712345678"))


def test_an_unknown_patient_is_a_json_404():
    answer = Client().get("/api/v1.0/patients/NOPE/")
    assert answer.status_code == 404 and answer["Content-Type"].startswith("application/json")
