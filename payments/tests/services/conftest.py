import pytest

from payments.tests.drivers import DRIVERS, MONEY_OUT


@pytest.fixture
def rail(request, settings):
    """The driver its (indirect) parameter names, a provider's or a money-out rail's, with its far side running."""
    with {**DRIVERS, **MONEY_OUT}[request.param].running(settings) as driver:
        yield driver
