"""AzamPay end to end, what is its own: a card donation goes to the sandbox's hosted checkout page. The outcome
table is proven for it with every provider in test_pipeline.py (its facts: drivers.py, `AzamPay`)."""

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PROVIDER = "azampay"


def test_card_checkout_redirects_to_the_sandbox_page(live_server, driver, sandbox, patient):
    created = driver.donate(live_server, phone="", channel="card")
    assert created["next_action"]["type"] == "redirect"
    page = requests.get(created["next_action"]["url"], timeout=10)
    assert page.status_code == 200
