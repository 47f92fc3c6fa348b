from django.urls import path

from bench.orm_reference import views

urlpatterns = [
    path("api/v1.0/donors/payment/azampay/callback/", views.callback),
    path("health/", views.health),
]
