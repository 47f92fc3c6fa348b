"""The fault storm at a bigger size, outside pytest: does every acknowledged callback end credited once?

    .venv/bin/python bench/fault_storm.py [--deliveries 600] [--fault sigkill|db|redis] [--workers 3] ...

Drops and recreates the MariaDB database `donations_faults_bench` (root, no password, 127.0.0.1:3306),
migrates it, seeds pending AzamPay/STK/MTN MoMo/Airtel Money payments, C2B paybill confirmations and sent B2C
payouts, starts gunicorn (plus a fake Daraja/AzamPay/MTN/Airtel whose MTN request-to-pay status GET and Airtel
enquiry answer "paid" for the seeded references, and for --fault db a TCP proxy in front of MariaDB, for
--fault redis a private redis-server as CACHE_URL), delivers every callback like a provider (resent until a
2xx, ~10% sent twice; MTN's by PUT to the payment's secret URL, Airtel's with its `hash`) while the fault
happens (sigkill: a random worker SIGKILLed every 0.2-1 s; db: MariaDB unreachable for --outage seconds; redis:
the cache killed for --outage seconds), runs `reconcile_payments --older-than 0s` twice and `verify_ledger`,
and prints per rail: deliveries, kills, acknowledged, credited, held for review, lost. Exit status 1 when
anything acknowledged was lost, credited twice, half-written, the ledger drifted, a delivery kind was left
out, or an answer during the outage was not the promised one (db: 503 with the JSON error body; redis: a
2xx). Takes about 1-2 minutes for 600 deliveries on 2 cores. Everything stays on 127.0.0.1. See
bench/FAULTS.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "donations_faults_bench"
MYSQL = ["mysql", "-uroot", "-h127.0.0.1", "-P3306", "--protocol=TCP"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--deliveries", type=int, default=600, help="distinct callbacks, spread over the 6 delivery kinds"
    )
    parser.add_argument("--fault", choices=("sigkill", "db", "redis"), default="sigkill")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--senders", type=int, default=6, help="provider threads sending callbacks")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(0.2, 1.0), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--spare-younger-than",
        type=float,
        default=2.5,
        help="seconds a respawned worker is spared (booting, its first request); 1.0 stalls a busy 2-core box",
    )
    parser.add_argument("--outage", type=float, default=10.0, help="seconds MariaDB/redis is down (db, redis)")
    parser.add_argument(
        "--pace",
        type=float,
        default=None,
        help="seconds between new deliveries (default: sigkill 0.1; db/redis: fit the outage)",
    )
    parser.add_argument("--give-up-after", type=float, default=90.0, help="a provider stops resending after this")
    parser.add_argument(
        "--hashed-share", type=float, default=0.5, help="C2B confirmations with the hashed MSISDN (rest masked)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) even on success")
    return parser.parse_args()


def reset_database(env: dict[str, str]) -> None:
    statement = (
        f"DROP DATABASE IF EXISTS {DATABASE}; "
        f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    subprocess.run([*MYSQL, "-e", statement], check=True, timeout=60)
    from payments.faults.processes import manage

    result = manage(env, "migrate", "--noinput", "-v0", timeout=300)
    if result.returncode:
        sys.exit(f"migrate failed:\n{result.stdout}{result.stderr}")


def setup_django(workdir: Path, secret_key: str) -> None:
    """This process seeds and counts through the ORM, on the same database as gunicorn."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECRET_KEY": secret_key,
            "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DATABASE}",
            "LOG_DIR": str(workdir / "seed-logs"),
        }
    )
    import django

    django.setup()


def log(started: float, message: str) -> None:
    print(f"[faults {time.monotonic() - started:5.1f}s] {message}", flush=True)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fault-storm."))
    from payments.faults import harness

    secrets = harness.Secrets.generate()
    deliveries = prepare(args, workdir, secrets, started)
    rig = harness.FaultRig(
        database=DATABASE,
        workdir=workdir,
        secrets=secrets,
        via_proxy=args.fault == "db",
        with_redis=args.fault == "redis",
        workers=args.workers,
        deliveries=deliveries,  # the sandbox learns these and answers "paid" for them
    )
    with rig:
        log(started, f"gunicorn up on {rig.gunicorn.base_url} ({args.workers} workers); storm: {args.fault}")
        records, kills, window = run_storm(rig, deliveries, args)
        log(started, f"storm done: {kills} SIGKILLs; recovering (reconcile_payments twice)")
        recovery = rig.recover()
        ledger = rig.verify_ledger()
    failed = report(args, rig, records, kills, window, [*recovery, ledger])
    print(f"\n{'FAIL' if failed else 'OK'} in {time.monotonic() - started:.0f} s; logs in {workdir}")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def prepare(args: argparse.Namespace, workdir: Path, secrets, started: float) -> list:
    """A fresh, migrated donations_faults_bench and the seeded deliveries."""
    from payments.faults import harness

    setup_django(workdir, secrets.secret_key)
    migrate_env = harness.app_env(
        database_url=f"mysql://root@127.0.0.1:3306/{DATABASE}",
        provider_url="http://127.0.0.1:9",  # migrate calls no provider
        log_dir=workdir / "seed-logs",
        secrets=secrets,
    )
    log(started, f"resetting {DATABASE} and migrating (work directory {workdir})")
    reset_database(migrate_env)
    plan = harness.StormPlan.spread(args.deliveries, hashed_msisdn_share=args.hashed_share)
    deliveries = harness.seed_storm(plan, secrets, seed=args.seed)
    log(started, f"seeded {plan.total} deliveries: {plan}")
    return deliveries


def report(args: argparse.Namespace, rig, records, kills: int, window, commands) -> bool:
    """Print the table and the evidence; True when a promise was broken."""
    from payments.faults import harness

    figures = harness.account(records)
    problems = harness.ledger_problems()
    covered = {row.rail.split()[0] for row in figures}
    if covered != set(harness.RAILS):
        problems.append(f"delivery kinds left out of the storm: {sorted(set(harness.RAILS) - covered)}")
    print()
    print(harness.figures_table(figures, kills))
    print()
    print(harness.figures_line(f"bench {args.fault}", figures, kills))
    if window is not None:
        expected = "503" if args.fault == "db" else "2xx"
        outage_problems, summary = harness.outage_answers(records, window, expected=expected, at_least=15)
        print(summary)
        problems += outage_problems
    for result in commands:
        print(harness.command_summary(result))
    print("inbox:\n" + harness.inbox_summary())
    print(f"gunicorn log: {dict(harness.gunicorn_events(rig.gunicorn.log_path))}")
    for line, count in harness.exception_counts(rig.log_dir):
        print(f"errors.log {count}x: {line}")
    if problems:
        print("problems:\n  " + "\n  ".join(problems))
    total = harness.totals(figures)
    if total.lost:
        print("some lost deliveries:\n" + harness.lost_stories(records))
    if total.review or total.noisy:
        print("in review (held, or credited once with a repeat's inbox row in review):")
        print(harness.review_stories(records))
    failed_command = any(result.returncode for result in commands)
    return bool(total.lost or total.extra or total.unacknowledged or problems or failed_command)


def run_storm(rig, deliveries: list, args: argparse.Namespace) -> tuple[list, int, object]:
    """(delivery records, SIGKILLs sent, the outage window or None)."""
    from payments.faults import harness

    if args.fault == "sigkill":
        pace = args.pace if args.pace is not None else 0.1  # as in the pytest scenario: ~40 kills per 28 s
        storm = storm_for(rig, deliveries, args, pace)
        killer = harness.WorkerKiller(
            rig.gunicorn, interval=tuple(args.kill_every), min_age=args.spare_younger_than, seed=args.seed
        )
        with killer:
            records = storm.run()
        return records, len(killer.kills), None
    # An outage 3 s in; deliveries paced so that they keep flowing for ~outage + 10 s.
    pace = args.pace if args.pace is not None else (args.outage + 13) / max(1, len(deliveries))
    if args.fault == "db":
        down, up, name = rig.proxy.cut, rig.proxy.restore, "MariaDB"
    else:
        down, up, name = rig.redis.kill, rig.redis.start, "redis"
    storm = storm_for(rig, deliveries, args, pace)
    outage = harness.ScheduledOutage(name, after=3.0, duration=args.outage, down=down, up=up, when=rig.gunicorn.serving)
    with outage:
        records = storm.run()
    return records, 0, outage.window


def storm_for(rig, deliveries: list, args: argparse.Namespace, pace: float):
    # Bounded: however the server behaves, sending stops after the paced schedule plus one give-up period.
    bound = len(deliveries) * pace + args.give_up_after + 120
    return rig.storm(
        deliveries,
        senders=args.senders,
        pace=pace,
        give_up_after=args.give_up_after,
        max_seconds=bound,
        seed=args.seed,
    )


if __name__ == "__main__":
    sys.exit(main())
