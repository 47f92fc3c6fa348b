"""The pledge API, mounted under /api/v1.0/donors/ (the manage and pay pages are in pledges.web_urls)."""

from django.urls import path

from pledges.apis import PledgeCreateApi

urlpatterns = [path("pledges/", PledgeCreateApi.as_view(), name="pledge-create")]
