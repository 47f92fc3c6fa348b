"""The explicit provider registry: code → class, credentials from settings.PAYMENT_PROVIDERS."""

import json

from django.conf import settings

from payments.providers.azampay import AzamPayProvider
from payments.providers.base import PaymentProvider
from payments.providers.mpesa import MpesaProvider

PROVIDER_CLASSES: dict[str, type[PaymentProvider]] = {cls.code: cls for cls in (AzamPayProvider, MpesaProvider)}


class UnknownProvider(KeyError):
    pass


def get_provider(code: str) -> PaymentProvider:
    """One provider object per process and configuration: it holds HTTP sessions (keep-alive) and is
    stateless otherwise; a changed configuration (tests override settings) gets a fresh one."""
    if code not in PROVIDER_CLASSES or code not in settings.PAYMENT_PROVIDERS:
        raise UnknownProvider(code)
    config = settings.PAYMENT_PROVIDERS[code]
    key = (code, json.dumps(config, sort_keys=True, default=str))
    provider = _instances.get(key)
    if provider is None:
        provider = _instances[key] = PROVIDER_CLASSES[code](**config)
    return provider


_instances: dict[tuple[str, str], PaymentProvider] = {}


def provider_codes() -> list[str]:
    return [code for code in PROVIDER_CLASSES if code in settings.PAYMENT_PROVIDERS]
