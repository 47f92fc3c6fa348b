"""The SMS delivery-report URL; included at the site root by config/urls.py. It answers with and without the
trailing slash, never with a redirect (gateways do not follow redirects on POST)."""

from django.urls import re_path

from donor.sms_webhooks import SmsDeliveryReportView

urlpatterns = [
    re_path(
        r"^webhooks/sms/africastalking/(?P<token>[A-Za-z0-9_-]{1,128})/?$",
        SmsDeliveryReportView.as_view(),
        name="sms-delivery-report",
    ),
]
