from django.urls import path

from pledges.apis import PledgeCreateApi

urlpatterns = [path("pledges/", PledgeCreateApi.as_view(), name="pledge-create")]
