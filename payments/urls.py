"""The donation API under /api/v1.0/donors/: start a payment, read its status, ask the provider again.
Provider callbacks have their own routes (payments/webhook_urls.py), built from the registry."""

from django.urls import path

from payments.apis import DonationCreateApi, DonationRefreshApi, DonationStatusApi

urlpatterns = [
    path("donations/", DonationCreateApi.as_view(), name="donation-create"),
    path("donations/<str:reference>/status/", DonationStatusApi.as_view(), name="donation-status"),
    path("donations/<str:reference>/refresh/", DonationRefreshApi.as_view(), name="donation-refresh"),
]
