"""System checks: warn when production runs with a weak setting. Each provider reports its own
(`PaymentProvider.deploy_warnings`); this loops over the configured ones."""

from django.conf import settings
from django.core import checks

from payments.providers.registry import get_provider, provider_codes, provider_usable, settings_problems


@checks.register(checks.Tags.security, deploy=True)
def callback_trust_policy(app_configs, **kwargs) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if settings.PAYMENTS_SANDBOX_URL:
        problems.append(
            checks.Warning(
                "PAYMENTS_SANDBOX_URL is set: providers point at the local simulator.",
                hint="Unset PAYMENTS_SANDBOX_URL in production.",
                id="payments.W001",
            )
        )
    for code in provider_codes():
        if not provider_usable(code):
            continue  # its settings are refused (payments.E002…): provider_settings reports them
        for warning in get_provider(code).deploy_warnings(site_url=settings.SITE_URL):
            problems.append(checks.Warning(warning.message, hint=warning.hint, id=warning.id))
    return problems


@checks.register()
def provider_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Provider settings the provider cannot work with (an unknown MPESA_TRANSACTION_TYPE, MTN_CURRENCY,
    AIRTEL_COUNTRY, AIRTEL_CURRENCY or AIRTEL_PIN_PADDING), on every `check`: the donation API then answers 503
    for that provider until they are fixed, so the start (runserver, migrate, check) says so first."""
    return [
        checks.Error(problem.message, hint=problem.hint or None, id=problem.id)
        for code in provider_codes()
        for problem in settings_problems(code)
    ]


CALLBACK_ACK_CHOICES = ("handled", "stored")


@checks.register()
def callback_ack_setting(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.CALLBACK_ACK not in CALLBACK_ACK_CHOICES:
        return [
            checks.Error(
                f"CALLBACK_ACK={settings.CALLBACK_ACK!r} is not one of {', '.join(CALLBACK_ACK_CHOICES)}.",
                hint="handled: answer callbacks after applying them; stored: answer once stored, a worker applies.",
                id="payments.E001",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def callback_ack_workers(app_configs, **kwargs) -> list[checks.CheckMessage]:
    backend = settings.TASKS["default"]["BACKEND"]
    if settings.CALLBACK_ACK == "stored" and backend.endswith("ImmediateBackend"):
        return [
            checks.Warning(
                "CALLBACK_ACK=stored with the immediate task backend: callbacks are still applied in the request.",
                hint="Set TASKS_BACKEND=database (manage.py db_worker) or rq (manage.py rqworker) and run workers.",
                id="payments.W008",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility, deploy=True)
def task_queue(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """TASKS_BACKEND=rq keeps the task queue in Redis: it needs one, and not the cache's own database."""
    if settings.TASKS_BACKEND != "rq":
        return []
    if not settings.TASKS_REDIS_URL:
        return [
            checks.Warning(
                "TASKS_BACKEND=rq without a Redis URL: the task queue points at redis://127.0.0.1:6379/0.",
                hint="Set TASKS_REDIS_URL (e.g. redis://redis.internal:6379/2) or a Redis CACHE_URL.",
                id="payments.W040",
            )
        ]
    cache = settings.CACHES["default"]
    cache_location = str(cache.get("LOCATION", "")).split(",")[0] if "Redis" in cache["BACKEND"] else ""
    if cache_location and _redis_database(cache_location) == _redis_database(settings.TASKS_REDIS_URL):
        return [
            checks.Warning(
                "The task queue shares the cache's Redis database: clearing the cache (FLUSHDB) or evicting "
                "its keys drops queued tasks.",
                hint="Give TASKS_REDIS_URL a database of its own (redis://host:6379/2), on a Redis whose "
                "maxmemory-policy is noeviction.",
                id="payments.W041",
            )
        ]
    return []


def _redis_database(url: str) -> tuple[str, int, str]:
    """(host, port, database) of a redis:// URL, whatever the password or the options."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    database = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return (parts.hostname or "", parts.port or 6379, database)
