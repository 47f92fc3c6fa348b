from django.urls import path

from donor.apis import DonorRegisterApi, MyDonationsApi

urlpatterns = [
    path("register/", DonorRegisterApi.as_view(), name="donor-register"),
    path("me/donations/", MyDonationsApi.as_view(), name="my-donations"),
]
