"""Wallet balances asked and kept: Daraja's Account Balance result reaches the secret result URL, goes through
the callback inbox and is recorded against its query with Decimal readings; one that never arrives expires and
is alerted; MTN's and Airtel's answer at once. A statement's closing balance is held against the reading
nearest its end. Far sides are `responses` with the shapes of docs/providers/<code>.md."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone

from finance.models import BalanceQuery, BalanceReading, Discrepancy, Statement
from finance.services.alerts import finance_alerts
from finance.services.balance import balance_query
from finance.services.close import close_month
from finance.services.imports import statement_import
from payments.models import CallbackEvent
from payments.tests.fixtures import load_fixture, raw_fixture
from payments.tests.mpesa_fakes import API, B2C_TOKEN, C2B_SHORTCODE, INITIATOR, SECURITY_CREDENTIAL

pytestmark = pytest.mark.django_db
BALANCE_URL = f"{API}/mpesa/accountbalance/v1/query"
CONVERSATION = "AG_20200123_0000417fed8ed666e976"


@pytest.fixture
def asked(mpesa_settings, daraja):
    daraja.post(BALANCE_URL, json=load_fixture("mpesa", "account_balance_accepted.json"))
    [query] = balance_query(provider="mpesa")
    return query, json.loads(daraja.calls[-1].request.body)


def test_the_daraja_query_names_our_secret_result_urls(asked):
    query, body = asked
    assert (query.status, query.conversation_id, query.account) == ("pending", CONVERSATION, "shortcode")
    assert body == {
        "Initiator": INITIATOR,
        "SecurityCredential": SECURITY_CREDENTIAL,
        "CommandID": "AccountBalance",
        "PartyA": C2B_SHORTCODE,
        "IdentifierType": "4",
        "Remarks": "Month close",
        "QueueTimeOutURL": f"https://donate.example.org/webhooks/mpesa/balance/timeout/{B2C_TOKEN}/",
        "ResultURL": f"https://donate.example.org/webhooks/mpesa/balance/result/{B2C_TOKEN}/",
    }


def test_the_result_at_the_secret_url_is_stored_then_recorded_as_decimal_readings(asked, client):
    query, _ = asked
    body = raw_fixture("mpesa", "account_balance_result_success.json")
    answer = client.post(f"/webhooks/mpesa/balance/result/{B2C_TOKEN}/", body, content_type="application/json")
    assert answer.status_code == 200
    event = CallbackEvent.objects.get(kind="balance_result")
    assert (event.status, event.provider_reference) == (CallbackEvent.Status.PROCESSED, CONVERSATION)
    query.refresh_from_db()
    assert query.status == BalanceQuery.Status.ANSWERED
    utility = BalanceReading.objects.get(query=query, account="Utility Account")
    assert (utility.available, utility.currency) == (Decimal("228037.00"), "KES")
    assert BalanceReading.objects.get(account="Charges Paid Account").available == Decimal("-1540.00")
    assert timezone.localtime(utility.as_of, timezone.get_fixed_timezone(180)).strftime("%Y%m%d%H%M%S") == (
        "20200109125710"
    )
    # The same delivery again: the readings are kept once.
    client.post(f"/webhooks/mpesa/balance/result/{B2C_TOKEN}/", body, content_type="application/json")
    assert BalanceReading.objects.filter(query=query).count() == 5


def test_a_result_for_a_query_we_never_sent_is_held_and_records_nothing(mpesa_settings, client):
    body = raw_fixture("mpesa", "account_balance_result_success.json")
    client.post(f"/webhooks/mpesa/balance/result/{B2C_TOKEN}/", body, content_type="application/json")
    assert CallbackEvent.objects.get().status == CallbackEvent.Status.REVIEW
    assert not BalanceReading.objects.exists()


def test_a_result_at_a_wrong_secret_is_refused(asked, client):
    body = raw_fixture("mpesa", "account_balance_result_success.json")
    answer = client.post("/webhooks/mpesa/balance/result/not-our-secret/", body, content_type="application/json")
    assert answer.status_code == 401
    assert not BalanceReading.objects.exists()


def test_a_result_that_never_arrives_expires_and_is_alerted_until_an_answer(asked, settings, client):
    query, _ = asked
    settings.FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES = 30
    later = timezone.now() + timedelta(minutes=31)
    assert finance_alerts(now=timezone.now()) == []
    assert finance_alerts(now=later) == [
        "mpesa: 1 wallet balance query(ies) without a result after 30 minutes (the provider does not retry: read "
        "the balance in its portal, or ask again with balance_query)"
    ]
    query.refresh_from_db()
    assert query.status == BalanceQuery.Status.EXPIRED
    # Late, it is still the balance of its moment: kept, and the alert ends.
    body = raw_fixture("mpesa", "account_balance_result_success.json")
    client.post(f"/webhooks/mpesa/balance/result/{B2C_TOKEN}/", body, content_type="application/json")
    assert finance_alerts(now=later) == []


@responses.activate
def test_mtn_gives_each_products_balance_at_once(settings):
    from payments.tests.providers.mtn.support import API as MTN
    from payments.tests.providers.mtn.support import KWARGS, fixture

    settings.PAYMENT_PROVIDERS = {**settings.PAYMENT_PROVIDERS, "mtn": {**KWARGS}}
    for product in ("collection", "disbursement"):
        responses.post(f"{MTN}/{product}/token/", json=fixture("token_success.json"))
        responses.get(f"{MTN}/{product}/v1_0/account/balance", json=fixture("account_balance.json"))
    queries = balance_query(provider="mtn")
    assert [(q.account, q.status) for q in queries] == [("collection", "answered"), ("disbursement", "answered")]
    reading = BalanceReading.objects.get(account="collection")
    assert (reading.available, reading.currency) == (Decimal("1000.00"), "EUR")


@responses.activate
def test_airtel_gives_its_wallet_balance_with_the_commas_read(settings):
    from payments.tests.providers.airtel.support import API as AIRTEL
    from payments.tests.providers.airtel.support import KWARGS, TOKEN_URL, fixture

    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "airtel": {**settings.PAYMENT_PROVIDERS["airtel"], **KWARGS},
    }
    responses.post(TOKEN_URL, json=fixture("token_success.json"))
    responses.get(f"{AIRTEL}/standard/v1/users/balance", json=fixture("balance_success.json"))
    call_command("balance_query", "--provider", "airtel")
    reading = BalanceReading.objects.get()
    assert (reading.account, reading.available, reading.currency) == ("wallet", Decimal("37600.00"), "UGX")


def test_a_closing_balance_that_differs_from_the_wallet_reading_is_an_exception(asked, client):
    query, _ = asked
    body = raw_fixture("mpesa", "account_balance_result_success.json")
    client.post(f"/webhooks/mpesa/balance/result/{B2C_TOKEN}/", body, content_type="application/json")
    as_of = BalanceReading.objects.get(account="Utility Account").as_of
    month = timezone.localtime(as_of).strftime("%Y-%m")
    csv = (
        f"# opening_balance: 227000.00\n# closing_balance: 228000.00\n# period_end: {as_of.isoformat()}\n"
        "occurred_at,provider_reference,kind,amount,fee,currency,account,counterparty\n"
        f"{(as_of - timedelta(hours=1)).isoformat()},OA1000001,credit,1000.00,0,KES,RHCI-DN-1,2547\n"
    ).encode()
    statement_import(provider="mpesa", raw=csv, filename="utility.csv")
    report = close_month("mpesa", month)
    [held] = report.readings
    assert (held.expected, held.difference) == (Decimal("228000.00"), Decimal("37.00"))
    exception = Discrepancy.objects.get(key=f"balance_reading:statement:{Statement.objects.get().pk}")
    assert (exception.expected, exception.actual) == (Decimal("228000.00"), Decimal("228037.00"))
    assert "Utility Account read 228037.00 KES" in exception.detail


def test_without_the_result_urls_secret_no_daraja_query_is_sent(mpesa_settings, daraja):
    mpesa_settings.PAYMENT_PROVIDERS["mpesa"]["b2c_token"] = ""
    with pytest.raises(CommandError, match=r"mpesa's balance result URL needs its secret \(MPESA_B2C_TOKEN\)"):
        call_command("balance_query", "--provider", "mpesa")
    assert not BalanceQuery.objects.exists() and len(daraja.calls) == 0


def test_a_refused_balance_query_is_kept_failed_and_named(mpesa_settings, daraja):
    daraja.post(
        BALANCE_URL, status=400, json={"errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid PartyA"}
    )
    with pytest.raises(CommandError, match="mpesa: M-Pesa: Bad Request - Invalid PartyA"):
        call_command("balance_query", "--provider", "mpesa")
    assert BalanceQuery.objects.get().status == BalanceQuery.Status.FAILED
