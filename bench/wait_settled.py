"""Wait (bounded) until every stored callback is settled and the task queue is empty; say how long it took.

    python bench/wait_settled.py --since EPOCH --timeout 180 [--sweep]

Polls the database of DATABASE_URL every 0.2 s: inbox rows still `received` or `failed` (work to do), and the
tasks still queued or running in the configured backend (django-tasks-db rows READY/RUNNING, or the RQ queue
and its started-job registry). Prints one line

    SETTLED settled_s=... empty_s=... open_events=... pending_tasks=... swept=... timed_out=0|1

with the seconds from --since (a time.time() epoch, e.g. when wrk stopped) to the moment the last callback was
settled and to the moment the queue was empty as well. With --sweep, events left open once the queue is empty
(a `failed` one waits CALLBACK_RETRY_BASE_SECONDS for the sweeper; nothing runs the sweeper during a benchmark)
are run through `callbacks_sweep`, the sweeper of `reconcile_payments`, and counted in `swept`.
"""

import argparse
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402


def open_events() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM payments_callbackevent WHERE status IN ('received', 'failed')")
        return int(cursor.fetchone()[0])


def pending_tasks() -> int:
    if settings.TASKS_BACKEND == "rq":
        import django_rq
        from rq.registry import StartedJobRegistry

        queue = django_rq.get_queue("default")
        return queue.count + StartedJobRegistry(queue=queue).count
    if settings.TASKS_BACKEND != "database":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_tasks_database_dbtaskresult WHERE status IN ('READY', 'RUNNING')")
        return int(cursor.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", type=float, default=None, help="time.time() the durations count from")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--no-queue", action="store_true", help="only wait for the callbacks to settle")
    args = parser.parse_args()
    since = args.since if args.since is not None else time.time()
    deadline = time.time() + args.timeout
    settled_at = empty_at = None
    swept = 0
    events = tasks = -1
    while time.time() < deadline:
        events = open_events()
        tasks = 0 if args.no_queue else pending_tasks()
        now = time.time()
        if events == 0 and settled_at is None:
            settled_at = now
        if events == 0 and tasks == 0:
            empty_at = now
            break
        if args.sweep and events and tasks == 0 and settled_at is None:
            from payments.services.dispatch import callbacks_sweep

            report = callbacks_sweep(received_before=timezone.now())
            swept += report.examined
            continue
        time.sleep(0.2)

    def seconds(moment: float | None) -> str:
        return f"{moment - since:.1f}" if moment is not None else "-"

    print(
        f"SETTLED settled_s={seconds(settled_at)} empty_s={seconds(empty_at)} open_events={events} "
        f"pending_tasks={tasks} swept={swept} timed_out={0 if empty_at is not None else 1}"
    )
    sys.exit(0 if empty_at is not None else 1)


if __name__ == "__main__":
    main()
