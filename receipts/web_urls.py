"""A receipt by its signed link (the status body's `receipt_pdf_url`), at /receipts/<signed>.pdf."""

from django.urls import path

from receipts.apis import receipt_signed_pdf

urlpatterns = [path("receipts/<str:signed>.pdf", receipt_signed_pdf, name="receipt-signed-pdf")]
