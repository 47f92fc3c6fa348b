"""The admin site: its first page is the operator's dashboard, not the app list.

The dashboard is the payments app's (payments.admin.dashboard): it plugs itself in with `use_dashboard` when the
admin modules are discovered, so config imports nothing of the apps above it. Without one the index is Django's.

Installed through `config.apps.AdminConfig` (default_site), so every `admin.register` lands here.

Staff who can approve payouts or refunds must have signed in with a second factor (config.second_factor,
docs/security.md): for them `has_permission` also requires a session verified by a TOTP device.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.second_factor import CharityAdminAuthenticationForm, admin_notice, is_verified, needs_second_factor


class CharityAdminSite(admin.AdminSite):
    site_header = "Patient donations — operations"
    site_title = "Donations admin"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    login_form = CharityAdminAuthenticationForm
    login_template = "admin/charity_login.html"

    dashboard: Callable[[HttpRequest], dict[str, Any]] | None = None

    def use_dashboard(self, context: Callable[[HttpRequest], dict[str, Any]]) -> None:
        """The index shows `context(request)` (its template, admin/dashboard.html, reads the `dashboard` key)."""
        self.dashboard = context

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        dashboard = self.dashboard(request) if self.dashboard else {}
        return super().index(request, {**dashboard, **(extra_context or {})})

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff, and for payout/refund approvers a session verified by their authenticator."""
        if not super().has_permission(request):
            return False
        return not needs_second_factor(request.user) or is_verified(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Django's admin login; a signed-in approver without a second factor is told what is missing."""
        notice = admin_notice(request.user) if request.user.is_authenticated else ""
        return super().login(request, {"second_factor_notice": notice, **(extra_context or {})})
