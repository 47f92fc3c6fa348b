import pytest

from payments.tests.drivers import DRIVERS, MONEY_OUT
from payments.tests.factories import (
    CHECKER_PERMISSIONS,
    MAKER_PERMISSIONS,
    REFUND_CHECKER_PERMISSIONS,
    REFUND_MAKER_PERMISSIONS,
    staff_user,
)


@pytest.fixture
def rail(request, settings):
    """The driver its (indirect) parameter names, a provider's or a money-out rail's, with its far side running."""
    with {**DRIVERS, **MONEY_OUT}[request.param].running(settings) as driver:
        yield driver


@pytest.fixture
def maker():
    """A staff user who may request payouts and refunds (and nothing more)."""
    return staff_user("maker", *MAKER_PERMISSIONS, *REFUND_MAKER_PERMISSIONS)


@pytest.fixture
def checker():
    """Another, who may approve, send and resolve them."""
    return staff_user("checker", *CHECKER_PERMISSIONS, *REFUND_CHECKER_PERMISSIONS)
