"""The admin site: its first page is the operator's dashboard (payments.admin.dashboard), not the app list.

Installed through `config.apps.AdminConfig` (default_site), so every `admin.register` lands here.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


class CharityAdminSite(admin.AdminSite):
    site_header = "Patient donations — operations"
    site_title = "Donations admin"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from payments.admin.dashboard import dashboard_context  # the payments app is loaded by now

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})
