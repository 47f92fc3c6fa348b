"""An admin action that asks for a receipt first (recording money moved outside the system needs one)."""

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class ReceiptForm(forms.Form):
    receipt = forms.CharField(
        max_length=100, help_text="The transaction id on the provider's portal or the bank/mobile transfer receipt."
    )


def with_receipt(
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    explanation: str,
    submit_label: str,
    step: Callable[[Model, str], str],
) -> HttpResponse | None:
    """First call: a page asking for the receipt. Second (with `apply`): run `step(obj, receipt)` on each and
    report its message; a `step` refuses by raising ValueError-like errors it turns into messages itself."""
    form = ReceiptForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        for obj in queryset:
            messages.info(request, step(obj, form.cleaned_data["receipt"].strip()))
        return None
    context = {
        "title": title,
        "explanation": explanation,
        "submit_label": submit_label,
        "queryset": queryset,
        "action": action,
        "form": form,
        "opts": queryset.model._meta,
    }
    return TemplateResponse(request, "admin/payments/receipt_action.html", context)
