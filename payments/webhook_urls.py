from django.urls import re_path

from payments.mpesa_webhooks import MpesaB2CView, MpesaC2BView
from payments.providers.mpesa import B2C_RESULT, B2C_TIMEOUT, C2B_CONFIRMATION, C2B_VALIDATION
from payments.webhooks import ProviderCallbackView, ProviderHealthView

# With or without the trailing slash, never a redirect: providers do not follow redirects on POST.
mpesa_stk = ProviderCallbackView.as_view(provider_code="mpesa", kind="stkpush")
c2b_validation = MpesaC2BView.as_view(kind=C2B_VALIDATION)
c2b_confirmation = MpesaC2BView.as_view(kind=C2B_CONFIRMATION)
b2c_result = MpesaB2CView.as_view(kind=B2C_RESULT)
b2c_timeout = MpesaB2CView.as_view(kind=B2C_TIMEOUT)
URL_KEY = r"(?P<token>[A-Za-z0-9_-]{1,64})"

urlpatterns = [
    re_path(
        r"^azampay/health/?$",
        ProviderHealthView.as_view(provider_code="azampay", public_name="azampay"),
        name="azampay-health",
    ),
    re_path(r"^mpesa/stkpush/?$", mpesa_stk, name="mpesa-stkpush"),
    re_path(rf"^mpesa/stkpush/{URL_KEY}/?$", mpesa_stk, name="mpesa-stkpush-token"),
    # Neutral STK paths for MPESA_CALLBACK_URL: Daraja is reported to refuse callback URLs containing "mpesa"
    # (providers notes B.13 #12), e.g. MPESA_CALLBACK_URL=https://example.org/webhooks/stk/{token}/.
    re_path(r"^stk/?$", mpesa_stk, name="stk-callback"),
    re_path(rf"^stk/{URL_KEY}/?$", mpesa_stk, name="stk-callback-token"),
    re_path(r"^mpesa/c2b/validation/?$", c2b_validation, name="mpesa-c2b-validation"),
    re_path(rf"^mpesa/c2b/validation/{URL_KEY}/?$", c2b_validation, name="mpesa-c2b-validation-token"),
    re_path(r"^mpesa/c2b/confirmation/?$", c2b_confirmation, name="mpesa-c2b-confirmation"),
    re_path(rf"^mpesa/c2b/confirmation/{URL_KEY}/?$", c2b_confirmation, name="mpesa-c2b-confirmation-token"),
    # The same views on paths Daraja's C2B register accepts: it refuses URLs containing "mpesa" (notes B.7).
    re_path(rf"^paybill/validation/{URL_KEY}/?$", c2b_validation, name="paybill-validation-token"),
    re_path(rf"^paybill/confirmation/{URL_KEY}/?$", c2b_confirmation, name="paybill-confirmation-token"),
    re_path(r"^mpesa/b2c/result/?$", b2c_result, name="mpesa-b2c-result"),
    re_path(rf"^mpesa/b2c/result/{URL_KEY}/?$", b2c_result, name="mpesa-b2c-result-token"),
    re_path(r"^mpesa/b2c/timeout/?$", b2c_timeout, name="mpesa-b2c-timeout"),
    re_path(rf"^mpesa/b2c/timeout/{URL_KEY}/?$", b2c_timeout, name="mpesa-b2c-timeout-token"),
    re_path(
        r"^mpesa/health/?$",
        ProviderHealthView.as_view(provider_code="mpesa", public_name="mpesa"),
        name="mpesa-health",
    ),
]
