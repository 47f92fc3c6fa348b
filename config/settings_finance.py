"""The month close's settings (finance, and the scheduler steps and callback roles it plugs into payments),
read from the environment like the rest of config/settings.py, which star-imports them (kept apart so that
module stays short). The .env file is already in the environment when this runs (settings.py reads it first)."""

import environ

env = environ.Env()  # the environment settings.py reads (star-imported with the settings: the same thing)

# A ledger movement no statement shows is "expected" this long before the end of the last imported statement.
FINANCE_LEDGER_GRACE_HOURS = env.int("FINANCE_LEDGER_GRACE_HOURS", default=48)
# The watchdog alerts on a month-close exception still open after this many days.
FINANCE_EXCEPTION_ALERT_DAYS = env.int("FINANCE_EXCEPTION_ALERT_DAYS", default=7)
# ... and on a wallet balance query (Daraja Account Balance) still without a result after this many minutes.
FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES = env.int("FINANCE_BALANCE_RESULT_TIMEOUT_MINUTES", default=30)
# The statement pull (`statement_pull`, Daraja's Pull Transactions) reads this many hours back (at most 48, what
# Daraja keeps); the scheduler (`reconcile_payments --loop`) runs it every FINANCE_STATEMENT_PULL_MINUTES and the
# wallet balance queries (`balance_query --all`) every FINANCE_BALANCE_QUERY_MINUTES (0: not scheduled).
FINANCE_STATEMENT_PULL_HOURS = env.int("FINANCE_STATEMENT_PULL_HOURS", default=48)
FINANCE_STATEMENT_PULL_MINUTES = env.int("FINANCE_STATEMENT_PULL_MINUTES", default=60)
FINANCE_BALANCE_QUERY_MINUTES = env.int("FINANCE_BALANCE_QUERY_MINUTES", default=1440)
# A statement's closing balance is held against the wallet reading nearest its end, if one lies this close.
FINANCE_BALANCE_READING_WINDOW_HOURS = env.int("FINANCE_BALANCE_READING_WINDOW_HOURS", default=24)
# The wallet account an imported statement is of, per provider (`provider=account,…`): the paybill's Utility
# Account receives M-Pesa payments; MTN's collection product; Airtel's (collection) wallet.
FINANCE_BALANCE_ACCOUNTS = env.dict(
    "FINANCE_BALANCE_ACCOUNTS", default={"mpesa": "Utility Account", "mtn": "collection", "airtel": "wallet"}
)
# Commands the scheduler also runs, each at most once per its interval (a database lease per command):
# (command, arguments, seconds between runs).
SCHEDULED_COMMANDS = [
    ("statement_pull", ["--all"], FINANCE_STATEMENT_PULL_MINUTES * 60),
    ("balance_query", ["--all"], FINANCE_BALANCE_QUERY_MINUTES * 60),
]
# Apps the watchdog and the dashboard also ask (dotted paths of `f(now=...)`): payments never imports them.
WATCHDOG_ALERT_SOURCES = ["finance.services.alerts.finance_alerts"]
# Callback roles another app handles (role → its Role class): Daraja's Account Balance results, at the secret
# URLs /webhooks/mpesa/balance/{result,timeout}/<MPESA_B2C_TOKEN>/, go through the inbox to finance.
CALLBACK_ROLE_HANDLERS = {
    "balance_result": "finance.services.balance_results.BalanceResultRole",
    "balance_timeout": "finance.services.balance_results.BalanceResultRole",
}
DASHBOARD_COUNT_SOURCES = ["finance.services.alerts.finance_counts"]
