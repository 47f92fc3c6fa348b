"""The month close in the admin: upload a statement, read the close report, work each exception to an end.

Views are thin: the rules are in finance.services (imports, close, exceptions)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from finance.models import BalanceQuery, BalanceReading, Discrepancy, Statement, StatementLine
from finance.parsers import PARSERS, StatementInvalid
from finance.services import exceptions as working
from finance.services.close import close_month, month_bounds, report_csv, summary
from finance.services.imports import StatementRefused, statement_import
from payments.models import Payment
from payments.services.audit import audit_record

MAX_UPLOAD = 20 * 1024 * 1024  # a quarter's export of a busy paybill is a few MB


def _providers() -> list[tuple[str, str]]:
    return [(code, code) for code in sorted(PARSERS)]


class UploadForm(forms.Form):
    provider = forms.ChoiceField(choices=_providers)
    file = forms.FileField(help_text="The provider's export (CSV); see docs/providers/<provider>.md")
    opening_balance = forms.DecimalField(
        max_digits=12, decimal_places=2, required=False, help_text="When the file does not give it"
    )
    closing_balance = forms.DecimalField(max_digits=12, decimal_places=2, required=False)

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError(f"At most {MAX_UPLOAD // (1024 * 1024)} MB per file; split the period.")
        return upload


class CloseForm(forms.Form):
    provider = forms.ChoiceField(choices=_providers)
    month = forms.CharField(help_text="YYYY-MM", max_length=7)

    def clean_month(self) -> str:
        month = self.cleaned_data["month"]
        try:
            month_bounds(month)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return month


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LineInline(admin.TabularInline):
    model = StatementLine
    fields = ["line_number", "occurred_at", "kind", "provider_reference", "amount", "fee", "currency", "counterparty"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(Statement)
class StatementAdmin(ReadOnly):
    list_display = [
        "id",
        "provider",
        "filename",
        "period_start",
        "period_end",
        "currency",
        "opening_balance",
        "closing_balance",
        "line_count",
        "new_lines",
        "duplicate_lines",
        "imported_by",
        "imported_at",
    ]
    list_filter = ["provider", "source"]
    readonly_fields = [f.name for f in Statement._meta.fields]
    inlines = [LineInline]
    change_list_template = "admin/finance/statement_changelist.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("finance.add_statement")

    def get_urls(self) -> list:
        own = [
            path("month-close/", self.admin_site.admin_view(self.month_close_view), name="finance_month_close"),
        ]
        return own + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The upload: the file is parsed and imported whole or not at all; its problems are the form's errors."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = statement_import(
                    provider=form.cleaned_data["provider"],
                    raw=upload.read(),
                    filename=upload.name,
                    source="upload",
                    actor=request.user,
                    opening_balance=form.cleaned_data.get("opening_balance"),
                    closing_balance=form.cleaned_data.get("closing_balance"),
                )
            except StatementInvalid as bad:
                for number, text in bad.problems[:50]:
                    form.add_error("file", f"line {number}: {text}" if number else text)
                if len(bad.problems) > 50:
                    form.add_error("file", f"… and {len(bad.problems) - 50} more problems")
            except StatementRefused as refused:
                form.add_error("file", str(refused))
            else:
                if result.created:
                    messages.success(
                        request,
                        f"Imported: {result.new_lines} new line(s), "
                        f"{result.duplicate_lines} already known, {result.skipped} skipped.",
                    )
                else:
                    messages.info(
                        request, f"This file was imported before (statement {result.statement.pk}): nothing changed."
                    )
                return HttpResponseRedirect(reverse("admin:finance_statement_change", args=[result.statement.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a provider statement",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/finance/statement_upload.html", context)

    def month_close_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("finance.view_discrepancy"):
            raise PermissionDenied
        default_month = f"{timezone.localdate():%Y-%m}"
        form = CloseForm(request.GET or None, initial={"month": default_month})
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Month close",
            "opts": self.model._meta,
            "form": form,
            "report": None,
        }
        if form.is_valid():
            provider, month = form.cleaned_data["provider"], form.cleaned_data["month"]
            report = close_month(provider, month)
            if request.GET.get("format") == "csv":
                audit_record(actor=request.user, action="finance.close.download", target=f"close {provider} {month}")
                response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
                response["Content-Disposition"] = f'attachment; filename="month-close-{provider}-{month}.csv"'
                return response
            query = request.GET.copy()
            query["format"] = "csv"
            context.update(
                report=report,
                summary=summary(report),
                download_query=query.urlencode(),
                exceptions_url=reverse("admin:finance_discrepancy_changelist") + f"?provider={provider}&month={month}",
            )
        return TemplateResponse(request, "admin/finance/month_close.html", context)


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnly):
    list_display = [
        "occurred_at",
        "provider",
        "kind",
        "provider_reference",
        "amount",
        "fee",
        "currency",
        "counterparty",
        "statement",
    ]
    list_filter = ["provider", "kind", "currency"]
    search_fields = ["provider_reference", "counterparty", "account"]
    readonly_fields = [f.name for f in StatementLine._meta.fields]


@admin.register(BalanceQuery)
class BalanceQueryAdmin(ReadOnly):
    list_display = ["provider", "account", "status", "requested_at", "answered_at", "result_code", "conversation_id"]
    list_filter = ["provider", "status"]
    readonly_fields = [f.name for f in BalanceQuery._meta.fields]


@admin.register(BalanceReading)
class BalanceReadingAdmin(ReadOnly):
    list_display = ["as_of", "provider", "account", "available", "currency", "answered_at"]
    list_filter = ["provider", "account", "currency"]
    readonly_fields = [f.name for f in BalanceReading._meta.fields]


class ActionForm(forms.Form):
    ACTIONS = [
        ("attach", "Attach to a payment"),
        ("hold", "Hold (being looked into)"),
        ("request_write_off", "Ask to write it off"),
        ("approve_write_off", "Approve the write-off"),
        ("reject_write_off", "Refuse the write-off"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    payment_reference = forms.CharField(required=False, max_length=64, help_text="Our payment reference (for Attach)")
    reason = forms.CharField(required=False, max_length=255, widget=forms.Textarea(attrs={"rows": 2}))


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnly):
    list_display = [
        "id",
        "provider",
        "month",
        "kind",
        "status",
        "short_detail",
        "found_at",
        "requested_by",
        "approved_by",
    ]
    list_filter = ["provider", "month", "kind", "status"]
    search_fields = ["detail", "key", "line__provider_reference", "payment__reference"]
    readonly_fields = [
        "key",
        "provider",
        "month",
        "kind",
        "status",
        "detail",
        "statement_side",
        "ledger_side",
        "expected",
        "actual",
        "reason",
        "requested_by",
        "approved_by",
        "found_at",
        "resolved_at",
    ]
    fields = readonly_fields
    change_form_template = "admin/finance/discrepancy/change_form.html"

    @admin.display(description="detail")
    def short_detail(self, obj: Discrepancy) -> str:
        return obj.detail[:100]

    @admin.display(description="the statement says")
    def statement_side(self, obj: Discrepancy) -> str:
        if obj.line is not None:
            line = obj.line
            url = reverse("admin:finance_statementline_change", args=[line.pk])
            return format_html(
                '<a href="{}">{} {} {} {}</a> at {} (statement {}, line {}; counterparty {})',
                url,
                line.kind,
                line.amount,
                line.currency,
                line.provider_reference,
                timezone.localtime(line.occurred_at),
                line.statement_id,
                line.line_number,
                line.counterparty or "—",
            )
        if obj.statement is not None:
            url = reverse("admin:finance_statement_change", args=[obj.statement_id])
            return format_html('<a href="{}">statement {}</a>', url, obj.statement_id)
        return "nothing"

    @admin.display(description="the ledger says")
    def ledger_side(self, obj: Discrepancy) -> str:
        for name, item in (("payment", obj.payment), ("payout", obj.payout), ("refund", obj.refund)):
            if item is not None:
                url = reverse(f"admin:payments_{name}_change", args=[item.pk])
                return format_html(
                    '<a href="{}">{} {}</a>: {} {} {} (timeline on its page)',
                    url,
                    name,
                    item.reference,
                    item.amount,
                    item.currency,
                    item.status,
                )
        return "nothing" if obj.kind != Discrepancy.Kind.BALANCE else "—"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None):
        obj = get_object_or_404(Discrepancy, pk=object_id)
        may_work = request.user.has_perm("finance.work_discrepancy")
        may_approve = request.user.has_perm("finance.approve_writeoff")
        form = ActionForm(request.POST or None)
        if request.method == "POST" and "action" in request.POST:
            if form.is_valid() and self._act(request, obj, form, may_work=may_work, may_approve=may_approve):
                return HttpResponseRedirect(request.path)
        context = {**(extra_context or {}), "action_form": form if (may_work or may_approve) else None}
        request.method = "GET"  # the read-only page itself never saves the object
        return super().change_view(request, object_id, form_url, context)

    def _act(
        self, request: HttpRequest, obj: Discrepancy, form: ActionForm, *, may_work: bool, may_approve: bool
    ) -> bool:
        action, reason = form.cleaned_data["action"], form.cleaned_data["reason"]
        needs = may_approve if action in ("approve_write_off", "reject_write_off") else may_work
        if not needs:
            form.add_error("action", "You may not do this here.")
            return False
        try:
            if action == "attach":
                reference = form.cleaned_data["payment_reference"].strip()
                payment = Payment.objects.filter(reference=reference).first()
                if payment is None:
                    form.add_error("payment_reference", f"No payment {reference!r}.")
                    return False
                working.exception_attach(obj.pk, payment=payment, actor=request.user, reason=reason)
            elif action == "hold":
                working.exception_hold(obj.pk, actor=request.user, reason=reason)
            elif action == "request_write_off":
                working.exception_request_write_off(obj.pk, actor=request.user, reason=reason)
            elif action == "approve_write_off":
                working.exception_approve_write_off(obj.pk, actor=request.user)
            else:
                working.exception_reject_write_off(obj.pk, actor=request.user, reason=reason)
        except working.ExceptionRefused as refused:
            form.add_error(None, str(refused))
            return False
        messages.success(request, f"Done: {dict(ActionForm.ACTIONS)[action].lower()}.")
        return True
