"""Fixtures of the payments tests. The providers' far sides are plugins (azampay_fakes, mpesa_fakes, loaded by
the root conftest); the helpers that are not fixtures are in helpers.py and factories.py."""

import pytest

from payments.tests.factories import CHECKER_PERMISSIONS, MAKER_PERMISSIONS, staff_user


@pytest.fixture
def maker():
    """A staff user who may request payouts (and nothing more)."""
    return staff_user("maker", *MAKER_PERMISSIONS)


@pytest.fixture
def checker():
    """Another staff user, who may approve, send and resolve payouts."""
    return staff_user("checker", *CHECKER_PERMISSIONS)


@pytest.fixture
def paybill_rules(settings):
    """The settings the paybill money rules are written against (the defaults, pinned): a confirmation on its
    secret URL is believed, an overfunded patient keeps the excess, KES donations are 10 to 250,000."""
    settings.PAYMENTS_APPLY_TRUSTED_CALLBACKS = True
    settings.OVERFUNDING_POLICY = "keep"
    settings.DONATION_LIMITS = {**settings.DONATION_LIMITS, "KES": [10, 250_000]}
    return settings
