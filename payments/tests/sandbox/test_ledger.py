"""The month close's questions asked of the simulators by our own adapters, over real HTTP: Daraja's Pull
Transactions (register, offset pages of what the run received, `[[]]` after) and Account Balance (accepted, the
result POSTed to the ResultURL), MTN's product balances, Airtel's wallet balance with its commas."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.airtel.provider import AirtelProvider
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.providers.mpesa.provider import MpesaProvider
from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.providers.mtn.provider import MtnProvider
from payments.sandbox.server import run_sandbox
from payments.tests.sandbox.test_daraja import site, wait_for  # noqa: F401 (a fixture: the site that records callbacks)


@pytest.fixture
def sandbox():
    cache.clear()  # provider tokens
    server = run_sandbox(port=0, time_scale=0.05)
    yield server.base_url
    server.shutdown()
    cache.clear()


def mpesa(base: str) -> MpesaProvider:
    return MpesaProvider(api_url=f"{base}/daraja", **{k: v for k, v in MPESA_CONFIG.sandbox_credentials().items()})


def test_pull_lists_the_paybill_payments_of_the_run_in_pages_then_nothing(sandbox, site):  # noqa: F811
    provider = mpesa(sandbox)
    url = f"http://127.0.0.1:{site.server_port}/webhooks/paybill"
    provider.register_paybill_urls(
        confirmation_url=f"{url}/confirmation/t/", validation_url=f"{url}/validation/t/", response_type="Completed"
    )
    for n in range(23):  # more than one page (the simulator's pages hold 20)
        answer = requests.post(
            f"{sandbox}/daraja/mpesa/c2b/v2/simulate",
            json={
                "ShortCode": provider.c2b_shortcode,
                "CommandID": "CustomerPayBillOnline",
                "Amount": 100 + n,
                "Msisdn": "254708374149",
                "BillRefNumber": f"RHCI-DN-{n}",
            },
            headers=provider.client.headers(),
            timeout=5,
        )
        assert answer.status_code == 200
    assert "Registered" in provider.register_pull(callback_url=f"{url}/notice/")
    now = timezone.now()
    start, end = now - timedelta(hours=1), now + timedelta(minutes=1)
    first = provider.pull_transactions(start=start, end=end, offset=0)
    second = provider.pull_transactions(start=start, end=end, offset=len(first))
    assert (len(first), len(second)) == (20, 3)
    assert provider.pull_transactions(start=start, end=end, offset=23) == ()
    assert sorted(t.amount for t in first + second) == [Decimal(100 + n) for n in range(23)]
    assert {t.bill_reference for t in first} <= {f"RHCI-DN-{n}" for n in range(23)}
    assert provider.pull_transactions(start=end, end=end + timedelta(hours=1), offset=0) == ()


def test_account_balance_is_accepted_then_posted_to_the_result_url(sandbox, site):  # noqa: F811
    provider = mpesa(sandbox)
    result_url = f"http://127.0.0.1:{site.server_port}/webhooks/mpesa/balance/result/tok/"
    answer = provider.request_balance(account="shortcode", result_url=result_url, timeout_url=result_url)
    assert answer.conversation_id.startswith("AG_") and not answer.readings
    assert wait_for(lambda: site.deliveries)
    _, path, body, _ = site.deliveries[0]
    assert path == "/webhooks/mpesa/balance/result/tok/"
    result = provider.parse_balance_result("balance_result", json.dumps(body).encode())
    assert result.succeeded and result.conversation_id == answer.conversation_id
    assert "Utility Account|KES|100000.00|" in result.accounts_text and result.completed_at is not None


def test_mtn_answers_each_products_balance(sandbox):
    creds = {k: v for k, v in MTN_CONFIG.sandbox_credentials().items() if k != "api_url"}
    provider = MtnProvider(api_url=f"{sandbox}/mtn", **creds)
    [reading] = provider.request_balance(account="collection").readings
    assert (reading.account, reading.available) == ("collection", Decimal("50000"))
    assert provider.request_balance(account="disbursement").readings[0].currency == reading.currency


def test_airtel_answers_the_wallet_balance_with_its_commas(sandbox):
    provider = AirtelProvider(api_url=f"{sandbox}/airtel", **AIRTEL_CONFIG.sandbox_credentials())
    [reading] = provider.request_balance(account="wallet").readings
    assert (reading.account, reading.available) == ("wallet", Decimal("37600.00"))
    assert json.loads(provider.request_balance(account="wallet").raw)["data"]["balance"] == "37,600.00"
