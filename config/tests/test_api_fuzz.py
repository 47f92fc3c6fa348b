"""A schema-driven fuzz run of the JSON API: schemathesis generates requests from /api/schema/ (valid ones and
invalid ones) and checks every answer against the same schema.

It runs in-process against the WSGI application (no port, no thread), on whatever database the suite runs on
(SQLite, or MariaDB with DATABASE_URL). The providers' far sides are `responses` mocks answering "accepted", so
the 201 path of a donation is exercised for every provider; nothing reaches the network (an unmocked URL is a
ConnectionError). Bounded and derandomized: the same cases on every run, well under a minute on two cores.

The checks: no 5xx; every status is documented for its operation; every body and Content-Type conforms to the
schema; a request the schema calls valid is not refused (400/422); one it calls invalid is not accepted. Three
things the server knows and no schema can state are supplied here, not weakened in the checks: a donation names
one of the patients seeded here (in its currency) or the general fund, an Idempotency-Key is not reused for
another body, and a registration's username and email are new. The only refusals of valid data tolerated are
Django's password validators (common, similar to the username, all digits; never "too short": the schema says
that) and the phone rules of a registration (any country's number is taken there): SERVER_ONLY_RULES.
"""

import copy
import hashlib
import json
from decimal import Decimal
from itertools import count

import pytest
import responses
import schemathesis
from django.contrib.auth.password_validation import MinimumLengthValidator
from django.core import signals
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from donor.apis import password_min_length
from donor.tests.factories import DonationFactory
from patients.tests.factories import PatientFactory
from payments.tests import azampay_fakes, mpesa_fakes
from payments.tests.factories import PaymentFactory
from payments.tests.providers.airtel import support as airtel
from payments.tests.providers.mtn import support as mtn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings", "mpesa_settings")]

MAX_EXAMPLES = 20
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "phases": {"stateful": {"enabled": False}},
    }
)
# Operation → request fields whose refusal depends on rules only the server can apply.
SERVER_ONLY_RULES = {"POST /api/v1.0/donors/register/": {"password", "phone_number"}}
PATIENTS = {"TZS": "FUZZ-TZS", "KES": "FUZZ-KES", "UGX": "FUZZ-UGX", "EUR": "FUZZ-EUR"}


@pytest.fixture(autouse=True)
def _requests_keep_the_test_connection():
    """What Django's test client does: a request's end must not close the connection the test transaction is on."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def far_sides(settings):
    """Every provider's charge and status calls answered as accepted/pending; anything else unmocked."""
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mtn": {**settings.PAYMENT_PROVIDERS["mtn"], **{k: v for k, v in mtn.KWARGS.items() if k != "currency"}},
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], **airtel.KWARGS},
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(azampay_fakes.TOKEN_URL, json=azampay_fakes.fixture("token_success.json"))
        accept(mock, azampay_fakes.MNO_URL, azampay_fakes.fixture("mno_checkout_success.json"), "transactionId")
        accept(
            mock,
            azampay_fakes.BANK_URL,
            azampay_fakes.fixture("bank_checkout_success.json"),
            "data",
            "properties",
            "ReferenceID",
        )
        mock.post(
            azampay_fakes.POST_CHECKOUT_URL,
            body=azampay_fakes.fixture("post_checkout_url.json"),
            content_type="text/plain",
        )
        mock.get(azampay_fakes.STATUS_URL, json=azampay_fakes.fixture("status_success.json"))
        mock.get(mpesa_fakes.TOKEN_URL, json=mpesa_fakes.fixture("token_success.json"))
        accept(mock, mpesa_fakes.STK_URL, mpesa_fakes.fixture("stkpush_accepted.json"), "CheckoutRequestID")
        mock.post(f"{mtn.API}/collection/token/", json=mtn.fixture("token_success.json"))
        mock.post(f"{mtn.API}/collection/v1_0/requesttopay", status=202)
        mock.post(airtel.TOKEN_URL, json=airtel.fixture("token_success.json"))
        accept(mock, airtel.PUSH_V1_URL, airtel.fixture("push_accepted.json"), "data", "transaction", "id")
        yield mock


def accept(mock: responses.RequestsMock, url: str, answer: dict, *id_path: str) -> None:
    """`url` answers `answer`, with a provider id of its own each time (at id_path), as a real provider does."""
    ids = count(1)

    def reply(request):
        body = copy.deepcopy(answer)
        node = body
        for key in id_path[:-1]:
            node = node[key]
        node[id_path[-1]] = f"{node[id_path[-1]]}{next(ids)}"
        return 200, {}, json.dumps(body)

    mock.add_callback(responses.POST, url, callback=reply, content_type="application/json")


@pytest.fixture
def world(far_sides, donor_user, settings):
    """What the generated requests may name: a patient per currency, a donation with an open payment, a donor."""
    cache.clear()  # rate-limit counters
    # Every generated request reaches its view (the limits have their own tests: config/tests/test_rate_limits.py).
    for limit in ("DONATE", "DONATE_PHONE", "LOGIN", "REGISTER", "STATUS", "REFRESH"):
        setattr(settings, f"{limit}_RATE_LIMIT_PER_MINUTE", 100_000)
    for currency, code in PATIENTS.items():
        PatientFactory(code=code, currency=currency, funding_goal=Decimal("100000000"))
    payment = PaymentFactory(donation=DonationFactory(patient=None, currency="TZS"))
    token = str(RefreshToken.for_user(donor_user).access_token)
    return {"reference": payment.donation.reference, "patient": PATIENTS["TZS"], "token": token}


# Loaded once, at collection, from the WSGI application (the settings it depends on are the suite's own).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=CONFIG)
_unique = count()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_as_its_schema_says(case, world):
    supply_what_only_the_server_knows(case, world)
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            positive_data_accepted,
            negative_data_rejection,
        ]
    )


def supply_what_only_the_server_knows(case, world) -> None:
    label = f"{case.method} {case.operation.path}"
    body = case.body if isinstance(case.body, dict) else None
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if (
        label in ("POST /api/v1.0/donors/donations/", "POST /api/v1.0/donors/pledges/")
        and body is not None
        and positive
    ):
        if body.get("patient") is not None:
            body["patient"] = PATIENTS.get(str(body.get("currency")), world["patient"])
    elif label == "POST /api/v1.0/donors/register/" and body is not None and positive:
        n = next(_unique)
        if isinstance(body.get("username"), str):
            body["username"] = f"{body['username'][:140]}{n}"
        if isinstance(body.get("email"), str) and "@" in body["email"]:
            body["email"] = f"u{n}{body['email']}"[-254:]
    key = (case.headers or {}).get("Idempotency-Key")
    if key and key.strip() and len(key) <= 255:  # one key, one body: a key reused for another body is a 422
        digest = hashlib.sha256(repr(case.body).encode()).hexdigest()[:16]
        case.headers["Idempotency-Key"] = f"{key[: 255 - 17]}-{digest}"
    if "reference" in (case.path_parameters or {}) and _half(case.path_parameters["reference"]):
        case.path_parameters["reference"] = world["reference"]
    if "code" in (case.path_parameters or {}) and _half(case.path_parameters["code"]):
        case.path_parameters["code"] = world["patient"]
    if case.operation.path == "/api/v1.0/donors/me/donations/" and _half(str(case.query)):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {world['token']}"}


def _half(value) -> bool:
    """Deterministically true for about half the generated values: the rest stay as generated (→ 404/401)."""
    return hashlib.sha256(str(value).encode()).digest()[0] % 2 == 0


def positive_data_accepted(ctx, response, case):
    """schemathesis' positive_data_acceptance, except for refusals on SERVER_ONLY_RULES fields (and never for
    a password too short: the schema states that one)."""
    label = f"{case.method} {case.operation.path}"
    if response.status_code == 400 and label in SERVER_ONLY_RULES:
        errors = (json.loads(response.content or b"{}") or {}).get("errors", {})
        if errors and set(errors) <= SERVER_ONLY_RULES[label] and TOO_SHORT not in errors.get("password", []):
            return None
    return positive_data_acceptance(ctx, response, case)


def _too_short_message() -> str:
    try:
        MinimumLengthValidator(password_min_length()).validate("")
    except ValidationError as error:
        return error.messages[0]
    return ""


TOO_SHORT = _too_short_message()
