"""M-Pesa's own ways (the shared properties are test_pipeline.py's): Daraja's query carries no amount, the
trust setting (on the secret URL and the neutral STK path), the IP allowlist, the same body on an alias, the deploy
checks. MariaDB: trusted secret-URL callbacks at once."""

import json
from decimal import Decimal

import pytest

from donor.models import Allocation
from payments.models import CallbackEvent, Payment
from payments.tests.drivers import THREADS, Mpesa, deliver, driver_fixtures
from payments.tests.factories import token_for
from payments.tests.helpers import credited, poster, run_together
from payments.tests.mpesa_fakes import ACK

pytestmark = pytest.mark.django_db

AT_ONCE = [pytest.mark.mysql, pytest.mark.django_db(transaction=True)]

rail, payment = driver_fixtures(Mpesa)


def test_the_same_body_on_an_alias_is_the_same_delivery(rail, payment):
    rail.says_paid(payment)
    body = json.dumps(rail.success_body(payment)).encode()
    assert deliver("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert deliver("/mpesa/callback", body) == (200, ACK)  # same kind on the alias: still the same delivery
    assert Allocation.objects.count() == 1
    assert CallbackEvent.objects.filter(status=CallbackEvent.Status.DUPLICATE).count() == 1


def test_a_callback_claiming_another_amount_credits_what_was_asked_and_says_so(rail, payment):
    """Daraja's STK query carries no amount: the query's word (paid) applies to the amount we asked for, and the
    stored event keeps the contradiction for whoever looks at it."""
    rail.says_paid(payment)
    body = rail.success_body(payment)
    items = body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    next(item for item in items if item["Name"] == "Amount")["Value"] = 1000
    assert deliver("/webhooks/mpesa/stkpush/", body) == (200, ACK)
    assert credited(payment) == Decimal("1.00")
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.PROCESSED
    assert event.error == "callback claimed 1000, we asked 1.00; the provider's answer was applied"


@pytest.mark.parametrize("copies", [1, pytest.param(THREADS, marks=AT_ONCE, id="at-once")])
@pytest.mark.parametrize("path", [Mpesa.callback_path, "/webhooks/stk/"], ids=["secret-url", "neutral-stk-path"])
def test_trust_setting_applies_token_url_callbacks_once_without_query(rail, payment, settings, path, copies):
    settings.PAYMENT_PROVIDERS["mpesa"]["trust_callbacks"] = True
    path, data = f"{path}{token_for(payment)}/", rail.success_body(payment)  # neutral: for a CALLBACK_URL override
    posts = [poster(path, json.dumps(data, indent=i or None).encode()) for i in range(copies)]
    assert (run_together(posts) if copies > 1 else [posts[0]()]) == [(200, ACK)] * copies  # at once: own connections
    payment.refresh_from_db()
    assert (payment.status, payment.receipt) == (Payment.Status.SUCCEEDED, "NLJ7RT61SV")
    assert credited(payment) == Decimal("1.00") and Allocation.objects.count() == 1
    assert rail.asked() == 0


@pytest.mark.parametrize("strict", [True, False], ids=["strict-rejects", "soft-only-logs"])
def test_an_ip_allowlist_rejects_other_sources_or_when_soft_only_logs(rail, payment, settings, caplog, strict):
    settings.PAYMENT_PROVIDERS["mpesa"]["allowed_ips"] = ["196.201.214.200"]
    settings.PAYMENT_PROVIDERS["mpesa"]["ip_allowlist_strict"] = strict
    rail.says_paid(payment)
    status, _ = deliver("/webhooks/mpesa/stkpush/", rail.success_body(payment))  # the test client is 127.0.0.1
    payment.refresh_from_db()
    if strict:
        assert status == 401 and CallbackEvent.objects.get().status == CallbackEvent.Status.REJECTED
        return
    assert status == 200 and "not in MPESA_ALLOWED_IPS" in caplog.text
    assert payment.status == Payment.Status.SUCCEEDED


def test_query_about_another_checkout_id_is_held_for_review(rail, payment):
    rail.answer("query_success.json", CheckoutRequestID="ws_CO_13012021093521236557")  # the sample's own
    assert deliver("/webhooks/mpesa/stkpush/", rail.success_body(payment)) == (200, ACK)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW


def test_deploy_checks_warn_about_weak_mpesa_policy(rail, settings):
    from payments.checks import callback_trust_policy

    warnings = {f"payments.W00{number}" for number in range(3, 8)}
    mpesa = settings.PAYMENT_PROVIDERS["mpesa"]  # the rail's own copy of the settings
    mpesa.update(trust_callbacks=True, allowed_ips=[], callback_url="", c2b_token="", b2c_token="")
    settings.SITE_URL = "http://donate.example.org"
    assert warnings <= {problem.id for problem in callback_trust_policy(None)}
    mpesa.update(trust_callbacks=False, allowed_ips=["196.201.214.200"], c2b_token="a", b2c_token="b")
    settings.SITE_URL = "https://donate.example.org"
    assert not warnings & {problem.id for problem in callback_trust_policy(None)}
