"""The admin site: its first page is the operator's dashboard (payments.admin.dashboard), not the app list.

Installed through `config.apps.AdminConfig` (default_site), so every `admin.register` lands here.

Staff who can approve payouts or refunds must have signed in with a second factor (config.second_factor,
docs/security.md): for them `has_permission` also requires a session verified by a TOTP device.
"""

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

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from payments.admin.dashboard import dashboard_context  # the payments app is loaded by now

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff, and for payout/refund approvers a session verified by their authenticator."""
        if not super().has_permission(request):
            return False
        return not needs_second_factor(request.user) or is_verified(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Django's admin login; a signed-in approver without a second factor is told what is missing."""
        notice = admin_notice(request.user) if request.user.is_authenticated else ""
        return super().login(request, {"second_factor_notice": notice, **(extra_context or {})})
