"""Project-wide fixtures. Database-specific tests are marked `mysql` and skip on SQLite."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

# The providers' far sides: `azam`, `azampay_settings`; `daraja`, `mpesa_settings`.
pytest_plugins = ["payments.tests.azampay_fakes", "payments.tests.mpesa_fakes"]


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.mysql":
        skip = pytest.mark.skip(reason="needs MariaDB/MySQL (run `make test` with a server or TEST_MYSQL_URL)")
        for item in items:
            if "mysql" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_rate_limit_counted_yet():
    """Rate-limit windows live in the cache (and, while it is down, in config.net's fallback), which outlive a
    test: every test starts with nothing counted, whichever tests ran before it in the same minute."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from config import net

    net._FALLBACK.clear()
    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def donor_user(db):
    from donor.services import donor_register

    return donor_register(
        username="amani",
        password="S3cure-pass-123",
        email="amani@example.org",
        name="Amani Mollel",
        phone_number="0712345678",
    ).user


@pytest.fixture
def auth_client(donor_user) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(donor_user).access_token}")
    return client


@pytest.fixture
def is_mysql() -> bool:
    return connection.vendor == "mysql"
