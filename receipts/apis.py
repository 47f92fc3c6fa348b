"""The donor's receipts and statements over the API and by signed link.

`GET /api/v1.0/donors/statements/<year>.pdf` (JWT) is the portal's /my/statements/<year>.pdf for an app;
`GET /receipts/<signed>.pdf` is the link the donation's status body gives as `receipt_pdf_url`: whoever holds it
downloads the receipt, no login. Views stay thin; receipts/services.py and statements.py hold the rules.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.schema import NO_TOKEN
from config.schema import error_response as documented_error
from donor.services import donor_for_user
from receipts.services import ReceiptRefused, receipt_donation_for_link, receipt_filename, receipt_pdf_for
from receipts.statements import statement_pdf

FIRST_YEAR = 2000


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"  # a donor's name and gift: never in a shared cache
    return response


def statement_year_ok(year: int) -> bool:
    return FIRST_YEAR <= year <= timezone.localdate().year


class JsonErrorsPdfBody(BaseContentNegotiation):
    """The body is a PDF (an HttpResponse) or a JSON error, whatever `Accept` says: never a 406 for asking PDF."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class StatementApi(APIView):
    """The signed-in donor's yearly statement: every gift and refund of that (local) year, with the total the
    ledger moved (received minus refunded)."""

    permission_classes = [IsAuthenticated]
    content_negotiation_class = JsonErrorsPdfBody

    @extend_schema(
        parameters=[OpenApiParameter("year", int, OpenApiParameter.PATH, description="A year from 2000 to this one")],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The statement (PDF)"),
            **{status: documented_error(text) for status, text in NO_TOKEN.items()},
            404: documented_error("`NOT_FOUND`: no statement for that year (from 2000 to this year)."),
        },
    )
    def get(self, request, year: int) -> HttpResponse:
        if not statement_year_ok(year):
            return Response(error_body(404, f"No statement for {year}: choose a year from {FIRST_YEAR}."), status=404)
        donor = donor_for_user(user=request.user)
        return pdf_response(statement_pdf(donor=donor, year=year), f"statement-{year}.pdf")


@require_GET
def receipt_signed_pdf(request: HttpRequest, signed: str) -> HttpResponse:
    """The receipt by its signed link (no login): the original the first time it is handed out, a copy after."""
    donation = receipt_donation_for_link(signed=signed)
    if donation is None:
        raise Http404("No such receipt")
    return receipt_download(donation_id=donation.pk)


def receipt_download(*, donation_id: int) -> HttpResponse:
    """The receipt's PDF answer (the portal's too); a donation with nothing on the ledger to receipt is a 404."""
    try:
        receipt, pdf = receipt_pdf_for(donation_id=donation_id)
    except ReceiptRefused:
        raise Http404("No receipt for this donation") from None
    return pdf_response(pdf, receipt_filename(receipt))
