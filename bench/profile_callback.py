"""What one callback costs, in-process: SQL statements, database round trips, commits and CPU.

    python bench/profile_callback.py BODIES.jsonl --list                 # statements of one callback + a repeat
    python bench/profile_callback.py BODIES.jsonl --start 5000 --n 400    # CPU/round trips per callback
    CALLBACK_ACK=stored TASKS_BACKEND=database python bench/profile_callback.py BODIES.jsonl --stored [--list]

Drives Django's test client (the whole middleware stack and the real view, no HTTP server) against the
benchmark database, one callback at a time, with bodies from BODIES.jsonl that have not been sent yet.
Round trips are counted on the MySQLdb connection (queries, COMMIT/ROLLBACK, autocommit toggles, pings);
"db CPU" is the MariaDB server's CPU time over the run divided by the callbacks (only meaningful while
nothing else uses the server). Prints one "PROFILE ..." line, or the statement listing with --list.

--stored (CALLBACK_ACK=stored, TASKS_BACKEND=database) measures the three halves of a callback separately:
the request (store, queue the task, answer), the worker's `process_callback` task and the donor's
notification task it queues, each task run as `manage.py db_worker` runs it (django-tasks-db's Worker, one
task: claim, run, record the result). One "PROFILE variant=stored-<phase>" line per phase (the console email
backend's output is discarded).
"""

import argparse
import collections
import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import MySQLdb.connections  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

URL = "/api/v1.0/donors/payment/azampay/callback/"
ROUND_TRIPS: collections.Counter = collections.Counter()


def count_round_trips() -> None:
    """Wrap the driver's calls that each cost one round trip to the server.

    Also counts durable commits: explicit COMMITs plus writes run in autocommit mode (each its own commit).
    """
    cls = MySQLdb.connections.Connection
    for name in ("query", "commit", "rollback", "autocommit", "ping"):
        original = getattr(cls, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            ROUND_TRIPS[_name] += 1
            if _name == "autocommit":
                self._bench_autocommit = bool(args[0])
            elif _name == "query" and getattr(self, "_bench_autocommit", True):
                sql = args[0].lstrip()[:6].upper()
                if sql in (b"INSERT", b"UPDATE", b"DELETE", "INSERT", "UPDATE", "DELETE"):
                    ROUND_TRIPS["autocommit_writes"] += 1
            return _original(self, *args, **kwargs)

        setattr(cls, name, wrapper)


def server_cpu_ticks() -> int | None:
    try:
        pid = subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()
        pid = pid or subprocess.run(["pgrep", "-x", "mysqld"], capture_output=True, text=True).stdout.split()
        fields = Path(f"/proc/{pid[0]}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (IndexError, OSError, ValueError):
        return None


def post(client: Client, body: bytes):
    return client.post(URL, data=body, content_type="application/json", REMOTE_ADDR="127.0.0.1")


def shorten(sql: str, width: int = 140) -> str:
    sql = " ".join(str(sql).split())
    return sql if len(sql) <= width else sql[: width - 3] + "..."


def listing(client: Client, body: bytes) -> None:
    for label in ("first delivery", "exact repeat (already processed)"):
        ROUND_TRIPS.clear()
        with CaptureQueriesContext(connection) as ctx:
            response = post(client, body)
        print(f"\n{label}: HTTP {response.status_code}")
        for i, query in enumerate(ctx.captured_queries, 1):
            print(f"  {i:2d}. {shorten(query['sql'])}")
        writes = ROUND_TRIPS.pop("autocommit_writes", 0)
        trips = dict(ROUND_TRIPS)
        print(
            f"  -> {len(ctx.captured_queries)} logged statements; {sum(trips.values())} driver round trips {trips}; "
            f"{trips.get('commit', 0) + writes} durable commits ({writes} of them autocommit writes)"
        )


def run_one_task() -> None:
    """One task, as `manage.py db_worker` runs it (claim the oldest ready row, run it, save the result)."""
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=1,
        worker_id="profile",
        excluded_queue_names=[],
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the console email backend prints every receipt
        worker.run()


def stored(client: Client, bodies: list[bytes], show: bool) -> None:
    phases = {"request": lambda body: post(client, body), "apply": lambda body: run_one_task()}
    phases["notify"] = phases["apply"]
    if show:
        for name, step in phases.items():
            ROUND_TRIPS.clear()
            with CaptureQueriesContext(connection) as ctx:
                step(bodies[0])
            print(f"\n{name} (CALLBACK_ACK=stored):")
            for i, query in enumerate(ctx.captured_queries, 1):
                print(f"  {i:2d}. {shorten(query['sql'])}")
            writes = ROUND_TRIPS.pop("autocommit_writes", 0)
            trips = dict(ROUND_TRIPS)
            print(
                f"  -> {len(ctx.captured_queries)} logged statements; {sum(trips.values())} driver round trips "
                f"{trips}; {trips.get('commit', 0) + writes} durable commits ({writes} of them autocommit writes)"
            )
        return
    for name in phases:  # warm every phase once
        phases[name](bodies[0])
    bodies = bodies[1:]
    totals = {name: collections.Counter() for name in phases}
    cpu = dict.fromkeys(phases, 0.0)
    for body in bodies:
        for name, step in phases.items():
            ROUND_TRIPS.clear()
            started = time.process_time()
            step(body)
            cpu[name] += time.process_time() - started
            totals[name].update(ROUND_TRIPS)
    n = len(bodies)
    for name, trips in totals.items():
        writes = trips.pop("autocommit_writes", 0)
        print(
            f"PROFILE variant=stored-{name} callbacks={n} statements={trips['query'] / n:.2f} "
            f"round_trips={sum(trips.values()) / n:.2f} commits={(trips['commit'] + writes) / n:.2f} "
            f"python_cpu_ms={cpu[name] * 1000 / n:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bodies", type=Path)
    parser.add_argument("--start", type=int, default=0, help="first line to use (earlier lines were sent)")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--list", action="store_true", help="print the statements of one callback and a repeat")
    parser.add_argument("--stored", action="store_true", help="CALLBACK_ACK=stored: request, apply, notify")
    args = parser.parse_args()
    count_round_trips()
    lines = args.bodies.read_text().splitlines()[args.start :]
    client = Client(HTTP_HOST="127.0.0.1")
    connection.ensure_connection()
    if args.stored:
        from django.conf import settings

        if settings.CALLBACK_ACK != "stored" or settings.TASKS_BACKEND != "database":
            sys.exit("--stored needs CALLBACK_ACK=stored and TASKS_BACKEND=database")
        # Only the bodies' own payments: skip exact repeats (a repeat queues no notification).
        unique = list(dict.fromkeys(line.encode() for line in lines[: args.n]))
        stored(client, unique, args.list)
        return
    if args.list:
        listing(client, lines[0].encode())
        return

    bodies = [line.encode() for line in lines[: args.n]]
    post(client, bodies[0])  # warm caches, imports, the connection
    bodies = bodies[1:]
    ROUND_TRIPS.clear()
    statuses: collections.Counter = collections.Counter()
    cpu, wall, server = time.process_time(), time.perf_counter(), server_cpu_ticks()
    for body in bodies:
        statuses[post(client, body).status_code] += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    server_after = server_cpu_ticks()
    n = len(bodies)
    db_ms = f"{(server_after - server) * 10 / n:.2f}" if server is not None and server_after is not None else "n/a"
    writes = ROUND_TRIPS.pop("autocommit_writes", 0)
    durable = (ROUND_TRIPS["commit"] + writes) / n
    trips = {k: round(v / n, 2) for k, v in sorted(ROUND_TRIPS.items())}
    print(
        f"PROFILE variant=app callbacks={n} http={dict(statuses)} "
        f"statements={ROUND_TRIPS['query'] / n:.2f} round_trips={sum(ROUND_TRIPS.values()) / n:.2f} "
        f"commits={durable:.2f} python_cpu_ms={cpu * 1000 / n:.2f} db_cpu_ms={db_ms} "
        f"wall_ms={wall * 1000 / n:.2f} breakdown={trips}"
    )


if __name__ == "__main__":
    main()
