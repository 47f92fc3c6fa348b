"""The provider contract, for every provider in the registry, against its real payloads.

Parametrized over `PROVIDER_CLASSES` and each provider's `payments/tests/fixtures/<code>/` folder, so a new
provider (MTN, Airtel, …) is checked from its first commit by adding only that folder and its manifest,
`callbacks.json`:

    {
      "callback_success.json": {"kind": "<a declared callback kind>", "status": "succeeded", "amount": "1.00", …},
      "callback_garbled.json": {"kind": "<kind>", "malformed": true},
      "not_callbacks": ["token_success.json", "status_pending.json", …],
      "secret_fields": ["password"]
    }

- every other key is a fixture file: a callback of that kind and what it must parse to. Payment kinds are read
  with `parse_callback` (fields of ProviderResult), paybill kinds with `parse_paybill` (PaybillPayment), payout
  kinds with `parse_payout_result` (PayoutResult; its `status` is "succeeded", "failed" or "pending"), refund
  kinds with `parse_refund_result` (RefundResult). Amounts are compared as Decimals, so "1.00" matches 1;
  `"malformed": true` means CallbackMalformed, and nothing else;
- `not_callbacks`: the provider's other payloads (tokens, status answers, errors), so no file is silently
  skipped: every file in the folder is one or the other;
- `secret_fields`: top-level body fields the provider must never store (`redact()` removes them); none when the
  provider's secrets are not in its bodies (M-Pesa: in the URL).
"""

import json
from decimal import Decimal
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.urls import resolve, reverse

from payments.providers.base import (
    CallbackMalformed,
    CallbackRole,
    CallbackRoute,
    Collections,
    Paybill,
    PaymentProvider,
    PayoutResult,
    Payouts,
    Refunds,
    RouteToken,
    WalletBalances,
)
from payments.providers.registry import PROVIDER_CLASSES, get_provider
from payments.tests.fixtures import MANIFEST, provider_fixtures
from payments.webhooks import ProviderCallbackView, ProviderHealthView

RESERVED = {"not_callbacks", "secret_fields"}
TOKEN = "Ab3_-token-of-the-url"  # noqa: S105 (a URL segment in a routing test, not a secret)
JSON = {"Content-Type": "application/json"}
# Which capability a callback role needs, and how a body of that role is read.
CAPABILITY: dict[CallbackRole, type] = {
    CallbackRole.PAYMENT: Collections,
    CallbackRole.PAYBILL_VALIDATION: Paybill,
    CallbackRole.PAYBILL_CONFIRMATION: Paybill,
    CallbackRole.PAYOUT_RESULT: Payouts,
    CallbackRole.PAYOUT_TIMEOUT: Payouts,
    CallbackRole.REFUND_RESULT: Refunds,
    CallbackRole.REFUND_TIMEOUT: Refunds,
    CallbackRole.BALANCE_RESULT: WalletBalances,
    CallbackRole.BALANCE_TIMEOUT: WalletBalances,
}
NOT_PARSED = {CallbackRole.NOTICE}  # stored and acknowledged; nothing to read
GARBAGE = [b"", b"not json", b"\xff\xfe\x00", b"[]", b"null", b'"success"', b"[" * 5000 + b"]" * 5000]


def parse(provider: PaymentProvider, kind: str, body: bytes) -> Any:
    role = provider.callback_role(kind)
    if role == CallbackRole.PAYMENT:
        return provider.parse_callback(kind, body, JSON)  # type: ignore[attr-defined]
    if role in (CallbackRole.PAYBILL_VALIDATION, CallbackRole.PAYBILL_CONFIRMATION):
        return provider.parse_paybill(body)  # type: ignore[attr-defined]
    if role in (CallbackRole.PAYOUT_RESULT, CallbackRole.PAYOUT_TIMEOUT):
        return provider.parse_payout_result(kind, body)  # type: ignore[attr-defined]
    if role in (CallbackRole.REFUND_RESULT, CallbackRole.REFUND_TIMEOUT):
        return provider.parse_refund_result(kind, body)  # type: ignore[attr-defined]
    if role in (CallbackRole.BALANCE_RESULT, CallbackRole.BALANCE_TIMEOUT):
        return provider.parse_balance_result(kind, body)  # type: ignore[attr-defined]
    raise AssertionError(f"{provider.code}: no parser known for {kind!r} (role {role}): teach test_contract.py")


def manifest(code: str) -> dict:
    path = provider_fixtures(code) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def callbacks(code: str) -> dict[str, dict]:
    return {name: entry for name, entry in manifest(code).items() if name not in RESERVED}


def kinds(cls: type[PaymentProvider]) -> list[str]:
    return sorted({route.kind for route in cls.callback_routes})


def parsed_kinds(cls: type[PaymentProvider]) -> list[str]:
    return [kind for kind in kinds(cls) if cls.callback_role(kind) not in NOT_PARSED]


CODES = sorted(PROVIDER_CLASSES)
CALLBACKS = [
    pytest.param(code, name, entry, id=f"{code}:{name}") for code in CODES for name, entry in callbacks(code).items()
]
KINDS = [pytest.param(code, kind, id=f"{code}:{kind}") for code in CODES for kind in kinds(PROVIDER_CLASSES[code])]
PARSED_KINDS = [
    pytest.param(code, kind, id=f"{code}:{kind}") for code in CODES for kind in parsed_kinds(PROVIDER_CLASSES[code])
]
ROUTES = [
    pytest.param(code, route, id=f"{code}:{route.name}")
    for code in CODES
    for route in PROVIDER_CLASSES[code].callback_routes
]


def observed(result: Any, field: str) -> Any:
    """A field of a parsed result, as the manifest writes it."""
    if field == "status" and isinstance(result, PayoutResult):
        return "pending" if result.pending else "succeeded" if result.succeeded else "failed"
    if not hasattr(result, field):
        pytest.fail(f"the manifest names {field!r}, which {type(result).__name__} has not got")
    value = getattr(result, field)
    return str(value) if isinstance(value, str) else value  # a StrEnum as its value


def expected(value: Any, actual: Any) -> Any:
    if isinstance(actual, Decimal) and value is not None:
        return Decimal(str(value))
    return value


# --- the fixtures folder and its manifest -------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_every_provider_has_a_fixtures_folder_with_a_manifest(code):
    folder = provider_fixtures(code)
    assert folder.is_dir(), f"{code}: real payloads belong in {folder}"
    assert (folder / MANIFEST).is_file(), f"{code}: {folder / MANIFEST} lists the callback fixtures"
    data = manifest(code)
    assert isinstance(data, dict) and callbacks(code), f"{code}: the manifest lists no callback"
    assert isinstance(data.get("not_callbacks", []), list)
    assert isinstance(data.get("secret_fields", []), list)
    for name, entry in callbacks(code).items():
        assert name.endswith(".json"), f"{code}: {name!r} is neither a fixture file nor one of {sorted(RESERVED)}"
        assert isinstance(entry, dict) and "kind" in entry, f"{code}: {name} needs at least its kind"


@pytest.mark.parametrize("code", CODES)
def test_every_fixture_file_is_a_listed_callback_or_listed_as_not_one(code):
    folder = provider_fixtures(code)
    on_disk = {path.name for path in folder.glob("*") if path.is_file() and path.name != MANIFEST}
    listed = set(callbacks(code))
    others = set(manifest(code).get("not_callbacks", []))
    assert not listed & others, f"{code}: listed both as a callback and not: {sorted(listed & others)}"
    assert sorted(on_disk - listed - others) == [], f"{code}: fixtures the manifest does not mention"
    assert sorted((listed | others) - on_disk) == [], f"{code}: the manifest names files that are not there"


@pytest.mark.parametrize("code", CODES)
def test_every_callback_kind_the_provider_reads_has_a_real_payload(code):
    cls = PROVIDER_CLASSES[code]
    covered = {entry["kind"] for entry in callbacks(code).values() if not entry.get("malformed")}
    assert sorted(set(parsed_kinds(cls)) - covered) == [], f"{code}: declared kinds without a fixture that parses"


# --- callbacks: parsing, garbage, redaction, acknowledgement ------------------------------------------------


@pytest.mark.parametrize(("code", "name", "entry"), CALLBACKS)
def test_callback_fixture_parses_as_its_manifest_says(code, name, entry):
    provider = get_provider(code)
    kind = entry["kind"]
    assert kind in kinds(type(provider)), f"{code}: {name} is of kind {kind!r}, which no route declares"
    body = (provider_fixtures(code) / name).read_bytes()
    if entry.get("malformed"):
        with pytest.raises(CallbackMalformed):
            parse(provider, kind, body)
        return
    result = parse(provider, kind, body)
    fields = {field: value for field, value in entry.items() if field not in ("kind", "malformed")}
    assert fields, f"{code}: {name} says nothing about what it parses to"
    got = {field: observed(result, field) for field in fields}
    assert got == {field: expected(value, got[field]) for field, value in fields.items()}


@pytest.mark.parametrize(("code", "kind"), PARSED_KINDS)
@pytest.mark.parametrize("body", GARBAGE, ids=["empty", "not-json", "not-utf8", "array", "null", "string", "deep"])
def test_a_body_that_is_not_a_callback_is_callback_malformed_and_nothing_else(code, kind, body):
    with pytest.raises(CallbackMalformed):
        parse(get_provider(code), kind, body)


@pytest.mark.parametrize(("code", "name", "entry"), CALLBACKS)
def test_redacted_callback_is_json_without_its_secrets_and_keeps_the_rest(code, name, entry):
    provider = get_provider(code)
    body = (provider_fixtures(code) / name).read_bytes()
    data = json.loads(body)
    secrets = manifest(code).get("secret_fields", [])
    if not isinstance(data, dict) or not secrets:
        assert json.loads(provider.redact(body)) == data  # nothing to remove: the evidence is kept whole
        return
    sentinel = "contract-secret-3f1a9c"  # noqa: S105 (a marker to look for, not a secret)
    with_secrets = data | {field: sentinel for field in secrets}
    stored = provider.redact(json.dumps(with_secrets).encode())
    assert sentinel not in stored
    kept = json.loads(stored)
    assert {k: v for k, v in kept.items() if k not in secrets} == {k: v for k, v in data.items() if k not in secrets}


@pytest.mark.parametrize(("code", "kind"), KINDS)
def test_ack_is_a_2xx_with_a_json_body(code, kind):
    provider = get_provider(code)
    status, body = provider.ack(kind, True)
    assert isinstance(status, int) and 200 <= status < 300
    assert isinstance(body, dict)
    json.dumps(body)
    refused_status, refused_body = provider.ack(kind, False)
    assert isinstance(refused_status, int) and isinstance(refused_body, dict)


# --- routes -----------------------------------------------------------------------------------------------


def resolves_to_the_webhook(path: str, code: str, route: CallbackRoute, **kwargs: str) -> None:
    match = resolve(path)
    assert match.func.view_class is ProviderCallbackView, path
    assert match.func.view_initkwargs["provider_code"] == code, path
    assert match.func.view_initkwargs["kind"] == route.kind, path
    assert set(route.methods) <= set(match.func.view_initkwargs["http_method_names"]), path
    assert match.kwargs == kwargs, path


@pytest.mark.parametrize(("code", "route"), ROUTES)
def test_every_declared_route_resolves_to_the_webhook_with_and_without_the_slash(code, route):
    assert route.role in CAPABILITY or route.role in NOT_PARSED, f"test_contract.py does not know {route.role}"
    assert not route.path.startswith("/") and not route.path.endswith("/"), route.path
    if route.token != RouteToken.REQUIRED:
        for path in (f"/{route.path}/", f"/{route.path}"):
            resolves_to_the_webhook(path, code, route)
        assert reverse(route.name).strip("/") == route.path
    if route.token != RouteToken.NONE:
        for path in (f"/{route.path}/{TOKEN}/", f"/{route.path}/{TOKEN}"):
            resolves_to_the_webhook(path, code, route, token=TOKEN)
        assert reverse(f"{route.name}-token", kwargs={"token": TOKEN}).strip("/") == f"{route.path}/{TOKEN}"


@pytest.mark.parametrize(("code", "route"), ROUTES)
def test_every_declared_route_belongs_to_a_capability_the_provider_has(code, route):
    if route.role in NOT_PARSED:
        return
    assert issubclass(PROVIDER_CLASSES[code], CAPABILITY[route.role]), f"{code} declares {route.kind} without it"


def test_route_names_and_paths_are_unique_across_providers():
    routes = [route for cls in PROVIDER_CLASSES.values() for route in cls.callback_routes]
    names = [route.name for route in routes]
    paths = [route.path for route in routes]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    assert sorted({p for p in paths if paths.count(p) > 1}) == []


@pytest.mark.parametrize("code", CODES)
def test_health_route_resolves_under_the_public_name(code):
    cls = PROVIDER_CLASSES[code]
    assert isinstance(cls.public_name, str) and cls.public_name.strip()
    assert isinstance(cls.display_name, str) and cls.display_name.strip()
    for path in (f"/webhooks/{code}/health/", f"/webhooks/{code}/health"):
        match = resolve(path)
        assert match.func.view_class is ProviderHealthView
        assert match.func.view_initkwargs == {"provider_code": code, "public_name": cls.public_name}


def test_public_names_are_unique():
    names = [cls.public_name for cls in PROVIDER_CLASSES.values()]
    assert len(names) == len(set(names))


# --- settings and payment methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_provider_config_is_among_the_settings_and_builds_the_provider(code):
    cls = PROVIDER_CLASSES[code]
    assert cls.code == code
    package = cls.__module__.rsplit(".", 1)[0]  # payments.providers.<code>
    config = import_module(f"{package}.config").CONFIG
    assert config.code == code
    assert config in settings.PROVIDER_CONFIGS
    assert code in settings.PAYMENT_PROVIDERS, f"settings.PAYMENT_PROVIDERS has no block for {code}"
    assert isinstance(get_provider(code), cls)  # the block's keys are the constructor's arguments


@pytest.mark.parametrize("code", CODES)
def test_payment_methods_of_a_collections_provider_are_in_its_currencies(code):
    provider = get_provider(code)
    if not isinstance(provider, Collections):
        pytest.skip(f"{code} does not collect")
    methods = provider.payment_methods()
    assert methods, f"{code} collects but offers no way to pay"
    assert len({method.key for method in methods}) == len(methods)
    for method in methods:
        assert method.provider == code
        assert method.label.strip()
        assert method.currencies and method.currencies <= provider.currencies, method
        assert provider.normalize_channel(method.channel) == method.channel, method
