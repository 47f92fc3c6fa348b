"""Completed donations as the credit path leaves them (a succeeded payment, the ledger's credit), and PDF text."""

import io
from decimal import Decimal

from pypdf import PdfReader

from donor.models import Donation
from donor.services import donation_complete
from donor.tests.factories import DonationFactory
from payments.models import Payment
from payments.tests.factories import PaymentFactory


def paid_donation(*, receipt: str = "SGH7K2L9QW", **fields) -> Donation:
    """A pending donation with a succeeded M-Pesa payment, not yet credited."""
    donation = DonationFactory(**fields)
    PaymentFactory(donation=donation, status=Payment.Status.SUCCEEDED, receipt=receipt)
    return donation


def completed_donation(*, receipt: str = "SGH7K2L9QW", amount: Decimal = Decimal("5000"), **fields) -> Donation:
    donation = paid_donation(receipt=receipt, amount=amount, **fields)
    donation_complete(donation_id=donation.pk)
    donation.refresh_from_db()
    return donation


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def pdf_fonts(pdf: bytes) -> list[dict]:
    """Each font of each page: its name and whether its program is embedded in the file."""
    fonts = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = descendant["/FontDescriptor"].get_object()
            embedded = any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            fonts.append({"name": str(font["/BaseFont"]), "embedded": embedded})
    return fonts
