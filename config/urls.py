"""Every route of the site in one place: the admin, the API (versioned under /api/v1.0/), its schema and docs,
the provider callbacks and health page, then the portal's pages at the root (last: its paths are the broadest)."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework_simplejwt.views import TokenRefreshView

from config.health import health
from config.login_security import TokenObtainView
from config.views import docs_csp, handler400_view, handler404_view, handler500_view

api_v1 = [
    path("auth/token/", TokenObtainView.as_view(), name="token-obtain"),  # 429 when axes locks the login out
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("patients/", include("payments.patient_urls")),  # one patient with the money trail (ledger, payouts)
    path("patients/", include("patients.urls")),
    path("donors/", include("donor.urls")),
    path("donors/", include("payments.urls")),
    path("donors/", include("pledges.urls")),
    path("donors/", include("receipts.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (?script): no inline script for the CSP to allow.
    path(
        "api/docs/", csp_override(docs_csp())(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="swagger-ui"
    ),
    path("api/v1.0/", include(api_v1)),
    path("", include("payments.webhook_urls")),  # every provider callback URL and health page
    path("", include("donor.sms_urls")),  # the SMS gateway's delivery reports
    path("", include("pledges.web_urls")),  # a pledge's pages by signed link
    path("", include("receipts.web_urls")),  # a receipt's PDF by signed link
    re_path(r"^health/?$", health, name="health"),
    path("", include("portal.urls")),  # the portal's pages, at the root: the broadest paths, last
]

handler400 = handler400_view
handler404 = handler404_view
handler500 = handler500_view
