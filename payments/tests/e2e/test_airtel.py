"""Airtel Money end to end, what is its own: the callback `hash` is keyed with AIRTEL_CALLBACK_SECRET, which the
site and Airtel's side (the simulator) must both hold. The outcome table, the forged and the signed but
unconfirmed callbacks, payouts and the full refund are proven for it with every provider in test_pipeline.py
(its facts: drivers.py, `Airtel`)."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PROVIDER = "airtel"


def test_both_sides_hold_the_callback_secret(sandbox, driver, settings):
    assert sandbox.simulators["airtel"].callback_secret == driver.callback_secret
    assert settings.PAYMENT_PROVIDERS["airtel"]["callback_secret"] == driver.callback_secret
