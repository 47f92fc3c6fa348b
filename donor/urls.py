"""The donor API under /api/v1.0/donors/: register, my donations, logout."""

from django.urls import path

from donor.apis import DonorRegisterApi, LogoutApi, MyDonationsApi

urlpatterns = [
    path("register/", DonorRegisterApi.as_view(), name="donor-register"),
    path("me/donations/", MyDonationsApi.as_view(), name="my-donations"),
    path("logout/", LogoutApi.as_view(), name="donor-logout"),
]
