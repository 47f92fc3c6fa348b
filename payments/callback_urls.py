"""The callback URLs we hand to providers, built with reverse() from the routes they declare."""

from django.conf import settings
from django.urls import reverse

from payments.providers.base import CallbackRole, PaymentProvider, RouteToken


def callback_url(provider: type[PaymentProvider] | PaymentProvider, role: CallbackRole, secret: str = "") -> str:
    """The absolute URL (SITE_URL + path) of the provider's first route for `role`, with `secret` in it.

    "" when the provider declares no such route (AzamPay takes its callback URL from its dashboard). Without
    a secret, a route that requires one cannot be built: ValueError.
    """
    route = provider.route_for(role)
    if route is None or route.token == RouteToken.NONE:
        return ""
    if secret:
        path = reverse(f"{route.name}-token", kwargs={"token": secret})
    elif route.token == RouteToken.REQUIRED:
        raise ValueError(f"{provider.code}'s {route.kind} URL needs its secret")
    else:
        path = reverse(route.name)
    # The routes answer with and without the slash; reverse() gives the form without it.
    return settings.SITE_URL.rstrip("/") + path.rstrip("/") + "/"
