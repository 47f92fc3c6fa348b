"""What every payout and refund result callback must do, written once and run for each rail's driver
(payments/tests/drivers.py: MONEY_OUT). Each rail's own ways are in test_quirks_<code>.py, test_payouts.py and
test_refunds.py."""

import pytest

from payments.models import AuditEntry, CallbackEvent
from payments.services.dispatch import money_out_apply_held
from payments.services.watchdog import watchdog_alerts
from payments.tests.drivers import MONEY_OUT, THREADS, cases, deliver, deliver_together, encode, statuses
from payments.tests.factories import staff_user

pytestmark = pytest.mark.django_db

AT_ONCE = pytest.param(True, marks=[pytest.mark.mysql, pytest.mark.django_db(transaction=True)], id="at-once")


@pytest.mark.parametrize("ambiguous", [False, True], ids=["sent", "ambiguous"])  # ambiguous: its send timed out
@pytest.mark.parametrize("rail", MONEY_OUT, indirect=True)
def test_a_confirmed_result_settles_once(rail, ambiguous):
    subject = rail.subject()
    if ambiguous:
        type(subject).objects.filter(pk=subject.pk).update(status=type(subject).Status.AMBIGUOUS, needs_review=True)
    rail.says_paid()
    assert deliver(rail.result_path, rail.success_body(subject), method=rail.method) == (200, rail.ack)

    rail.settled_once(subject)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.PROCESSED
    assert rail.asked() == (0 if rail.trusted else 1)


@pytest.mark.parametrize("at_once", [False, AT_ONCE], ids=["one-by-one", "at-once"])
@pytest.mark.parametrize("reencoded", [False, True], ids=["same-bytes", "re-encoded"])
@pytest.mark.parametrize("rail", MONEY_OUT, indirect=True)
def test_copies_of_one_result_settle_once(rail, reencoded, at_once):
    subject = rail.subject()
    rail.says_paid()
    data = rail.success_body(subject)
    count = THREADS if at_once else 3
    copies = [
        (rail.methods[i % len(rail.methods)], rail.result_path, encode(data, indent=(i or None) if reencoded else None))
        for i in range(count)
    ]
    if at_once:
        answers = deliver_together(copies)
    else:
        answers = [deliver(path, body, method=method) for method, path, body in copies]

    assert answers == [(200, rail.ack)] * count
    rail.settled_once(subject)
    found = statuses()
    assert found.count(CallbackEvent.Status.PROCESSED) == 1
    repeats = set(found) - {CallbackEvent.Status.PROCESSED}  # "already settled": nobody asked to look
    if at_once:  # copies arriving while the first is handled find it done under the lock; later ones are duplicates
        assert repeats <= {CallbackEvent.Status.DUPLICATE, CallbackEvent.Status.IGNORED}
    else:
        assert repeats == {CallbackEvent.Status.IGNORED if reencoded else CallbackEvent.Status.DUPLICATE}


@pytest.mark.parametrize(
    ("rail", "answer"), cases(lambda d: d.unsure, where=lambda d: not d.trusted, drivers=MONEY_OUT), indirect=["rail"]
)
def test_a_result_the_status_query_does_not_confirm_is_held_for_review(rail, answer):
    subject = rail.subject()
    rail.answer(answer)
    assert deliver(rail.result_path, rail.success_body(subject), method=rail.method) == (200, rail.ack)

    rail.untouched(subject)
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
    assert rail.asked() == 1


@pytest.mark.parametrize("says", ["success", "failure"])  # a forged failure would free the money to pay twice
@pytest.mark.parametrize("rail", [code for code, d in MONEY_OUT.items() if d.trusted], indirect=True)
def test_with_trust_off_a_result_is_held_until_a_person_applies_it(rail, settings, says):
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = False
    subject = rail.subject()
    body = getattr(rail, f"{says}_body")(subject)
    assert deliver(rail.result_path, body, method=rail.method) == (200, rail.ack)

    rail.untouched(subject)
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REVIEW
    assert any(f"1 {rail.kind} result(s) held" in alert for alert in watchdog_alerts())
    if says == "success":  # a person applies it, after checking the provider's portal: once, audited
        checker = staff_user("applier", f"payments.resolve_{rail.kind}")
        assert money_out_apply_held(event_id=event.pk, applied_by=checker).pk == subject.pk
        rail.settled_once(subject)
        assert AuditEntry.objects.filter(action=f"{rail.kind}.apply_result", actor=checker).exists()
        event.refresh_from_db()
        assert event.status == CallbackEvent.Status.PROCESSED


@pytest.mark.parametrize("rail", [code for code, d in MONEY_OUT.items() if d.timeout_path], indirect=True)
def test_a_queue_timeout_makes_it_ambiguous_and_its_result_then_settles_it_once(rail):
    subject = rail.subject()
    assert deliver(rail.timeout_path, rail.queue_timeout_body(subject)) == (200, rail.ack)
    subject.refresh_from_db()
    assert subject.status == type(subject).Status.AMBIGUOUS and subject.needs_review
    for _ in range(2):  # the second is a duplicate
        assert deliver(rail.result_path, rail.success_body(subject)) == (200, rail.ack)
        rail.settled_once(subject)
    assert rail.calls() == 0  # never sent again


@pytest.mark.parametrize("rail", [code for code, d in MONEY_OUT.items() if "other_amount" in d.__dict__], indirect=True)
def test_a_result_for_another_amount_is_held_for_review(rail):
    subject = rail.subject()
    body = rail.other_amount(subject)
    assert deliver(rail.result_path, body, method=rail.method) == (200, rail.ack)

    rail.untouched(subject)
    subject.refresh_from_db()
    assert subject.needs_review and rail.another_amount in subject.result_desc
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


FORGED = [pytest.param(code, None, id=f"{code}-forged") for code in MONEY_OUT]


@pytest.mark.parametrize(("rail", "body"), FORGED + cases(lambda d: d.malformed, drivers=MONEY_OUT), indirect=["rail"])
def test_a_forged_result_is_a_401_a_malformed_one_a_400_both_kept_and_nothing_is_asked(rail, body):
    subject = rail.subject()
    forged = body is None
    url, body = (rail.forged_url(), rail.forged_body(subject)) if forged else (rail.result_path, body)
    status, answer = deliver(url, body, method=rail.method)

    assert (status, answer["code"]) == ((401, "AUTH_REQUIRED") if forged else (400, "INVALID_FORMAT"))
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.REJECTED and event.body
    assert forged or "malformed" in event.error
    assert rail.calls() == 0
    rail.untouched(subject)


NO_RESULT_CALLBACK = {("airtel", "refund")}  # Airtel documents no refund callback (docs/providers/airtel.md)


def test_every_registered_payout_and_refund_rail_has_a_driver():
    """A fifth provider that pays out or refunds is proven by this suite from its first commit."""
    from payments.providers.base.capabilities import Payouts, Refunds
    from payments.providers.registry import PROVIDER_CLASSES

    capabilities = {"payout": Payouts, "refund": Refunds}
    wanted = {(code, kind) for code, cls in PROVIDER_CLASSES.items() for kind in capabilities
              if issubclass(cls, capabilities[kind])}  # fmt: skip
    have = {(driver.code, driver.kind) for driver in MONEY_OUT.values()}
    assert wanted - NO_RESULT_CALLBACK == have, "add a MoneyOut driver to payments/tests/drivers.py"
