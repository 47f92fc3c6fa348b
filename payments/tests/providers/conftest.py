"""Provider adapter tests: provider tokens live in the cache, so every test starts and ends with it empty."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()
