"""The collection callback: both shapes, `status_code` or `status`, the `hash` (valid → unverified, invalid or
missing with a secret → rejected, no secret → unverified: never trusted), redaction and the acknowledgement.
The fixtures' manifest (callbacks.json) is read here too, the way the contract suite reads it."""

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest

from payments.providers.airtel.callbacks import callback_hash
from payments.providers.base import CallbackMalformed, CallbackTrust, PaymentStatus, RawCallback, UrlToken
from payments.tests.providers.airtel.support import FIXTURES, SECRET, fixture, make_provider, raw_fixture

MANIFEST = json.loads((FIXTURES / "callbacks.json").read_text())
CALLBACKS = sorted(name for name in MANIFEST if name not in ("not_callbacks", "secret_fields"))
PAYMENT_CALLBACKS = [name for name in CALLBACKS if MANIFEST[name]["kind"] == "payment"]


def raw(kind: str = "payment", body: bytes = b"", **kw) -> RawCallback:
    return RawCallback(kind=kind, body=body, **kw)


def signed(body: dict, secret: str = SECRET) -> bytes:
    return json.dumps({**body, "hash": callback_hash(secret, body["transaction"])}).encode()


@pytest.mark.parametrize("name", PAYMENT_CALLBACKS)
def test_the_manifest(name):
    expected = MANIFEST[name]
    provider = make_provider()
    if expected.get("malformed"):
        with pytest.raises(CallbackMalformed):
            provider.parse_callback(expected["kind"], raw_fixture(name), {})
        return
    result = provider.parse_callback(expected["kind"], raw_fixture(name), {})
    assert result.status == PaymentStatus(expected["status"])
    assert result.provider_reference == expected["provider_reference"]
    assert result.our_reference == expected["our_reference"]
    assert result.amount == (Decimal(expected["amount"]) if expected["amount"] is not None else None)


def test_every_fixture_is_listed_in_the_manifest():
    listed = set(CALLBACKS) | set(MANIFEST["not_callbacks"])
    assert listed == {path.name for path in FIXTURES.glob("*.json")} - {"callbacks.json"}


def test_airtels_success_callback():
    result = make_provider().parse_callback("payment", raw_fixture("callback_success.json"), {})
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.our_reference == "BBZMiscxy"
    assert result.receipt == result.provider_reference == "MP210603.1234.L06941"
    assert result.amount is None and result.currency == ""  # not in the body: ours and the enquiry's
    assert "Paid UGX 5,000" in result.message


def test_the_legacy_shape_with_status_and_data_transaction():
    result = make_provider().parse_callback("payment", raw_fixture("callback_legacy_shape.json"), {})
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.provider_reference == "MP261201.1015.A12345"  # from data.transaction, filled in
    failed = make_provider().parse_callback("payment", raw_fixture("callback_legacy_data_only.json"), {})
    assert failed.status == PaymentStatus.FAILED and failed.receipt == ""


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"transaction": "TS"}', b'{"transaction": {"id": {}}}'])
def test_malformed_bodies(body):
    with pytest.raises(CallbackMalformed):
        make_provider().parse_callback("payment", body, {})


def test_other_kinds_are_not_payment_callbacks():
    with pytest.raises(CallbackMalformed):
        make_provider().parse_callback("notification", raw_fixture("callback_success.json"), {})


def test_a_valid_hash_is_still_only_unverified():
    body = signed(fixture("callback_success.json"))
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=body)) == CallbackTrust.UNVERIFIED


def test_the_hash_of_the_legacy_shape_covers_its_top_level_transaction():
    body = signed(fixture("callback_legacy_shape.json"))
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=body)) == CallbackTrust.UNVERIFIED
    nested = fixture("callback_legacy_data_only.json")
    body = json.dumps({**nested, "hash": callback_hash(SECRET, nested["data"]["transaction"])}).encode()
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=body)) == CallbackTrust.UNVERIFIED


@pytest.mark.parametrize(
    "body",
    [
        signed(fixture("callback_success.json"), secret="another-secret"),
        raw_fixture("callback_success_with_hash.json"),  # Airtel's sample hash, keyed with someone else's secret
        raw_fixture("callback_success.json"),  # no hash at all while we expect one
        json.dumps({**fixture("callback_success.json"), "hash": 12}).encode(),
    ],
)
def test_a_wrong_or_missing_hash_is_rejected_when_a_secret_is_set(body):
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=body)) == CallbackTrust.REJECTED


def test_a_tampered_body_no_longer_matches():
    data = json.loads(signed(fixture("callback_success.json")))
    data["transaction"]["status_code"] = "TF"
    body = json.dumps(data).encode()
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=body)) == CallbackTrust.REJECTED


@pytest.mark.parametrize("name", ["callback_success.json", "callback_success_with_hash.json"])
def test_without_a_secret_every_callback_is_unverified(name):
    assert make_provider().authenticate_callback(raw(body=raw_fixture(name))) == CallbackTrust.UNVERIFIED


def test_a_malformed_body_is_left_to_the_parser():
    assert make_provider(callback_secret=SECRET).authenticate_callback(raw(body=b"nope")) == CallbackTrust.UNVERIFIED


def test_an_unknown_url_token_is_rejected():
    callback = raw(body=raw_fixture("callback_success.json"), url_token=UrlToken.INVALID)
    assert make_provider().authenticate_callback(callback) == CallbackTrust.REJECTED


def test_the_documented_hash_input():
    """Base64(HMAC-SHA256(secret, '{"id":"A1","status_code":"TS"}')): compact JSON of `transaction`."""
    expected = base64.b64encode(hmac.new(b"k", b'{"id":"A1","status_code":"TS"}', hashlib.sha256).digest()).decode()
    assert (
        callback_hash("k", {"id": "A1", "status_code": "TS"})
        == expected
        == "uM66z/Bp7XgQ3pvBld5+sLUtah0ONTjQK8RBB6rYojE="
    )


def test_redaction_removes_the_hash_and_keeps_the_rest():
    stored = make_provider().redact(raw_fixture("callback_success_with_hash.json"))
    assert "zITVAAGYSlzl1WkUQJn81kbpT5drH3koffT8jCkcJJA=" not in stored and "hash" not in json.loads(stored)
    assert json.loads(stored)["transaction"] == fixture("callback_success.json")["transaction"]
    assert make_provider().parse_callback("payment", stored.encode(), {}).status == PaymentStatus.SUCCEEDED


def test_redaction_leaves_bodies_without_a_hash_untouched():
    assert make_provider().redact(raw_fixture("callback_success.json")) == raw_fixture("callback_success.json").decode()
    assert make_provider().redact(b"not json") == "not json"


@pytest.mark.parametrize("kind", ["payment", "disbursement", "notification"])
def test_the_acknowledgement(kind):
    assert make_provider().ack(kind, True) == (
        200,
        {"status": {"code": "200", "message": "Callback received successfully", "success": True}},
    )
