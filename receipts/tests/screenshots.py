"""Regenerates docs/screenshots/13-receipt-partial-refund.png and 14-receipt-sw.png from real receipt PDFs.

Not collected by the suite (no test_ prefix): `make screenshots` runs it. It renders two receipts through the
same path a donor's download takes, then rasterises the PDFs with Debian's pdftoppm (poppler-utils).
"""

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from donor.services import donation_refund
from donor.tests.factories import DonorFactory
from patients.tests.factories import PatientFactory
from receipts.services import receipt_pdf_for
from receipts.tests.helpers import completed_donation

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def rasterise(pdf: bytes, name: str, tmp_path: Path) -> None:
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "72", "-singlefile", str(source), str(OUT / name)], check=True)


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs pdftoppm: apt-get install poppler-utils")
@pytest.mark.django_db
def test_receipt_screenshots(settings, tmp_path):
    settings.ORGANISATION_NAME = "Tumaini Medical Fund"
    settings.ORGANISATION_REGISTRATION_NUMBER = "OONGO/R/1234"
    patient = PatientFactory(name="Amina Juma", code="PAT-TZ-0001")
    gift = completed_donation(donor=DonorFactory(name="Amani Mollel"), patient=patient, receipt="SGH7K2L9QW")
    receipt_pdf_for(donation_id=gift.pk)  # the original, emailed
    donation_refund(donation_id=gift.pk, amount=Decimal("2000"))
    rasterise(receipt_pdf_for(donation_id=gift.pk)[1], "13-receipt-partial-refund", tmp_path)
    swahili = DonorFactory(name="Neema Mwakyusa", language="sw")
    rasterise(receipt_pdf_for(donation_id=completed_donation(donor=swahili, patient=patient).pk)[1],
              "14-receipt-sw", tmp_path)  # fmt: skip
