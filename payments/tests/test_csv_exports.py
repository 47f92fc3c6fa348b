"""No CSV export carries a cell a spreadsheet would run (config/csv_safety.py): the settlement file
(`payments_report --format csv` and the admin's download are the same file) and the admin's donations export."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from config.csv_safety import safe_cell
from config.tests.helpers import login_with_second_factor
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.models import Payment
from payments.tests.factories import PaymentFactory

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_text_cell_that_a_spreadsheet_would_run_is_written_as_text(value):
    assert safe_cell(value) == f"'{value}"


@pytest.mark.parametrize("value", ["-5000.00", "+12", "5000", "RHCI-DN-1-2026", "a=b", "", Decimal("-5000.00"), 7])
def test_numbers_and_ordinary_text_are_left_alone(value):
    assert safe_cell(value) == value


@pytest.mark.django_db
def test_the_settlement_file_neutralises_provider_fields(settings):
    """Provider references and receipts come from the provider's answers and callbacks: not ours to trust."""
    now = timezone.now()
    for n, value in enumerate(FORMULAS):
        PaymentFactory(
            status=Payment.Status.SUCCEEDED, completed_at=now, provider_reference=f"{value}-{n}", receipt=value
        )
    out = io.StringIO()
    call_command("payments_report", "--format", "csv", "--date", timezone.localdate().isoformat(), stdout=out)

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for column in ("provider_reference", "receipt"):
            assert row[column].startswith("'"), (column, row[column])
        assert Decimal(row["amount"]) > 0  # the amount is still a number


@pytest.mark.django_db
def test_the_admins_donation_export_neutralises_every_cell(client):
    patient = PatientFactory(code="@PAT-1", currency="TZS", funding_goal=Decimal("1000000"))
    donation = DonationFactory(patient=patient)
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    login_with_second_factor(client, admin)

    response = client.post("/admin/donor/donation/", {"action": "export_csv", "_selected_action": [donation.pk]})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    (row,) = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["patient"] == "'@PAT-1"
    assert row["reference"] == donation.reference
