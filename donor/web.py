"""The smallest server-rendered pages: the patient list and a live donation status page."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from donor.selectors import donation_get
from patients.selectors import patient_list_published


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"patients": patient_list_published()})


def donation_status_page(request: HttpRequest, reference: str) -> HttpResponse:
    donation = donation_get(reference=reference)
    if donation is None:
        raise Http404("No such donation")
    return render(request, "donation_status.html", {"donation": donation})
