from django.urls import re_path

from payments.providers.mpesa import B2C_RESULT, B2C_TIMEOUT, C2B_CONFIRMATION, C2B_VALIDATION
from payments.webhooks import ProviderCallbackView, ProviderHealthView

# With or without the trailing slash, never a redirect: providers do not follow redirects on POST.
mpesa_stk = ProviderCallbackView.as_view(provider_code="mpesa", kind="stkpush")
POST_ONLY = ["post", "options"]  # Daraja POSTs every callback
c2b_validation = ProviderCallbackView.as_view(provider_code="mpesa", kind=C2B_VALIDATION, http_method_names=POST_ONLY)
c2b_confirmation = ProviderCallbackView.as_view(
    provider_code="mpesa", kind=C2B_CONFIRMATION, http_method_names=POST_ONLY
)
b2c_result = ProviderCallbackView.as_view(provider_code="mpesa", kind=B2C_RESULT, http_method_names=POST_ONLY)
b2c_timeout = ProviderCallbackView.as_view(provider_code="mpesa", kind=B2C_TIMEOUT, http_method_names=POST_ONLY)
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
