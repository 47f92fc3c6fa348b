"""The pledge's pages by signed link (no login): manage it, and the one-tap pay link of an unpaid month."""

from django.urls import path

from pledges.views import pledge_manage, pledge_pay

urlpatterns = [
    path("pledges/manage/<str:token>/", pledge_manage, name="pledge-manage"),
    path("pledges/pay/<str:token>/", pledge_pay, name="pledge-pay"),
]
