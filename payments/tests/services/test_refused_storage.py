"""What an unauthenticated sender can make us store is bounded (issue 18, item 6): a delivery judged forged on its
bytes, or over the rate limit with nothing in it a person or the sweeper could use, keeps a fixed-size record
(digest, size, client, verdict) and adds to its client's count of the day; only authentic (throttled: test_inbox.py)
or undecidable deliveries keep their body, and nothing that may report real money is dropped. Through the real
callback URLs; the measure is what is stored (body, headers, error), never time."""

import json
from decimal import Decimal

import pytest
from django.test import Client

from donor.models import Donation
from payments.models import CallbackEvent, CallbackRefusal
from payments.tests.azampay_fakes import CALLBACK_URL, callback_body
from payments.tests.drivers import DRIVERS
from payments.tests.factories import PaymentFactory
from payments.tests.helpers import run_together
from payments.tests.mpesa_fakes import ACK, C2B_TOKEN
from payments.tests.mpesa_fakes import fixture as mpesa_fixture
from payments.url_tokens import new_url_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("azampay_settings", "mpesa_settings")]

PADDING = "x" * 60_000  # a forger's body can be nearly CALLBACK_MAX_BODY_BYTES (64 KiB)
RECORD_BUDGET = 1024  # what one refused delivery may cost us, body, headers and error together


def stored_bytes(event: CallbackEvent) -> int:
    return len(event.body.encode()) + len(json.dumps(event.headers)) + len(event.error.encode())


def forged(rail) -> tuple[str, bytes]:
    """The first of the provider driver's forgeries, padded to nearly the body limit."""
    payment = rail.payment()
    url, body = next(iter(rail.forgeries(payment).values()))
    return url, json.dumps((json.loads(body) if isinstance(body, bytes) else body) | {"padding": PADDING}).encode()


AT_ONCE = pytest.param("azampay", 20, 100, marks=[pytest.mark.mysql, pytest.mark.django_db(transaction=True)],
                       id="azampay-20-at-once")  # fmt: skip
PAST_THE_CAP = pytest.param("azampay", 30, 5, id="azampay-past-the-daily-cap")  # only the count grows past it
DEFAULT_CAP = 100  # CALLBACK_REFUSED_RECORDS_PER_CLIENT


@pytest.mark.parametrize(
    ("rail", "count", "cap"), [*((code, 50, DEFAULT_CAP) for code in DRIVERS), AT_ONCE, PAST_THE_CAP], indirect=["rail"]
)
def test_forged_callbacks_one_by_one_or_at_once_add_a_small_bounded_amount_of_storage(rail, settings, count, cap):
    """At once (a real MariaDB), the first ones race to create the client's row of the day. Past the client's daily
    cap of records, a forgery only adds to its count."""
    settings.CALLBACK_REFUSED_RECORDS_PER_CLIENT = cap
    path, body = forged(rail)

    def send() -> int:
        client = Client(REMOTE_ADDR="203.0.113.9")  # one each: at once, each thread has its own
        return getattr(client, rail.method)(path, data=body, content_type="application/json").status_code

    answers = run_together([send] * count) if count == 20 else [send() for _ in range(count)]

    assert answers == [401] * count  # each still refused at once, in the error shape
    events = list(CallbackEvent.objects.all())
    assert len(events) == min(count, cap)
    assert sum(len(event.body) for event in events) == 0  # 60 KiB bodies: not one byte kept
    assert max(stored_bytes(event) for event in events) <= RECORD_BUDGET
    for event in events:  # what is kept says what it was
        assert (event.body_kept, event.body_size, event.client_ip) == (False, len(body), "203.0.113.9")
        assert event.status == CallbackEvent.Status.REJECTED and event.trust == "rejected"
        assert len(event.body_digest) == 64
    refusals = CallbackRefusal.objects.get()
    assert (refusals.client_ip, refusals.provider, refusals.count, refusals.bytes) == (
        "203.0.113.9", rail.code, count, count * len(body))  # fmt: skip


def test_over_the_rate_limit_an_unauthenticated_payment_callback_keeps_only_a_record(
    settings, no_callback_password, azam
):
    """No callback password: the callback is only a reason to ask. Throttled, its body is of no use (the payment
    is on the reconciliation ladder, and AzamPay resends), so only the record is kept."""
    settings.WEBHOOK_RATE_LIMIT_PER_MINUTE = 1
    payment = PaymentFactory(donation__amount=Decimal("5000"))
    azam.get("https://sandbox.azampay.co.tz/azampay/gettransactionstatus", json={"data": "Transaction pending."})
    client = Client(REMOTE_ADDR="192.0.2.1")
    body = callback_body(payment, password=None, padding=PADDING)
    answers = [client.post(CALLBACK_URL, data=body, content_type="application/json").status_code for _ in range(20)]

    assert answers == [200] + [429] * 19
    kept = CallbackEvent.objects.filter(body_kept=True)
    assert kept.count() == 1  # the one within the limit
    throttled = CallbackEvent.objects.filter(body_kept=False)
    assert throttled.count() == 19 and sum(len(e.body) for e in throttled) == 0
    assert all(e.trust == "unverified" and e.status == CallbackEvent.Status.REJECTED for e in throttled)
    assert CallbackRefusal.objects.get(client_ip="192.0.2.1").count == 19


def paybill_confirmation() -> bytes:
    return json.dumps(mpesa_fixture("c2b_confirmation_hashed_msisdn.json")).encode()


@pytest.mark.parametrize(
    ("path", "limit", "answer", "verdict"),
    [
        ("/webhooks/mpesa/c2b/confirmation/", 0, 429, CallbackEvent.Status.RECEIVED),  # no secret, over the limit
        ("/webhooks/mpesa/c2b/confirmation/", 1000, 200, CallbackEvent.Status.REVIEW),  # no secret: held for review
        (f"/webhooks/mpesa/c2b/confirmation/{new_url_token()}/", 1000, 401, CallbackEvent.Status.REJECTED),
        (f"/webhooks/mpesa/c2b/confirmation/{C2B_TOKEN}/", 0, 429, CallbackEvent.Status.RECEIVED),  # the right one
    ],
    ids=["no-secret-throttled", "no-secret", "wrong-secret", "right-secret-throttled"],
)
def test_a_paybill_confirmation_is_always_kept_whole(paybill_rules, path, limit, answer, verdict):
    """The money already moved and no query can confirm it: whatever we make of it, a person can read it; nothing
    is credited off its secret URL (a wrong one refused, none held for review) or over the limit."""
    paybill_rules.WEBHOOK_RATE_LIMIT_PER_MINUTE = limit
    body = paybill_confirmation()
    response = Client().post(path, data=body, content_type="application/json")

    assert response.status_code == answer
    assert answer != 401 or response.json()["code"] == "AUTH_REQUIRED"
    assert answer != 200 or response.json() == ACK
    event = CallbackEvent.objects.get()
    assert event.status == verdict
    assert event.body_kept and json.loads(event.body)["TransID"] == json.loads(body)["TransID"]
    assert not CallbackRefusal.objects.exists() and not Donation.objects.exists()
