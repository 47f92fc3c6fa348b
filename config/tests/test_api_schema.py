"""The OpenAPI schema at /api/schema/ tells the truth (config/schema.py): every operation documents its errors
with the one Error body, and the donation request states the rules the API enforces, from the same sources."""

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import NOT_BLANK_PATTERN, amount_schema, integer_range_pattern, trimmed_length_pattern
from donor.phone_numbers import mobile_number_pattern, normalize_msisdn
from donor.services import donation_limits
from payments.models import IdempotencyRecord
from payments.providers.base import Collections
from payments.providers.registry import get_capable
from payments.services.donations import collection_provider_codes
from payments.tests.azampay_fakes import MNO_URL, fixture

DONATIONS = "/api/v1.0/donors/donations/"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Every operation and the errors it can answer (docs/api.md). Removing one from the schema fails here.
EXPECTED_ERRORS = {
    ("post", "/api/v1.0/auth/token/"): {"400", "401", "413", "415", "429"},
    ("post", "/api/v1.0/auth/token/refresh/"): {"400", "401", "413", "415"},
    ("post", "/api/v1.0/donors/register/"): {"400", "413", "415", "429"},
    ("get", "/api/v1.0/patients/"): {"404"},
    ("get", "/api/v1.0/patients/{code}/"): {"404"},
    ("post", DONATIONS): {"400", "401", "409", "413", "415", "422", "429", "502", "503"},
    ("get", "/api/v1.0/donors/donations/{reference}/status/"): {"401", "404", "429"},
    ("post", "/api/v1.0/donors/donations/{reference}/refresh/"): {"401", "404", "429"},
    ("get", "/api/v1.0/donors/me/donations/"): {"401", "404"},
    ("post", "/api/v1.0/donors/logout/"): {"401"},
    ("post", "/api/v1.0/donors/pledges/"): {"400", "401", "413", "415", "503"},
    ("get", "/api/v1.0/donors/statements/{year}.pdf"): {"401", "404"},
}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_every_operation_documents_the_errors_it_can_answer_with_the_error_body(schema):
    documented = {(m, p): {s for s in op["responses"] if s >= "400"} for m, p, op in operations(schema)}
    assert documented == EXPECTED_ERRORS
    for _, _, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status >= "400":
                assert response["content"] == {"application/json": {"schema": ERROR_REF}}, status
                assert response["description"].startswith("`"), "each error names its code"


def test_the_error_body_is_one_component_with_the_contracts_keys(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message", "code"}
    assert {"errors", "retry_after", "reference", "request_id"} <= set(error["properties"])
    assert error["properties"]["errors"]["additionalProperties"]["items"] == {"type": "string"}


def variants(schema: dict) -> list[dict]:
    components = schema["components"]["schemas"]
    body = schema["paths"][DONATIONS]["post"]["requestBody"]
    assert body["required"] is True  # an empty body is a 400: the schema must not call it valid
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DonationRequest"}
    refs = components["DonationRequest"]["oneOf"]
    return [components[ref["$ref"].rsplit("/", 1)[1]] for ref in refs]


def test_the_donation_request_has_a_variant_per_provider_with_its_enums(schema):
    found = variants(schema)
    providers = [v["properties"]["provider"]["enum"] for v in found]
    assert {p for (p,) in providers} == set(collection_provider_codes())  # from the registry, not a list
    for variant in found:
        (code,) = variant["properties"]["provider"]["enum"]
        provider = get_capable(code, Collections)
        (currency,) = variant["properties"]["currency"]["enum"]
        assert currency in provider.currencies
        assert {"provider", "currency", "amount"} <= set(variant["required"])
        channels = {m.channel for m in provider.payment_methods() if m.channel}
        if channels:
            assert "channel" in variant["required"]
            assert set(variant["properties"]["channel"]["enum"]) <= channels
    azampay = [
        set(v["properties"]["channel"]["enum"]) for v in found if v["properties"]["provider"]["enum"] == ["azampay"]
    ]
    assert set().union(*azampay) == {"Mpesa", "Airtel", "Tigo", "Halopesa", "Azampesa", "card", "bank"}
    bank = next(v for v in found if v["properties"].get("channel", {}).get("enum") == ["bank"])
    assert bank["properties"]["bank"]["enum"] == ["CRDB", "NMB"] and "bank" in bank["required"]


def test_the_donation_request_states_the_amount_limits_and_phone_format_it_enforces(schema):
    for variant in variants(schema):
        props = variant["properties"]
        (currency,) = props["currency"]["enum"]
        low, high = donation_limits(currency)
        number, string = props["amount"]["oneOf"]
        assert (number["type"], number["minimum"], number["maximum"]) == ("integer", low, high)
        assert string["type"] == "string"
        for value, accepted in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            assert bool(re.search(string["pattern"], str(value))) is accepted, (currency, value)
            assert bool(re.search(string["pattern"], f"{value}.00")) is accepted, (currency, value)
        assert not re.search(string["pattern"], f"{low}.50")  # whole amounts only (every provider today)
        phone = props["phone_number"].get("anyOf", [props["phone_number"]])[0]  # optional: or ""
        assert phone["maxLength"] == 32 and phone["pattern"]
        assert ("phone_number" in variant["required"]) is (props.get("channel", {}).get("enum") != ["card"])
        for field, limit in (("name", 200), ("message", 1000), ("email", 254)):
            assert props[field]["anyOf"][0]["maxLength"] == limit
        assert props["patient"]["maxLength"] == 20


def test_a_required_string_states_that_blank_and_nul_are_refused(schema):
    token = schema["components"]["schemas"]["TokenObtainPair"]["properties"]
    assert token["username"]["pattern"] == NOT_BLANK_PATTERN
    register = schema["components"]["schemas"]["DonorRegisterInput"]["properties"]
    assert register["password"]["minLength"] == 8  # Django's MinimumLengthValidator, as configured
    for text, refused in (("", True), (" \t\u3000", True), ("a\x00", True), (" a ", False)):
        assert (re.search(NOT_BLANK_PATTERN, text) is None) is refused, repr(text)
    eight = trimmed_length_pattern(8)
    assert re.search(eight, " abcdefgh ") and not re.search(eight, "  abcdefg  ")


@pytest.mark.parametrize(("low", "high"), [(0, 0), (1, 9), (7, 123), (10, 250_000), (500, 10_000_000), (95, 1005)])
def test_integer_range_pattern_matches_exactly_the_range(low, high):
    pattern = re.compile(f"^(?:{integer_range_pattern(low, high)})$")
    probes = {*range(max(0, low - 50), min(high, low + 2000) + 1), *range(max(low, high - 2000), high + 50)}
    probes |= {0, 10 ** len(str(high)), high * 10}
    for n in probes:
        assert bool(pattern.match(str(n))) is (low <= n <= high), n
    if low > 0:
        assert not pattern.match(f"0{low}")  # no leading zeros


def test_amount_schema_with_cents_keeps_the_top_exact():
    string = amount_schema(Decimal("1"), Decimal("50000"), whole=False)["oneOf"][1]["pattern"]
    assert re.search(string, "1.05") and re.search(string, "49999.99") and re.search(string, "50000.00")
    assert not re.search(string, "50000.01") and not re.search(string, "0.99") and not re.search(string, "1.005")


@pytest.mark.parametrize("region", ["TZ", "KE", "UG"])
def test_every_phone_the_pattern_matches_is_accepted(region):
    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(st.from_regex(mobile_number_pattern(region)))
    def accepted(number):
        normalize_msisdn(number, region=region)  # raises InvalidPhoneNumber if the schema promised too much

    accepted()


# --- What the fuzz run found, pinned ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("azampay_settings")
def test_a_255_character_idempotency_key_is_stored_and_replayed(api_client, azam):
    """Its stored form ("donation:" + key) was longer than the column: MariaDB answered 500."""
    checkout = azam.post(MNO_URL, json=fixture("mno_checkout_success.json"))
    body = {
        "amount": "5000",
        "currency": "TZS",
        "provider": "azampay",
        "channel": "Mpesa",
        "phone_number": "0712345678",
    }
    key = "k" * 255
    first = api_client.post(DONATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    second = api_client.post(DONATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == second.status_code == 201, first.json()
    assert second.json() == first.json() and checkout.call_count == 1
    (stored,) = IdempotencyRecord.objects.values_list("key", flat=True)
    assert stored.startswith("donation:sha256:") and len(stored) <= 255


@pytest.mark.django_db
@pytest.mark.usefixtures("azampay_settings")
def test_a_bank_donation_without_a_known_bank_is_a_400_before_anything_is_created(api_client, azam):
    """It was a 502 after a failed donation was created (the adapter refused it)."""
    body = {"amount": "5000", "currency": "TZS", "provider": "azampay", "channel": "bank", "phone_number": "0712345678"}
    response = api_client.post(DONATIONS, {**body, "bank": "Barclays"}, format="json")
    assert response.status_code == 400 and response.json()["errors"]["bank"] == ["Choose CRDB or NMB."]
    assert not azam.calls
    from donor.models import Donation

    assert not Donation.objects.exists()


@pytest.mark.django_db
def test_an_empty_donation_body_is_refused(api_client):
    response = api_client.post(DONATIONS, {}, format="json")
    assert response.status_code == 400 and {"amount", "currency", "provider"} <= set(response.json()["errors"])


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page=", "page=1&page=2", "page=1.0", "page=x"])
def test_a_page_that_is_not_one_whole_number_is_a_404(api_client, query):
    """DRF answered 200 for `?page=` (as page 1) and for a repeated page (its last value)."""
    response = api_client.get(f"/api/v1.0/patients/?{query}")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert api_client.get("/api/v1.0/patients/?page=1").status_code == 200


def test_the_page_parameter_is_documented_from_1(schema):
    for path in ("/api/v1.0/patients/", "/api/v1.0/donors/me/donations/"):
        (page,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "page"]
        assert page["schema"] == {"type": "integer", "minimum": 1}
