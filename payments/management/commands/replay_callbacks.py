"""Re-process stored callbacks (by status or id); --dry-run shows what would change and saves nothing."""

from django.core.management.base import BaseCommand, CommandError

from payments.models import CallbackEvent
from payments.services.dispatch import callback_replay


class Command(BaseCommand):
    help = "Re-run stored callbacks through their handler. Safe to repeat: nothing is credited twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--status",
            default=None,
            choices=CallbackEvent.Status.values,
            help="Replay events in this status (default: failed, unless --id is given)",
        )
        parser.add_argument("--id", type=int, action="append", dest="ids", help="Replay this event (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="Show the outcome, change nothing")

    def handle(self, *args, status: str | None, ids: list[int] | None, dry_run: bool, **options) -> None:
        events = CallbackEvent.objects.order_by("pk")
        if ids:
            events = events.filter(pk__in=ids)
            missing = set(ids) - set(events.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No callback event with id {', '.join(map(str, sorted(missing)))}.")
        if status or not ids:
            events = events.filter(status=status or CallbackEvent.Status.FAILED)
        count = 0
        for event in events:
            outcome = callback_replay(event=event, dry_run=dry_run)
            prefix = "would be" if dry_run else "now"
            self.stdout.write(
                f"#{event.pk} {event.provider}/{event.kind} ref {event.our_reference or '-'}: "
                f"{prefix} {outcome.code} — {outcome.message}"
            )
            count += 1
        self.stdout.write(f"{count} event(s) {'examined (dry run, nothing saved)' if dry_run else 'replayed'}.")
