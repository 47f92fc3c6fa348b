"""Receipt numbers against a real MariaDB/MySQL server: twenty donations completing at once, each thread crediting
its donation and then issuing its receipt (as the relay does), get twenty distinct, consecutive numbers.

Skipped on SQLite (conftest). Each thread has its own database connection.
"""

from decimal import Decimal

import pytest
from django.db import transaction

from donor.services import donation_complete
from patients.tests.factories import PatientFactory
from payments.tests.helpers import run_together
from receipts.models import Receipt, ReceiptYear
from receipts.services import receipt_issue
from receipts.tests.helpers import paid_donation

pytestmark = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]


def test_twenty_donations_completing_at_once_get_twenty_consecutive_receipt_numbers():
    patient = PatientFactory(funding_goal=Decimal("10000000"))
    donations = [paid_donation(patient=patient) for _ in range(20)]

    def complete_and_issue(donation_id: int):
        def run() -> str:
            with transaction.atomic():
                donation_complete(donation_id=donation_id)
            return receipt_issue(donation_id=donation_id).number

        return run

    numbers = run_together([complete_and_issue(d.pk) for d in donations])

    year = Receipt.objects.get(donation=donations[0]).year
    assert sorted(numbers) == [f"RCT-{year}-{n:06d}" for n in range(1, 21)]
    assert Receipt.objects.count() == 20 and ReceiptYear.objects.get(year=year).last_sequence == 20
    # Issuing again (the relay's retry, a download) takes no new number.
    assert run_together([complete_and_issue(d.pk) for d in donations[:5]]) == numbers[:5]
    assert ReceiptYear.objects.get(year=year).last_sequence == 20
