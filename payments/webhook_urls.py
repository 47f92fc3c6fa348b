"""Every provider callback URL, generated from the registry: each provider declares its routes
(payments/providers/<code>/provider.py `callback_routes`); the aliases of the public contract are below.

Each answers with and without the trailing slash, never with a redirect (providers do not follow redirects
on POST). Included at the site root by config/urls.py.
"""

from django.urls import URLPattern, re_path

from payments.providers.base import CallbackRoute, PaymentProvider, RouteToken
from payments.providers.registry import PROVIDER_CLASSES
from payments.webhooks import ProviderCallbackView, ProviderHealthView

# The secret segment we put in callback URLs (payments/url_tokens.py makes 32 URL-safe characters; operators'
# paybill/payout secrets may be shorter).
TOKEN = r"(?P<token>[A-Za-z0-9_-]{1,64})"  # noqa: S105 (a URL pattern, not a secret)
# Paths some integrations are configured with, answered like the provider's own route: path → (code, kind).
ALIASES: dict[str, tuple[str, str]] = {
    "api/v1/payments/mpesa/callback": ("mpesa", "stkpush"),
    "mpesa/callback": ("mpesa", "stkpush"),
}


def _view(provider: type[PaymentProvider], route: CallbackRoute):
    return ProviderCallbackView.as_view(
        provider_code=provider.code, kind=route.kind, http_method_names=[*route.methods, "options"]
    )


def _route_patterns(provider: type[PaymentProvider], route: CallbackRoute) -> list[URLPattern]:
    view = _view(provider, route)
    patterns = []
    if route.token != RouteToken.REQUIRED:
        patterns.append(re_path(rf"^{route.path}/?$", view, name=route.name))
    if route.token != RouteToken.NONE:
        patterns.append(re_path(rf"^{route.path}/{TOKEN}/?$", view, name=f"{route.name}-token"))
    return patterns


def _alias_patterns() -> list[URLPattern]:
    patterns = []
    for path, (code, kind) in ALIASES.items():
        provider = PROVIDER_CLASSES[code]
        route = next(r for r in provider.callback_routes if r.kind == kind)
        patterns.append(re_path(rf"^{path}/?$", _view(provider, route), name=f"alias-{path.replace('/', '-')}"))
    return patterns


urlpatterns: list[URLPattern] = [
    pattern
    for provider in PROVIDER_CLASSES.values()
    for route in provider.callback_routes
    for pattern in _route_patterns(provider, route)
]
urlpatterns += _alias_patterns()
urlpatterns += [
    re_path(
        rf"^webhooks/{provider.code}/health/?$",
        ProviderHealthView.as_view(provider_code=provider.code, public_name=provider.public_name),
        name=f"{provider.code}-health",
    )
    for provider in PROVIDER_CLASSES.values()
]
