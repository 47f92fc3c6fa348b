"""The settlement file in the admin: every payment and refund that ended in a range of local days, per provider,
as the CSV `payments_report --format csv` writes — what finance matches line by line against the provider's
statement — with the totals shown before the download."""

from datetime import date, datetime, time, timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from payments.providers.registry import PROVIDER_CLASSES
from payments.selectors import settlement_csv, settlement_rows, settlement_totals
from payments.services.audit import audit_record

MAX_DAYS = 92  # a quarter: the longest statement period a provider portal exports


class SettlementForm(forms.Form):
    start = forms.DateField(label="From (local day)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (local day, inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    provider = forms.ChoiceField(required=False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["provider"].choices = [("", "All providers")] + [
            (code, code) for code in PROVIDER_CLASSES
        ]  # history of a rail since turned off too

    def clean(self) -> dict:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("“To” is before “From”.")
            if (end - start).days + 1 > MAX_DAYS:
                raise forms.ValidationError(f"At most {MAX_DAYS} days per file; split the period.")
        return data


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        timezone.make_aware(datetime.combine(start, time.min)),
        timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min)),
    )


def settlement_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("payments.view_payment"):
        raise PermissionDenied
    today = timezone.localdate()
    form = SettlementForm(request.GET or {"start": today, "end": today, "provider": ""})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Settlement file",
        "opts": model_admin.model._meta,
        "form": form,
        "totals": None,
    }
    if form.is_valid():
        start, end = _bounds(form.cleaned_data["start"], form.cleaned_data["end"])
        provider = form.cleaned_data["provider"] or None
        rows = settlement_rows(start=start, end=end, provider=provider)
        if request.GET.get("download"):
            audit_record(
                actor=request.user,
                action="settlement.download",
                target=f"settlement {form.cleaned_data['start']}..{form.cleaned_data['end']}",
                detail=f"provider={provider or 'all'} rows={len(rows)}",
            )
            name = f"settlement-{provider or 'all'}-{form.cleaned_data['start']}-{form.cleaned_data['end']}.csv"
            response = HttpResponse(settlement_csv(rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        context["rows"] = len(rows)
        context["totals"] = sorted(settlement_totals(rows).items())
        query = request.GET.copy()
        query["download"] = "1"
        context["download_query"] = query.urlencode()
    return TemplateResponse(request, "admin/payments/payment/settlement.html", context)
