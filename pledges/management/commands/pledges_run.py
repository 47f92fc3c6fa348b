"""python manage.py pledges_run [--date YYYY-MM-DD] [--time HH:MM]: remind, prompt and close the month of every
active pledge (pledges/run.py). Holds a database lease so two schedulers never run it at once."""

from datetime import date, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payments.services.scheduler import lease_acquire, lease_holder, lease_release, scheduler_identity
from pledges.run import pledges_run

LEASE = "pledges_run"
LEASE_SECONDS = 15 * 60


class Command(BaseCommand):
    help = "Send pledge reminders and payment prompts that are due (run every 15 minutes from cron)."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="Act as on this local date (YYYY-MM-DD); default today")
        parser.add_argument("--time", help="Act as at this local time (HH:MM); default now")

    def handle(self, *args, **options):
        now = timezone.localtime()
        try:
            day = date.fromisoformat(options["date"]) if options["date"] else now.date()
        except ValueError as exc:
            raise CommandError(f"--date must be a date such as 2026-03-05, not {options['date']!r}") from exc
        try:
            at = time.fromisoformat(options["time"]) if options["time"] else now.time()
        except ValueError as exc:
            raise CommandError(f"--time must be a time such as 09:30, not {options['time']!r}") from exc
        moment = timezone.make_aware(datetime.combine(day, at.replace(tzinfo=None)))
        holder = scheduler_identity()
        if not lease_acquire(LEASE, holder, seconds=LEASE_SECONDS):
            lease = lease_holder(LEASE)
            self.stdout.write(f"Skipped: another pledges_run holds the lease ({lease.holder if lease else '?'}).")
            return
        try:
            report = pledges_run(moment)
        finally:
            lease_release(LEASE, holder)
        self.stdout.write(
            f"Pledges on {day.isoformat()}: reminded {report.reminded}, prompted {report.prompted}, paid "
            f"{report.paid}, skipped {report.skipped}, missed {report.missed}, lapsed {report.lapsed}"
        )
        for error in report.errors:
            self.stderr.write(f"Failed: {error}")
