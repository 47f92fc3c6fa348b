"""The receipts API under /api/v1.0/donors/: the signed-in donor's yearly statement."""

from django.urls import path

from receipts.apis import StatementApi

urlpatterns = [path("statements/<int:year>.pdf", StatementApi.as_view(), name="statement-api")]
