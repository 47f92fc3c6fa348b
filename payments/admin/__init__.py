"""The payments admin, one module per model; importing them registers their ModelAdmins. Importing this
package (the admin's autodiscover does) also plugs the operator's dashboard into the site's first page."""

from django.contrib import admin

from config.admin_site import CharityAdminSite
from payments.admin import audit, callbacks, payments, payouts, refunds  # noqa: F401
from payments.admin.dashboard import dashboard_context

if isinstance(admin.site, CharityAdminSite):  # the project's site (config.apps.AdminConfig), not a bare AdminSite
    admin.site.use_dashboard(dashboard_context)
