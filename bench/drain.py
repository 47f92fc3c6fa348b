"""Backlog drain: how fast N task workers apply callbacks that were acknowledged once stored (CALLBACK_ACK=stored).

    .venv/bin/python bench/drain.py                              # 10 000 deliveries; N = 1, 2, 4; database and rq
    .venv/bin/python bench/drain.py --count 4000 --workers 1,2 --backends database --batch-sizes 1,50

1. Resets the MariaDB database --db (donations_bench_drain), migrates it, seeds --count pending AzamPay payments
   (bench/setup_payments.py, no repeats).
2. Stores one authenticated success callback per payment **through the real webhook**: gunicorn
   (config.wsgi, 2 sync workers) with CALLBACK_ACK=stored and TASKS_BACKEND=database, wrk through the bodies,
   and no task worker running — so every delivery is an inbox row `received`, and the queue holds what the
   webhook leaves behind (one coalesced `callbacks_drain` task for the backlog, its flag set). Then mysqldump
   keeps that state as a snapshot.
3. Per backend and per N: reloads the snapshot (so every run starts from the same backlog); for `rq` the
   task the webhook queued is put on the RQ queue (one `callbacks_drain`: the webhook queues one for a backlog)
   in a process with TASKS_BACKEND=rq; starts N workers —
   `manage.py db_worker --interval 0.1`, or `manage.py rqworker --job-class django_tasks_rq.Job default` —
   and times, polling SQL every 0.2 s, until every event is settled and every payment credited (bounded by
   --timeout; a run that times out reports its partial rate), then until the queue is empty (the donors'
   notification tasks the credits enqueued, behind the backlog). Then `manage.py verify_ledger`.
4. Prints one DRAIN line per run: from the workers' start to all credited (includes ~2 s of worker start-up),
   the steady rate between the first and the last credit (payment.completed_at, from SQL), and the CPU of the
   workers and MariaDB per callback.

rq is measured only when django_tasks_rq is importable and Redis answers at --redis-url (default
redis://127.0.0.1:6379/14) holding no keys other than rq:* (it is shared); the rq:* keys are deleted after.
Only ever talks to 127.0.0.1; workers and gunicorn are stopped (by pid) whatever happens.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PY = os.environ.get("PY", str(BASE_DIR / ".venv" / "bin" / "python"))
MYSQL = ["mysql", "-uroot", "-h127.0.0.1", "-P3306", "--protocol=TCP"]
PORT = int(os.environ.get("BENCH_PORT", "8098"))
CALLBACK_PATH = "/api/v1.0/donors/payment/azampay/callback/"
RUNNING: list[subprocess.Popen] = []
# The values bench/run.sh uses: a throwaway key and the callback password the seeded bodies carry.
BENCH_SECRET_KEY = "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
BENCH_CALLBACK_PASSWORD = "bench-password"  # noqa: S105
# The worker class comes from the settings (RQ_WORKER_CLASS, SimpleWorker); BENCH_RQ_WORKER_CLASS overrides it.
RQ_WORKER_ARGS = (
    [f"--worker-class={os.environ['BENCH_RQ_WORKER_CLASS']}"] if os.environ.get("BENCH_RQ_WORKER_CLASS") else []
)


def log(message: str) -> None:
    print(f"[drain {time.monotonic() - STARTED:5.0f}s] {message}", flush=True)


STARTED = time.monotonic()


def production_env(db: str, work: Path) -> dict[str, str]:
    """The settings bench/run.sh uses (.env.production.example, the webhook rate limit lifted)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PAYMENTS_SANDBOX_URL", "CACHE_URL", "TASKS_REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY=BENCH_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{db}",
        CONN_MAX_AGE="60",
        AZAMPAY_CALLBACK_PASSWORD=BENCH_CALLBACK_PASSWORD,
        WEBHOOK_RATE_LIMIT_PER_MINUTE="1000000000",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        LOG_DIR=str(work / "logs"),
        TASKS_BACKEND="database",
        CALLBACK_ACK="stored",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run(cmd: list[str], env: dict, *, stdin=None, stdout=None, timeout: float = 600) -> None:
    subprocess.run(cmd, env=env, cwd=BASE_DIR, stdin=stdin, stdout=stdout, check=True, timeout=timeout)


def start(cmd: list[str], env: dict, logfile: Path) -> subprocess.Popen:
    with logfile.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT)
    RUNNING.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in RUNNING:
        RUNNING.remove(proc)


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    return total


def db_pids() -> list[int]:
    for name in ("mariadbd", "mysqld"):
        out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        if out:
            return [int(p) for p in out]
    return []


class Sql:
    """A plain mysqlclient connection to the drain database (no Django in this process)."""

    def __init__(self, db: str):
        import MySQLdb

        self.db = db
        self.conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", database=db, autocommit=True)

    def scalar(self, sql: str) -> float:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            value = cursor.fetchone()[0]
        return float(value or 0)

    def close(self) -> None:
        self.conn.close()


def reset_db(db: str, env: dict, snapshot: Path | None = None) -> None:
    sql = f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    run([*MYSQL, "-e", sql], env)
    if snapshot is not None:
        with snapshot.open("rb") as dump:
            run([*MYSQL, db], env, stdin=dump)


def store_deliveries(args, env: dict, work: Path, bodies: Path) -> dict:
    """Through the real webhook: gunicorn with CALLBACK_ACK=stored, no task worker, wrk through the bodies."""
    gunicorn = start(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            "2",
            "--backlog",
            "2048",
            "--timeout",
            "60",
            "--log-level",
            "warning",
        ],
        env,
        work / "gunicorn.log",
    )
    try:
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health/", timeout=2).read()
                break
            except OSError:
                if gunicorn.poll() is not None:
                    sys.exit(f"gunicorn exited: {(work / 'gunicorn.log').read_text()[-2000:]}")
                time.sleep(0.2)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c16",
                "-d300s",
                "--timeout",
                "10s",
                "-s",
                str(BASE_DIR / "bench" / "callbacks.lua"),
                f"http://127.0.0.1:{PORT}{CALLBACK_PATH}",
                "--",
                str(bodies),
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=BASE_DIR,
        ).stdout
    finally:
        stop(gunicorn)
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), "")
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def enqueue_rq(db: str) -> None:
    """(in a subprocess with TASKS_BACKEND=rq) put every stored, unsettled event on the RQ queue."""
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from payments.models import QueuedFlag
    from payments.services.dispatch import callbacks_drain

    # What the webhook leaves on the queue for a backlog of payment callbacks: one drain (its flag is in the
    # snapshot, set); the drain itself queues a second one while its claims come back full.
    QueuedFlag.objects.update(queued_at=None)
    callbacks_drain.enqueue()
    print("enqueued 1 drain")


def redis_usable(url: str) -> str:
    """'' when Redis answers at url and holds only rq:* keys; else why not."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        other = [k for k in client.scan_iter(count=1000) if not k.startswith(b"rq:")]
    except Exception as exc:  # any failure: skip rq with the reason
        return f"Redis at {url} does not answer ({type(exc).__name__}: {exc})"
    return f"Redis at {url} holds other keys ({other[:3]}...)" if other else ""


def redis_clear_rq(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    keys = list(client.scan_iter(match="rq:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])


def drain_run(args, backend: str, n: int, env: dict, work: Path, snapshot: Path) -> dict:
    reset_db(args.db, env, snapshot)
    run_env = dict(env)
    if backend == "rq":
        run_env.update(TASKS_BACKEND="rq", TASKS_REDIS_URL=args.redis_url)
        redis_clear_rq(args.redis_url)
        out = subprocess.run(
            [PY, str(Path(__file__).resolve()), "--enqueue-rq", "--db", args.db],
            env=run_env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"enqueueing on RQ failed: {out.stderr[-2000:]}")
    sql = Sql(args.db)
    # The deliveries stored (wrk's last in-flight requests, at most one per connection, may never have arrived).
    total = int(sql.scalar("SELECT COUNT(*) FROM payments_callbackevent WHERE status = 'received'"))
    if backend == "database":
        queued = "SELECT COUNT(*) FROM django_tasks_database_dbtaskresult WHERE status IN ('READY', 'RUNNING')"
    else:
        queued = ""
    workers = []
    t_start = time.time()
    for i in range(1, n + 1):
        if backend == "rq":
            cmd = [PY, "manage.py", "rqworker", "--job-class", "django_tasks_rq.Job", *RQ_WORKER_ARGS, "default"]
        else:
            cmd = [PY, "manage.py", "db_worker", "--interval", "0.1", "--no-reload", "--worker-id", f"drain-{n}-{i}"]
        workers.append(start(cmd, run_env, work / f"worker-{backend}-{n}-{i}.log"))
    credited_at = empty_at = None
    credited = 0
    deadline = t_start + args.timeout
    pids = [w.pid for w in workers]
    # CPU is counted between the first poll that sees a credit and the one that sees them all: the workers'
    # start-up (Django import, system checks: ~1 s of CPU each) is left out.
    first_seen: tuple[int, int, int] | None = None
    last_seen = (0, 0, 0)
    open_sql = "SELECT COUNT(*) FROM payments_callbackevent WHERE status IN ('received', 'failed')"
    try:
        while time.time() < deadline:
            credited = int(sql.scalar("SELECT COUNT(*) FROM payments_payment WHERE status = 'succeeded'"))
            open_events = int(sql.scalar(open_sql))
            now = time.time()
            if credited and credited_at is None:
                last_seen = (credited, cpu_ticks(pids), cpu_ticks(db_pids()))
                first_seen = first_seen or last_seen
            if credited_at is None and credited >= total and open_events == 0:
                credited_at = now
            if credited_at is not None:
                pending = int(sql.scalar(queued)) if queued else rq_pending(args.redis_url)
                if pending == 0:
                    empty_at = now
                    break
            time.sleep(0.2)
    finally:
        for worker in workers:
            stop(worker)
    first = sql.scalar("SELECT UNIX_TIMESTAMP(MIN(completed_at)) FROM payments_payment WHERE status = 'succeeded'")
    last = sql.scalar("SELECT UNIX_TIMESTAMP(MAX(completed_at)) FROM payments_payment WHERE status = 'succeeded'")
    failed = int(sql.scalar("SELECT COUNT(*) FROM payments_callbackevent WHERE status IN ('failed', 'dead')"))
    sql.close()
    ledger = subprocess.run([PY, "manage.py", "verify_ledger"], env=env, cwd=BASE_DIR, capture_output=True, timeout=120)
    elapsed = (credited_at or time.time()) - t_start
    first_seen = first_seen or last_seen
    counted = max(1, last_seen[0] - first_seen[0])
    result = {
        "backend": backend,
        "workers": n,
        "callbacks": total,
        "credited": credited,
        "timed_out": int(credited_at is None),
        "to_all_credited_s": round(elapsed, 1),
        "rate_per_s": round(credited / elapsed, 1) if elapsed > 0 else 0,
        "steady_rate_per_s": round((credited - 1) / (last - first), 1) if last > first else 0,
        "queue_empty_s": round(empty_at - t_start, 1) if empty_at else "-",
        "worker_cpu_ms": round((last_seen[1] - first_seen[1]) * 10 / counted, 2),
        "db_cpu_ms": round((last_seen[2] - first_seen[2]) * 10 / counted, 2),
        "failed_events": failed,
        "verify_ledger": "OK" if ledger.returncode == 0 else "DRIFT",
    }
    if backend == "rq":
        redis_clear_rq(args.redis_url)
    return result


def rq_pending(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    return int(client.llen("rq:queue:default")) + int(client.zcard("rq:wip:default"))


def busy_percent(seconds: float = 2.0) -> int:
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7], sum(fields)

    b0, a0 = sample()
    time.sleep(seconds)
    b1, a1 = sample()
    return (b1 - b0) * 100 // max(1, a1 - a0)


def wait_quiet(limit: int, budget: float) -> int:
    end = time.monotonic() + budget
    while True:
        bg = busy_percent()
        if bg <= limit or time.monotonic() >= end:
            return bg
        log(f"  machine {bg}% busy without us: waiting for it to calm down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    parser.add_argument("--backends", default="database,rq")
    parser.add_argument(
        "--batch-sizes", default="1,50", help="CALLBACK_BATCH_SIZE of each run (1: one callback per task, as before)"
    )
    parser.add_argument("--timeout", type=float, default=150.0, help="per run, from the workers' start (s)")
    parser.add_argument("--db", default="donations_bench_drain")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--quiet-limit", type=int, default=20, help="wait while the machine is busier (%%)")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="at most this long per run (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--enqueue-rq", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.db.startswith("donations_bench"):
        sys.exit("--db must start with donations_bench (it is dropped and recreated)")
    if args.enqueue_rq:
        enqueue_rq(args.db)
        return

    work = Path(tempfile.mkdtemp(prefix="donations-drain."))
    env = production_env(args.db, work)
    log(f"work dir {work}; database {args.db}; {args.count} deliveries; workers {args.workers}; {args.backends}")
    backends = [b for b in args.backends.split(",") if b]
    if "rq" in backends:
        probe = subprocess.run(
            [PY, "-c", "import django_tasks_rq.backend"],
            env={**env, "TASKS_BACKEND": "rq"},
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
        )
        reason = "django_tasks_rq is not importable" if probe.returncode else redis_usable(args.redis_url)
        if reason:
            log(f"skipping rq: {reason}")
            backends.remove("rq")
    try:
        log("resetting the database, migrating, seeding")
        reset_db(args.db, env)
        run([PY, "manage.py", "migrate", "--noinput", "-v0"], env)
        seed_env = {**env, "LOG_LEVEL": "WARNING"}
        parts = 4

        def seeder(i: int) -> subprocess.Popen:
            size = args.count // parts + (1 if i < args.count % parts else 0)
            cmd = [PY, "bench/setup_payments.py", "--out", str(work), "--dup-ratio", "0", "--set", f"drain{i}:{size}"]
            return subprocess.Popen(cmd, env=seed_env, cwd=BASE_DIR, stdout=subprocess.DEVNULL)

        # The first one creates the patients; the others then reuse them, in parallel.
        seeders = [seeder(0)]
        if seeders[0].wait(900):
            sys.exit("seeding failed")
        seeders = [seeder(i) for i in range(1, parts)]
        if any(s.wait(900) for s in seeders):
            sys.exit("seeding failed")
        bodies = work / "drain.jsonl"
        bodies.write_text("".join((work / f"drain{i}.jsonl").read_text() for i in range(parts)))
        log(f"storing {args.count} deliveries through the webhook (CALLBACK_ACK=stored, no task worker)")
        stored = store_deliveries(args, env, work, bodies)
        log(f"  wrk: {stored.get('requests')} answered at {stored.get('rps')}/s, p99 {stored.get('p99_ms')} ms")
        sql = Sql(args.db)
        events = int(sql.scalar("SELECT COUNT(*) FROM payments_callbackevent WHERE status = 'received'"))
        tasks = int(sql.scalar("SELECT COUNT(*) FROM django_tasks_database_dbtaskresult WHERE status = 'READY'"))
        sql.close()
        log(f"  stored: {events} inbox rows received, {tasks} tasks queued (callbacks_drain, coalesced)")
        snapshot = work / "stored.sql"
        with snapshot.open("wb") as out:
            run(
                ["mysqldump", "-uroot", "-h127.0.0.1", "-P3306", "--protocol=TCP", "--single-transaction", args.db],
                env,
                stdout=out,
            )
        results = []
        for backend in backends:
            sizes = [b for b in args.batch_sizes.split(",") if b]
            for size, n in [(b, int(x)) for b in sizes for x in args.workers.split(",") if x]:
                bg = wait_quiet(args.quiet_limit, args.quiet_wait)
                load = os.getloadavg()[0]
                log(f"{backend}: {n} worker(s), batches of {size}, on the backlog (background load {bg}%)")
                run_env = {**env, "CALLBACK_BATCH_SIZE": size}
                result = drain_run(args, backend, n, run_env, work, snapshot) | {"batch": size, "bg": f"{bg}%"}
                results.append(result | {"load1": f"{load:.1f}"})
                print("DRAIN " + " ".join(f"{k}={v}" for k, v in results[-1].items()), flush=True)
        print()
        print(f"{args.count} stored callbacks, drained by N workers ({time.strftime('%F %T', time.gmtime())} UTC)")
        head = (
            "backend",
            "batch",
            "N",
            "credited",
            "to_all_s",
            "rate/s",
            "steady/s",
            "queue_empty_s",
            "wk_cpu",
            "db_cpu",
            "ledger",
            "bg",
            "load1",
        )
        print("  ".join(f"{h:>13}" if i > 2 else f"{h:<8}" for i, h in enumerate(head)))
        for r in results:
            credited = f"{r['credited']}{'*' if r['timed_out'] else ''}"
            row = (
                r["backend"],
                r["batch"],
                r["workers"],
                credited,
                r["to_all_credited_s"],
                r["rate_per_s"],
                r["steady_rate_per_s"],
                r["queue_empty_s"],
                r["worker_cpu_ms"],
                r["db_cpu_ms"],
                r["verify_ledger"],
                r["bg"],
                r["load1"],
            )
            print("  ".join(f"{v!s:>13}" if i > 2 else f"{v!s:<8}" for i, v in enumerate(row)))
        print("to_all_s: from starting the workers to every callback settled and credited (* = timed out);")
        print("steady: (credited - 1) / (last - first payment.completed_at); cpu: ms per credited callback")
        print(f"details: {work}")
        (work / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        for proc in list(RUNNING):
            stop(proc, 10)
        if not args.keep and "results" in locals():
            shutil.rmtree(work / "logs", ignore_errors=True)


if __name__ == "__main__":
    # SIGTERM (kill, timeout) must run the finally blocks that stop the workers and gunicorn by pid: Python's
    # default would end the process at once and leave them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
