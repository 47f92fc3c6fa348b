"""The fault harness's public names in one place, for bench/fault_storm.py (`harness.FaultRig`, ...)."""

from payments.faults.accounting import (
    account,
    exception_counts,
    figures_line,
    figures_table,
    gunicorn_events,
    inbox_summary,
    ledger_problems,
    lost_stories,
    outage_answers,
    review_stories,
    totals,
)
from payments.faults.killer import ScheduledOutage, WorkerKiller
from payments.faults.processes import command_summary, manage
from payments.faults.rig import FaultRig, Secrets, app_env
from payments.faults.seeding import StormPlan, seed_storm
from payments.faults.storm import RAILS

__all__ = [
    "RAILS",
    "FaultRig",
    "ScheduledOutage",
    "Secrets",
    "StormPlan",
    "WorkerKiller",
    "account",
    "app_env",
    "command_summary",
    "exception_counts",
    "figures_line",
    "figures_table",
    "gunicorn_events",
    "inbox_summary",
    "ledger_problems",
    "lost_stories",
    "manage",
    "outage_answers",
    "review_stories",
    "seed_storm",
    "totals",
]
