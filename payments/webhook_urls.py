from django.urls import re_path

from payments.webhooks import ProviderHealthView

urlpatterns = [
    re_path(
        r"^azampay/health/?$",
        ProviderHealthView.as_view(provider_code="azampay", public_name="azampay"),
        name="azampay-health",
    ),
]
