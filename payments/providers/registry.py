"""The explicit provider registry: code → class; credentials from settings.PAYMENT_PROVIDERS.

Adding a provider: its package, one entry here and one in config/settings.py's PROVIDER_CONFIGS."""

import json

from django.conf import settings

from payments.providers.airtel.provider import AirtelProvider
from payments.providers.azampay.provider import AzamPayProvider
from payments.providers.base import PaymentProvider, ProviderSettingsInvalid, SettingProblem
from payments.providers.mpesa.provider import MpesaProvider
from payments.providers.mtn.provider import MtnProvider

PROVIDER_CLASSES: dict[str, type[PaymentProvider]] = {
    cls.code: cls for cls in (AzamPayProvider, MpesaProvider, MtnProvider, AirtelProvider)
}


class UnknownProvider(KeyError):
    pass


class MissingCapability(LookupError):
    """The provider exists but cannot do this (e.g. payouts through a collections-only provider)."""


def get_provider(code: str) -> PaymentProvider:
    """One provider object per process and configuration: it holds HTTP sessions (keep-alive) and is
    stateless otherwise; a changed configuration (tests override settings) gets a fresh one.
    ProviderSettingsInvalid when its settings are ones it cannot work with (`settings_problems`)."""
    if code not in PROVIDER_CLASSES or code not in settings.PAYMENT_PROVIDERS:
        raise UnknownProvider(code)
    config = settings.PAYMENT_PROVIDERS[code]
    key = (code, json.dumps(config, sort_keys=True, default=str))
    provider = _instances.get(key)
    if provider is None:
        provider = _instances[key] = PROVIDER_CLASSES[code](**config)
    return provider


def get_capable[Capability](code: str, capability: type[Capability]) -> Capability:
    """The provider, as the capability a service needs; MissingCapability when it has not got it."""
    provider = get_provider(code)
    if not isinstance(provider, capability):
        raise MissingCapability(f"{code} offers no {capability.__name__.lower()}")
    return provider


_instances: dict[tuple[str, str], PaymentProvider] = {}


def settings_problems(code: str) -> list[SettingProblem]:
    """What is wrong with a configured provider's settings (payments.E002…), without building it."""
    return PROVIDER_CLASSES[code].settings_problems(settings.PAYMENT_PROVIDERS[code])


def provider_usable(code: str) -> bool:
    """Whether the configured provider can be built (its settings are valid)."""
    try:
        get_provider(code)
    except ProviderSettingsInvalid:
        return False
    return True


def provider_codes() -> list[str]:
    """The providers configured here, in registry order."""
    return [code for code in PROVIDER_CLASSES if code in settings.PAYMENT_PROVIDERS]
