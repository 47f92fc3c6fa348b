"""Fixtures of the end-to-end suites: the provider's driver (drivers.py), its running sandbox with the site
pointed at it, a patient in its currency, the refund maker and checker. A provider's own file names its
provider in `PROVIDER`; the shared suite (test_pipeline.py) parametrizes `driver` with every provider."""

import pytest

from patients.tests.factories import PatientFactory
from payments.tests.e2e.drivers import DRIVERS
from payments.tests.factories import staff_user


@pytest.fixture
def driver(request):
    return DRIVERS[getattr(request, "param", None) or request.module.PROVIDER]


@pytest.fixture
def sandbox(driver, live_server, settings):
    with driver.running(live_server, settings) as server:
        yield server


@pytest.fixture
def patient(driver, db):
    return PatientFactory(code=driver.patient, currency=driver.currency, funding_goal=driver.goal)


@pytest.fixture
def refund_maker(db):
    return staff_user("refund-maker", "payments.add_refund", "payments.view_refund")


@pytest.fixture
def refund_checker(db):
    return staff_user("refund-checker", "payments.approve_refund", "payments.resolve_refund", "payments.view_refund")
