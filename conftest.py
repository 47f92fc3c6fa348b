"""Project-wide fixtures. Database-specific tests are marked `mysql` and skip on SQLite."""

import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

# The providers' far sides: `azam`, `azampay_settings`; `daraja`, `mpesa_settings`.
pytest_plugins = ["payments.tests.azampay_fakes", "payments.tests.mpesa_fakes"]


# A test touches the database only through these (pytest-django refuses any other access), so a test that has
# none of them behaves the same on every database: the SQLite pass has proven it.
DB_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}
)


def uses_database(item: pytest.Item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(DB_FIXTURES & set(item.fixturenames))


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.mysql":
        skip = pytest.mark.skip(reason="needs MariaDB/MySQL (run `make test` with a server or TEST_MYSQL_URL)")
        for item in items:
            if "mysql" in item.keywords:
                item.add_marker(skip)
        return
    # The MariaDB pass runs what the database can change: every test that touches it (locking, strict mode,
    # transactions, the ledger, the e2e and fault suites). TEST_EVERYTHING=1 runs the rest here too.
    if os.environ.get("TEST_EVERYTHING") == "1":
        return
    unchanged = [item for item in items if not uses_database(item)]
    if unchanged:
        config.hook.pytest_deselected(items=unchanged)
        items[:] = [item for item in items if uses_database(item)]
    # The fault scenarios take 5-35 s each: started first, one xdist worker runs them while the other works through
    # the short tests, instead of one of them being left for last on an otherwise idle run.
    items.sort(key=lambda item: item.get_closest_marker("fault") is None)


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
