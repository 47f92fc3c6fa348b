"""The signed-in donor's PDFs in the portal: a donation's receipt and a year's statement (/my/...).

Only the owner's: another donor's donation is a 404, as if it did not exist. The documents themselves come from
the receipts app; the API twin of the statement is receipts/apis.py.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from donor.models import Donation
from donor.services import donor_for_user
from receipts.apis import pdf_response, receipt_download, statement_year_ok
from receipts.services import RECEIPTED
from receipts.statements import statement_pdf


@require_GET
@login_required(login_url="login")
def my_receipt(request: HttpRequest, reference: str) -> HttpResponse:
    donor = donor_for_user(user=request.user)
    donation = Donation.objects.filter(public_token=reference, donor=donor, status__in=RECEIPTED).first()
    if donation is None:
        raise Http404("No receipt for this donation")
    return receipt_download(donation_id=donation.pk)


@require_GET
@login_required(login_url="login")
def my_statement(request: HttpRequest, year: int) -> HttpResponse:
    if not statement_year_ok(year):
        raise Http404("No statement for that year")
    donor = donor_for_user(user=request.user)
    return pdf_response(statement_pdf(donor=donor, year=year), f"statement-{year}.pdf")
