"""The month close: provider statements, the match against the ledger, balances and exceptions."""

from django.apps import AppConfig


class FinanceConfig(AppConfig):
    """The month close: provider statements held against the ledger (docs/api.md "Month close").

    Layering: finance reads payments (and through it donor and patients); nothing imports finance. The
    dashboard and the watchdog reach it only through settings (DASHBOARD_COUNT_SOURCES, WATCHDOG_ALERT_SOURCES)."""

    name = "finance"
    verbose_name = "Finance (month close)"
