"""The pledge's pages by signed link (no login). Thin: pledges.services holds the rules. Portal pages (they extend
the site's base.html: header, language switch), in English and Swahili like the rest."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from donor.money import money_for_people
from pledges.models import Pledge
from pledges.run import pledge_pay_now
from pledges.services import (
    ACTIONS,
    PledgeActionRefused,
    cycle_for_pay_token,
    pledge_act,
    pledge_for_token,
)


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "pledges/not_found.html", status=404)


@require_http_methods(["GET", "POST"])
def pledge_manage(request: HttpRequest, token: str) -> HttpResponse:
    pledge = pledge_for_token(token)
    if pledge is None:
        return _not_found(request)
    said, problem, status = "", "", 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            problem, status = _("Choose one of the actions below."), 400
        else:
            try:
                said = pledge_act(pledge, action, amount=request.POST.get("amount", ""))
            except PledgeActionRefused as refused:
                problem, status = str(refused), 400
        pledge.refresh_from_db()
    context = {
        "pledge": pledge,
        "money": money_for_people(pledge.amount, pledge.currency),
        "target": pledge.patient.first_name if pledge.patient else _("the general fund"),  # as the portal names them
        "said": said,
        "problem": problem,
        "active": pledge.status == Pledge.Status.ACTIVE,
        "paused": pledge.status == Pledge.Status.PAUSED,
        "ended": pledge.status in (Pledge.Status.CANCELLED, Pledge.Status.LAPSED),
    }
    return render(request, "pledges/manage.html", context, status=status)


@require_http_methods(["GET", "POST"])
def pledge_pay(request: HttpRequest, token: str) -> HttpResponse:
    cycle = cycle_for_pay_token(token)
    if cycle is None:
        return _not_found(request)
    started = None
    if request.method == "POST":
        started = pledge_pay_now(cycle)
    context = {
        "cycle": cycle,
        "money": money_for_people(cycle.pledge.amount, cycle.pledge.currency),
        "started": started,
    }
    return render(request, "pledges/pay.html", context)
