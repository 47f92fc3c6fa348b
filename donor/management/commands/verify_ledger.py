"""Prove funding_received == Sum(allocations) for every patient; non-zero exit on drift."""

from django.core.management.base import BaseCommand, CommandError

from donor.selectors import general_fund_totals, ledger_drift
from donor.services import ledger_repair


class Command(BaseCommand):
    help = "Check every patient's funding_received against the allocation ledger (--repair fixes the cache)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--repair", action="store_true", help="Overwrite drifted totals with the ledger's sum")

    def handle(self, *args, repair: bool = False, **options) -> None:
        drifts = ledger_drift()
        for drift in drifts:
            self.stdout.write(
                f"DRIFT {drift.patient.code}: funding_received={drift.cached} ledger={drift.ledger} "
                f"difference={drift.difference:+} {drift.patient.currency}"
            )
        for currency, total in sorted(general_fund_totals().items()):
            self.stdout.write(f"general fund: {total} {currency}")
        if not drifts:
            self.stdout.write(self.style.SUCCESS("Ledger OK: every patient's funding_received equals its allocations."))
            return
        if repair:
            for drift in drifts:
                ledger_repair(drift=drift)
            self.stdout.write(self.style.WARNING(f"Repaired {len(drifts)} patient(s)."))
            return
        raise CommandError(f"Ledger drift on {len(drifts)} patient(s). Run with --repair to fix the totals.")
