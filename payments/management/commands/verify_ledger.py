"""Prove the whole book (payments.services.ledger_check); exit 1 on any difference, one line per item."""

from django.core.management.base import BaseCommand, CommandError

from donor.ledger import ledger_repair
from donor.selectors import general_fund_totals
from payments.services.ledger_check import book_check, book_check_record


class Command(BaseCommand):
    help = (
        "Prove the funding ledger: each patient's funding_received equals its allocations, each paid donation is "
        "credited once for its amount, each refund has its reversal (and each reversal its refund), and no patient "
        "was paid out more than it received. --repair rewrites drifted patient totals only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--repair", action="store_true", help="Overwrite drifted totals with the ledger's sum")

    def handle(self, *args, repair: bool = False, **options) -> None:
        check = book_check()
        book_check_record(check)
        for drift in check.drifts:
            self.stdout.write(
                f"DRIFT {drift.patient.code}: funding_received={drift.cached} ledger={drift.ledger} "
                f"difference={drift.difference:+} {drift.patient.currency}"
            )
        for problem in check.problems:
            self.stdout.write(f"BOOK {problem}")
        for currency, total in sorted(general_fund_totals().items()):
            self.stdout.write(f"general fund: {total} {currency}")
        if check.ok:
            self.stdout.write(
                self.style.SUCCESS("Ledger OK: every patient's total, donation, refund and payout agrees.")
            )
            return
        if repair and check.drifts:
            for drift in check.drifts:
                ledger_repair(drift=drift)
            self.stdout.write(self.style.WARNING(f"Repaired {len(check.drifts)} patient(s)."))
        if check.problems:
            raise CommandError(
                f"{len(check.problems)} item(s) in the book disagree (the BOOK lines); a person must look."
            )
        if not repair:
            raise CommandError(f"Ledger drift on {len(check.drifts)} patient(s). Run with --repair to fix the totals.")
