from django.urls import path

from donor import web

urlpatterns = [
    path("", web.home, name="home"),
    path("donations/<str:reference>/", web.donation_status_page, name="donation-status-page"),
]
