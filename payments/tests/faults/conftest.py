"""Fault scenarios seed hundreds of rows: keep the INFO lines of seeding out of a failure's report (instant)."""

import logging

import pytest


@pytest.fixture(autouse=True)
def quiet_seeding_logs(caplog):
    for name in ("", "payments", "django"):  # "payments" sets its own level (LOGGING), so root alone is not enough
        caplog.set_level(logging.WARNING, logger=name or None)
