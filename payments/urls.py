from django.urls import path, re_path

from payments.apis import DonationCreateApi, DonationRefreshApi, DonationStatusApi
from payments.webhooks import ProviderCallbackView

urlpatterns = [
    path("donations/", DonationCreateApi.as_view(), name="donation-create"),
    path("donations/<str:reference>/status/", DonationStatusApi.as_view(), name="donation-status"),
    path("donations/<str:reference>/refresh/", DonationRefreshApi.as_view(), name="donation-refresh"),
    # With or without the trailing slash, never a redirect: providers do not follow redirects on POST.
    re_path(
        r"^payment/azampay/callback/?$", ProviderCallbackView.as_view(provider_code="azampay"), name="azampay-callback"
    ),
]
