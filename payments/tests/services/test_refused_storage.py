"""What an unauthenticated sender can make us store is bounded (issue 18, item 6): a delivery judged forged on its
bytes, or over the rate limit with nothing in it a person or the sweeper could use, keeps a fixed-size record
(digest, size, client, verdict) and adds to its client's count of the day; only authentic (throttled: test_inbox.py)
or undecidable deliveries keep their body, and nothing that may report real money is dropped. Through the real
callback URLs; the measure is what is stored (body, headers, error), never time."""

import json

import pytest
from django.test import Client

from donor.models import Donation
from payments.models import CallbackEvent, CallbackRefusal
from payments.tests.drivers import DRIVERS
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import ACK, C2B_TOKEN, raw_fixture
from payments.url_tokens import new_url_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings", "mpesa_settings")]

PADDING = "x" * 60_000  # a forger's body can be nearly CALLBACK_MAX_BODY_BYTES (64 KiB)
RECORD_BUDGET = 1024  # what one refused delivery may cost us, body, headers and error together


def sent(rail, settings, what: str) -> tuple[str, bytes, int, str]:
    """(URL, body padded to nearly the body limit, our answer, the verdict): the first of the provider driver's
    forgeries; or, with no secret configured (a callback only a reason to ask), one without it over the rate
    limit: its body is of no use (the payment is on the reconciliation ladder, and the provider resends)."""
    payment = rail.payment()
    if what.startswith("forged"):
        url, body = next(iter(rail.forgeries(payment).values()))
        answer, trust = 401, "rejected"
    else:
        providers = settings.PAYMENT_PROVIDERS
        settings.PAYMENT_PROVIDERS = {**providers, rail.code: {**providers[rail.code], rail.secret_setting: ""}}
        settings.WEBHOOK_RATE_LIMIT_PER_MINUTE = 0
        url, body, answer, trust = rail.secret_url(payment), rail.unsigned_body(payment), 429, "unverified"
    padded = (json.loads(body) if isinstance(body, bytes) else body) | {"padding": PADDING}
    return url, json.dumps(padded).encode(), answer, trust


DEFAULT_CAP = 100  # CALLBACK_REFUSED_RECORDS_PER_CLIENT
AT_ONCE = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]
SECRET_IN_BODIES = [code for code, driver in DRIVERS.items() if driver.secret_setting]
CASES = [
    *(pytest.param(code, 50, DEFAULT_CAP, "forged", id=f"{code}-forged") for code in DRIVERS),
    pytest.param("azampay", 20, DEFAULT_CAP, "forged-at-once", marks=AT_ONCE, id="azampay-forged-20-at-once"),
    pytest.param("azampay", 30, 5, "forged", id="azampay-forged-past-the-daily-cap"),  # only the count grows past it
    *(pytest.param(code, 20, DEFAULT_CAP, "unsigned", id=f"{code}-unsigned-throttled") for code in SECRET_IN_BODIES),
]


@pytest.mark.parametrize(("rail", "count", "cap", "what"), CASES, indirect=["rail"])
def test_refused_callbacks_one_by_one_or_at_once_add_a_small_bounded_amount_of_storage(
    rail, settings, count, cap, what
):
    """At once (a real MariaDB), the first ones race to create the client's row of the day. Past the client's daily
    cap of records, a forgery only adds to its count. So does a throttled one that proves nothing."""
    settings.CALLBACK_REFUSED_RECORDS_PER_CLIENT = cap
    path, body, answer, trust = sent(rail, settings, what)

    def send() -> int:
        client = Client(REMOTE_ADDR="203.0.113.9")  # one each: at once, each thread has its own
        return getattr(client, rail.method)(path, data=body, content_type="application/json").status_code

    answers = run_together([send] * count) if what == "forged-at-once" else [send() for _ in range(count)]

    assert answers == [answer] * count  # each still refused at once, in the error shape
    events = list(CallbackEvent.objects.all())
    assert len(events) == min(count, cap)
    assert sum(len(event.body) for event in events) == 0  # 60 KiB bodies: not one byte kept
    for event in events:  # what is kept says what it was
        assert (event.body_kept, event.body_size, event.client_ip) == (False, len(body), "203.0.113.9")
        assert event.status == CallbackEvent.Status.REJECTED and event.trust == trust
        assert len(event.body_digest) == 64
        assert len(event.body.encode()) + len(json.dumps(event.headers)) + len(event.error.encode()) <= RECORD_BUDGET
    refusals = CallbackRefusal.objects.get()
    assert (refusals.client_ip, refusals.provider, refusals.count, refusals.bytes) == (
        "203.0.113.9", rail.code, count, count * len(body))  # fmt: skip


KEPT_WHOLE = {  # the URL and its rate limit → our answer, the event's status
    "no-secret-throttled": ("/webhooks/mpesa/c2b/confirmation/", 0, 429, CallbackEvent.Status.RECEIVED),
    "no-secret": ("/webhooks/mpesa/c2b/confirmation/", 1000, 200, CallbackEvent.Status.REVIEW),  # held for review
    "wrong-secret": (f"/webhooks/mpesa/c2b/confirmation/{new_url_token()}/", 1000, 401, CallbackEvent.Status.REJECTED),
    "right-secret-throttled": (f"/webhooks/mpesa/c2b/confirmation/{C2B_TOKEN}/", 0, 429, CallbackEvent.Status.RECEIVED),
}


@pytest.mark.parametrize(("path", "limit", "answer", "verdict"), KEPT_WHOLE.values(), ids=KEPT_WHOLE)
def test_a_paybill_confirmation_is_always_kept_whole(paybill_rules, path, limit, answer, verdict):
    """The money already moved and no query can confirm it: whatever we make of it, a person can read it; nothing
    is credited off its secret URL (a wrong one refused, none held for review) or over the limit."""
    paybill_rules.WEBHOOK_RATE_LIMIT_PER_MINUTE = limit
    body = raw_fixture("c2b_confirmation_hashed_msisdn.json")
    response = Client().post(path, data=body, content_type="application/json")

    assert response.status_code == answer
    assert answer != 401 or response.json()["code"] == "AUTH_REQUIRED"
    assert answer != 200 or response.json() == ACK
    event = CallbackEvent.objects.get()
    assert event.status == verdict
    assert event.body_kept and json.loads(event.body)["TransID"] == json.loads(body)["TransID"]
    assert not CallbackRefusal.objects.exists() and not Donation.objects.exists()
