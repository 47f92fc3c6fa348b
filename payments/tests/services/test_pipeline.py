"""What every provider's payment callback must do, written once and run for each provider's driver
(payments/tests/drivers.py) through the real URLs: record → authenticate → parse → attach → verify (the status
query) → apply. Only a trusted rail (AzamPay, with its callback password) is credited on its word; M-Pesa, MTN
and Airtel on their status query. Copies come one by one, and twenty at once on MariaDB (the `mysql` parameters).
Each provider's own ways are in test_quirks_<code>.py.
"""

import json

import pytest
from django.test import Client

from donor.models import Allocation, Donation
from payments.models import CallbackEvent, Payment
from payments.providers.registry import PROVIDER_CLASSES
from payments.tests.drivers import DRIVERS, THREADS, cases, deliver, deliver_together, encode, statuses
from payments.tests.helpers import credited

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"error", "message", "code"}
UNTRUSTED = {"where": lambda driver: not driver.trusted}
AT_ONCE = pytest.param(True, marks=[pytest.mark.mysql, pytest.mark.django_db(transaction=True)], id="at-once")


def test_every_registered_provider_has_a_driver():
    """A fifth provider is proven by this suite from its first commit: its driver is all it needs here."""
    assert set(PROVIDER_CLASSES) == set(DRIVERS), "add a Driver for it to payments/tests/drivers.py"


def assert_pending(payment: Payment) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert credited(payment) == 0
    assert not Allocation.objects.exists()


def assert_credited_once(rail, payment: Payment) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert credited(payment) == rail.amount
    assert Allocation.objects.filter(donation=payment.donation).count() == 1
    assert statuses().count(CallbackEvent.Status.PROCESSED) == 1


# --- credited once, on the right word ---------------------------------------------------------------------------

PATHS = cases(lambda d: {f"{name}-{m}": (url, m) for url in ("secret", *d.aliases) for m in d.methods
                         for name in [url.replace("/", "_") if url != "secret" else url]})  # fmt: skip


@pytest.mark.parametrize(("rail", "path"), PATHS, indirect=["rail"])
def test_a_confirmed_success_is_credited_once_on_every_url_it_may_come_to(rail, path, mailoutbox):
    url, method = path
    payment = rail.payment()
    rail.says_paid(payment)
    assert deliver(rail.url(payment, url), rail.success_body(payment), method=method) == (200, rail.ack)

    assert_credited_once(rail, payment)  # refreshed
    assert payment.receipt == (rail.receipt if url == "secret" or not rail.receipt_needs_secret_url else "")
    assert Donation.objects.get(pk=payment.donation_id).status == Donation.Status.COMPLETED
    assert rail.asked() == rail.calls() == (0 if rail.trusted else 1)  # trusted: its word is enough, else asked once
    event = CallbackEvent.objects.get()
    assert event.payment == payment
    assert event.trust == ("trusted" if rail.trusted else "unverified")
    assert len(mailoutbox) == (1 if payment.donation.donor.email else 0)  # the donor's receipt, once
    if mailoutbox:
        assert payment.reference in mailoutbox[0].subject and payment.receipt in mailoutbox[0].body


def answers(d) -> dict[str, tuple]:
    """Status answers about a success: unsure ones (on every URL it may come to), then the failed ones."""
    unsure = {f"{a[0] or 'unreachable'}-{a[1]}-{p.replace('/', '_')}": (*a, p, "pending", "") for a in d.unsure
              for p in ("secret", *d.aliases)}  # fmt: skip
    return unsure | {name: (name, 200, "processed", "secret", *failed) for name, *failed in d.failed}


@pytest.mark.parametrize(("rail", "answer"), cases(answers, **UNTRUSTED), indirect=["rail"])
def test_a_success_is_never_credited_on_its_word_and_a_failed_status_query_overrules_it(rail, answer):
    name, status, verdict, path, settled, reason = answer  # settled: the payment's and its donation's status
    payment = rail.payment()
    rail.answer(name, status=status)
    assert deliver(rail.url(payment, path), rail.success_body(payment), method=rail.method) == (200, rail.ack)

    payment.refresh_from_db()
    assert payment.status == settled and reason in payment.failure_reason
    assert Donation.objects.get(pk=payment.donation_id).status == settled
    assert credited(payment) == 0 and not Allocation.objects.exists()
    event = CallbackEvent.objects.get()
    assert event.status == verdict  # review: someone looks; failed: the sweeper asks again
    if verdict == CallbackEvent.Status.FAILED:
        assert event.next_attempt_at is not None and event.attempts == 1
    assert rail.asked() == 1


WITHOUT_TRUST = cases(lambda d: {f"{why}-{name}": (why, answer, verdict) for why in ("trust-off", "no-secret")
                                   for name, (answer, verdict) in {"pending": (d.pending, CallbackEvent.Status.REVIEW),
                                   "confirmed": (d.paid, CallbackEvent.Status.PROCESSED),
                                   "unreachable": (d.down, CallbackEvent.Status.FAILED)}.items()  # asked again later
                                   if (d.trusted if why == "trust-off" else d.secret_setting)})  # fmt: skip


@pytest.mark.parametrize(("rail", "answer"), WITHOUT_TRUST, indirect=["rail"])
def test_with_trusted_callbacks_off_or_no_secret_configured_a_success_is_only_a_reason_to_ask(rail, answer, settings):
    why, (name, changes), verdict = answer
    if why == "trust-off":
        settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    else:
        settings.PAYMENT_PROVIDERS[rail.code][rail.secret_setting] = ""
    payment = rail.payment()
    rail.answer(name, **changes)
    body = rail.success_body(payment) if why == "trust-off" else rail.unsigned_body(payment)
    assert deliver(rail.secret_url(payment), body, method=rail.method) == (200, rail.ack)

    event = CallbackEvent.objects.get()
    assert (event.trust, event.status) == ("trusted" if why == "trust-off" else "unverified", verdict)
    if verdict == CallbackEvent.Status.FAILED:
        assert event.next_attempt_at is not None and event.attempts == 1 and rail.asked() >= 1  # maybe again at once
    else:
        assert rail.asked() == 1
    assert_credited_once(rail, payment) if verdict == CallbackEvent.Status.PROCESSED else assert_pending(payment)


@pytest.mark.parametrize("failed", ["by-its-callback", "before-its-success"])
@pytest.mark.parametrize("rail", DRIVERS, indirect=True)
def test_a_failure_is_overruled_by_a_successful_status_query_and_a_success_after_a_failure_is_flagged(rail, failed):
    payment = rail.payment()
    flagged = failed == "before-its-success"
    if flagged:
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.FAILED)
        Donation.objects.filter(pk=payment.donation_id).update(status=Donation.Status.FAILED)
    rail.says_paid(payment)
    body = rail.success_body(payment) if flagged else rail.failure_body(payment)
    assert deliver(rail.secret_url(payment), body, method=rail.method) == (200, rail.ack)

    assert_credited_once(rail, payment)
    donation = Donation.objects.get(pk=payment.donation_id)
    assert donation.status == Donation.Status.COMPLETED
    assert payment.needs_review == donation.needs_review == flagged  # the money moved after all: someone looks
    assert rail.asked() == (0 if flagged and rail.trusted else 1)  # even a trusted failure is asked about


@pytest.mark.parametrize("rail", DRIVERS, indirect=True)
def test_a_failure_after_a_success_uncredits_nothing(rail):
    payment = rail.payment()
    rail.says_paid(payment)
    rail.answer(rail.failed[0][0])  # asked again, the far side now even says failed
    url = rail.secret_url(payment)
    assert deliver(url, rail.success_body(payment), method=rail.method) == (200, rail.ack)
    assert deliver(url, rail.failure_body(payment), method=rail.method) == (200, rail.ack)

    assert_credited_once(rail, payment)
    conflict = CallbackEvent.objects.order_by("pk").last()
    assert conflict.status in (CallbackEvent.Status.IGNORED, CallbackEvent.Status.REVIEW)
    assert "already succeeded" in conflict.error or conflict.status == CallbackEvent.Status.REVIEW


@pytest.mark.parametrize("rail", [code for code, d in DRIVERS.items() if "other_amount" in d.__dict__], indirect=True)
def test_a_success_for_another_amount_is_held_for_review(rail):
    payment = rail.payment()
    assert deliver(rail.secret_url(payment), rail.other_amount(payment), method=rail.method) == (200, rail.ack)

    assert_pending(payment)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW and "amount" in event.error


# --- copies -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("at_once", [False, AT_ONCE], ids=["one-by-one", "at-once"])
@pytest.mark.parametrize("reencoded", [False, True], ids=["same-bytes", "re-encoded"])
@pytest.mark.parametrize("rail", DRIVERS, indirect=True)
def test_copies_of_one_success_are_credited_once(rail, reencoded, at_once):
    """Same bytes share the inbox's dedup key; re-encoded copies (every URL and method it may come by) do not, so
    only the payment's row lock stands between them and a second credit."""
    payment = rail.payment()
    rail.says_paid(payment)
    data = rail.success_body(payment)
    urls = [rail.url(payment, url) for url in ("secret", *rail.aliases)]
    count = THREADS if at_once else 3
    copies = [
        (rail.methods[i % len(rail.methods)], urls[i % len(urls)] if reencoded else urls[0],
         encode(data, indent=i or None) if reencoded else encode(data))
        for i in range(count)
    ]  # fmt: skip
    if at_once:
        answers = deliver_together(copies)
    else:
        answers = [deliver(url, body, method=method) for method, url, body in copies]

    assert answers == [(200, rail.ack)] * count
    assert_credited_once(rail, payment)
    repeats = statuses()[1:] if not at_once else [s for s in statuses() if s != CallbackEvent.Status.PROCESSED]
    assert len(repeats) == count - 1
    if reencoded:
        assert set(repeats) == {CallbackEvent.Status.IGNORED}
    elif not at_once:
        assert set(repeats) == {CallbackEvent.Status.DUPLICATE}
        original = CallbackEvent.objects.order_by("pk").first()
        copies_of = CallbackEvent.objects.exclude(pk=original.pk).values_list("duplicate_of", flat=True)
        assert set(copies_of) == {original.pk}
        assert rail.asked() == (0 if rail.trusted else 1)  # the repeats were answered from the inbox
    else:  # copies arriving while the first is handled find it done under the lock; later ones are duplicates
        assert set(repeats) <= {CallbackEvent.Status.DUPLICATE, CallbackEvent.Status.IGNORED}


# --- refused: malformed, forged, unknown, wrong method -----------------------------------------------------------


@pytest.mark.parametrize(("rail", "body"), cases(lambda d: d.malformed), indirect=["rail"])
def test_a_malformed_callback_is_a_400_and_kept(rail, body):
    payment = rail.payment()
    status, answer = deliver(rail.secret_url(payment), body, method=rail.method)

    assert (status, answer["code"]) == (400, "INVALID_FORMAT") and set(answer) == ERROR_KEYS
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and "malformed" in event.error
    assert event.body  # the evidence
    if not rail.secret_in_body or body[:1] != b"{":
        assert event.body == body.decode()  # byte for byte where it holds no secret to redact
    assert rail.calls() == 0
    assert_pending(payment)


def refusals(driver):
    names = {"azampay": ["no-password", "empty", "wrong"], "airtel": [
        "wrong-secret", "no-hash", "empty-hash", "another-transactions-hash", "tampered-after-signing"]}  # fmt: skip
    return {name: name for name in [*names.get(driver.code, ["forged-url"]), "about-no-payment-of-ours"]}


@pytest.mark.parametrize(("rail", "refusal"), cases(refusals), indirect=["rail"])
def test_a_forged_callback_is_a_401_one_about_no_payment_of_ours_a_404_and_nothing_is_asked(rail, refusal):
    payment = rail.payment()
    unknown = refusal == "about-no-payment-of-ours"
    url, body = rail.unknown(payment) if unknown else rail.forgeries(payment)[refusal]
    status, answer = deliver(url, body, method=rail.method)

    assert (status, answer["code"]) == ((404, "NOT_FOUND") if unknown else (401, "AUTH_REQUIRED"))
    assert set(answer) == ERROR_KEYS
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED
    assert event.payment is None if unknown else event.trust == "rejected"
    assert rail.calls() == 0
    assert_pending(payment)


NOTICES = cases(lambda d: {f"{m}-{w}": (m, w == "forged") for m in d.methods for w in ("ours", "forged")},
                where=lambda d: bool(d.notice_kind))  # fmt: skip


@pytest.mark.parametrize(("rail", "notice"), NOTICES, indirect=["rail"])
def test_a_notice_is_stored_and_acknowledged_and_moves_nothing_and_one_on_a_forged_url_or_hash_is_a_401(rail, notice):
    method, forged = notice
    payment = rail.payment()
    url, body = rail.notice(forged)
    status, answer = deliver(url, body, method=method)

    event = CallbackEvent.objects.get()
    if forged:
        assert (status, answer["code"], event.status) == (401, "AUTH_REQUIRED", CallbackEvent.Status.REJECTED)
    else:
        assert (status, answer) == (200, rail.ack)
        assert (event.kind, event.status) == (rail.notice_kind, CallbackEvent.Status.PROCESSED)
        assert "notice" in event.error
        assert json.loads(event.body) == {k: v for k, v in body.items() if k != "hash"}  # the hash: redacted
    assert len(rail.mock.calls) == 0
    assert_pending(payment)  # a notice never moves a payment


@pytest.mark.parametrize("refused", ["get", "over-the-size-limit"])
@pytest.mark.parametrize("rail", DRIVERS, indirect=True)
def test_get_is_a_json_405_and_a_body_over_the_size_limit_a_413_and_neither_is_stored(rail, refused, settings):
    payment = rail.payment()
    if refused == "get":
        response = Client().get(rail.secret_url(payment))
        assert {method.upper() for method in rail.methods} <= set(response["Allow"].split(", "))
    else:
        body = json.dumps(rail.success_body(payment)).encode() + b" " * (settings.CALLBACK_MAX_BODY_BYTES + 1)
        response = getattr(Client(), rail.method)(rail.secret_url(payment), data=body, content_type="application/json")
    assert response.status_code == (405 if refused == "get" else 413) and set(response.json()) == ERROR_KEYS
    assert not CallbackEvent.objects.exists()
    assert_pending(payment)
