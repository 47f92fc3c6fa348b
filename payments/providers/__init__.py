"""The explicit provider registry: code → class, credentials from settings.PAYMENT_PROVIDERS."""

from django.conf import settings

from payments.providers.azampay import AzamPayProvider
from payments.providers.base import PaymentProvider
from payments.providers.mpesa import MpesaProvider

PROVIDER_CLASSES: dict[str, type[PaymentProvider]] = {cls.code: cls for cls in (AzamPayProvider, MpesaProvider)}


class UnknownProvider(KeyError):
    pass


def get_provider(code: str) -> PaymentProvider:
    if code not in PROVIDER_CLASSES or code not in settings.PAYMENT_PROVIDERS:
        raise UnknownProvider(code)
    return PROVIDER_CLASSES[code](**settings.PAYMENT_PROVIDERS[code])


def provider_codes() -> list[str]:
    return [code for code in PROVIDER_CLASSES if code in settings.PAYMENT_PROVIDERS]
