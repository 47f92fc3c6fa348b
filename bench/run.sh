#!/usr/bin/env bash
# Callback throughput benchmark: gunicorn + MariaDB, authenticated AzamPay callbacks driven by wrk.
#
#   make bench            (= bash bench/run.sh)
#
# Resets the MariaDB database $BENCH_DB (default donations_bench, root without a password on 127.0.0.1:3306),
# migrates it, seeds pending payments, starts gunicorn on 127.0.0.1:$BENCH_PORT, warms it up, then for each
# concurrency in $BENCH_CONNECTIONS runs wrk (1 thread) for $BENCH_DURATION against its own set of fresh
# payments (~10% of the bodies are exact repeats), stops gunicorn, runs `manage.py verify_ledger` and the
# SQL checks of bench/check_results.py, and prints a summary table. Only ever talks to 127.0.0.1.
# Then (BENCH_PROFILE=1, the default) it measures one callback at a time in-process with
# bench/profile_callback.py: statements, round trips, commits and CPU of the application.
# Knobs (environment): BENCH_WORKERS (4), BENCH_WORKER_CLASS (sync|gthread), BENCH_THREADS, BENCH_DURATION (15s),
# BENCH_CONNECTIONS ("16 64"), BENCH_PAYMENTS (15000 per concurrency), BENCH_PATIENTS, BENCH_LOG_LEVEL (INFO),
# BENCH_TASKS_BACKEND (database), BENCH_WSGI (bench.raw_reference_wsgi:application: the bare raw-SQL calibration app),
# BENCH_QUIET_WAIT, BENCH_PROFILE, BENCH_PYSPY (a py-spy binary: samples the workers into $WORK/profile-c*.txt).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
PORT=${BENCH_PORT:-8099}
DB=${BENCH_DB:-donations_bench}
DURATION=${BENCH_DURATION:-15s}
CONNECTIONS=${BENCH_CONNECTIONS:-"16 64"}
PAYMENTS=${BENCH_PAYMENTS:-15000}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}   # seconds, in all, to wait for other load on the machine to go away
PATIENTS=${BENCH_PATIENTS:-100}
WORKERS=${BENCH_WORKERS:-4}
WORKER_CLASS=${BENCH_WORKER_CLASS:-sync}
THREADS=${BENCH_THREADS:-1}
WSGI_APP=${BENCH_WSGI:-config.wsgi:application}   # or bench.raw_reference_wsgi:application
URL_PATH=/api/v1.0/donors/payment/azampay/callback/
BASE_URL=http://127.0.0.1:$PORT
MYSQL=(mysql -uroot -h127.0.0.1 -P3306 --protocol=TCP)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/donations-bench.XXXXXX")
GUNICORN_PID=""
SECONDS=0

log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

cleanup() {
    if [[ -n "$GUNICORN_PID" ]] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
        kill -TERM "$GUNICORN_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$GUNICORN_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_gunicorn() {
    # Graceful: workers finish the request in hand, so the checks below see every delivered callback.
    [[ -n "$GUNICORN_PID" ]] || return 0
    kill -TERM "$GUNICORN_PID" 2>/dev/null || true
    wait "$GUNICORN_PID" 2>/dev/null || true
    GUNICORN_PID=""
}

# --- prerequisites ------------------------------------------------------------------------------------
[[ -x "$PY" ]] || die "$PY not found: run 'make install' first"
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk not found: installing it with apt-get"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get install -y wrk || { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y wrk; }
fi
command -v "${MYSQL[0]}" >/dev/null || die "the mysql client is needed (apt-get install -y mariadb-client)"
"${MYSQL[@]}" -e 'SELECT 1' >/dev/null 2>&1 || die "no MariaDB/MySQL answering as root on 127.0.0.1:3306"
"$PY" -c 'import gunicorn, MySQLdb' 2>/dev/null || die "gunicorn and mysqlclient must be installed in $PY"

# Production-like settings: DEBUG off, persistent connections, the authenticated-callback password.
export DJANGO_SETTINGS_MODULE=config.settings
export DEBUG=0
export SECRET_KEY=bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz
export ALLOWED_HOSTS=127.0.0.1
export DATABASE_URL="mysql://root@127.0.0.1:3306/$DB"
export CONN_MAX_AGE=60
export AZAMPAY_CALLBACK_PASSWORD=bench-password
export WEBHOOK_RATE_LIMIT_PER_MINUTE=1000000000   # one client IP sends everything: keep the limiter out of it
export LOG_LEVEL=${BENCH_LOG_LEVEL:-INFO}         # the production default
export LOG_DIR=$WORK/logs
export TASKS_BACKEND=${BENCH_TASKS_BACKEND:-database}   # production: notifications are queued rows
export PYTHONDONTWRITEBYTECODE=1
unset PAYMENTS_SANDBOX_URL CACHE_URL

log "work dir $WORK; gunicorn $WSGI_APP $WORKER_CLASS workers=$WORKERS threads=$THREADS; wrk -t1 -c{$CONNECTIONS} -d$DURATION"

# --- database and fixtures ----------------------------------------------------------------------------
log "resetting database $DB"
"${MYSQL[@]}" -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
"$PY" manage.py migrate --noinput -v0

log "seeding $PATIENTS patients and $PAYMENTS pending payments per concurrency level"
LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --set warmup:2000
pids=()
for c in $CONNECTIONS; do
    LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --set "c$c:$PAYMENTS" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || die "seeding failed"; done

# --- gunicorn -----------------------------------------------------------------------------------------
log "starting gunicorn on $BASE_URL"
"$PY" -m gunicorn "$WSGI_APP" \
    --bind "127.0.0.1:$PORT" --workers "$WORKERS" --worker-class "$WORKER_CLASS" --threads "$THREADS" \
    --backlog 2048 --timeout 60 --log-level warning --error-logfile "$WORK/gunicorn.log" >"$WORK/gunicorn.out" 2>&1 &
GUNICORN_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$BASE_URL/health/" 2>/dev/null && break
    kill -0 "$GUNICORN_PID" 2>/dev/null || die "gunicorn exited: $(tail -20 "$WORK/gunicorn.log")"
    sleep 0.2
done
curl -fsS -o /dev/null "$BASE_URL/health/" || die "gunicorn did not answer /health/ within 20 s"

ticks() {  # ticks PID... -> user+system CPU ticks of those processes (missing ones count 0)
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
gunicorn_pids() { echo "$GUNICORN_PID" $(pgrep -P "$GUNICORN_PID" || true); }
db_pids() { pgrep -x mariadbd || pgrep -x mysqld || true; }
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
all_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# The machine may be shared: before each measured run, sample how busy it is without us for 2 s and, while it
# is over 20%, wait (at most $QUIET_WAIT seconds over the whole benchmark). The figure goes in the summary.
quiet_budget_end=-1
wait_quiet() {  # wait_quiet SET -> background CPU % in $WORK/bg-SET.txt
    local b0 a0 b1 a1 bg
    (( quiet_budget_end >= 0 )) || quiet_budget_end=$(( SECONDS + QUIET_WAIT ))
    while :; do
        b0=$(busy_ticks); a0=$(all_ticks); sleep 2; b1=$(busy_ticks); a1=$(all_ticks)
        bg=$(( (b1 - b0) * 100 / (a1 - a0 > 0 ? a1 - a0 : 1) ))
        (( bg <= 20 || SECONDS >= quiet_budget_end )) && break
        log "  machine ${bg}% busy without us: waiting for it to calm down"
    done
    echo "$bg" >"$WORK/bg-$1.txt"
}

run_wrk() {  # run_wrk SET CONNECTIONS DURATION -> wrk output in $WORK/wrk-SET.txt, CPU use in $WORK/cpu-SET.txt
    local g0 m0 b0 w0 g1 m1 b1 w1 workers
    workers=$(gunicorn_pids)
    g0=$(ticks $workers); m0=$(ticks $(db_pids)); b0=$(busy_ticks); w0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
    timeout 120 wrk -t1 -c"$2" -d"$3" --timeout 10s --latency -s bench/callbacks.lua \
        "$BASE_URL$URL_PATH" -- "$WORK/$1.jsonl" 1 >"$WORK/wrk-$1.txt" 2>&1 || die "wrk failed: $(cat "$WORK/wrk-$1.txt")"
    g1=$(ticks $workers); m1=$(ticks $(db_pids)); b1=$(busy_ticks); w1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
    grep '^BENCH ' "$WORK/wrk-$1.txt" >/dev/null || die "no BENCH line from wrk: $(cat "$WORK/wrk-$1.txt")"
    # CPU milliseconds per completed callback (1 tick = 10 ms): gunicorn workers, the database server,
    # wrk (this shell's reaped children), and the whole machine (everything, other tenants included).
    awk -v n="$(field "$1" requests)" -v s="$(field "$1" duration_s)" -v g=$((g1 - g0)) -v m=$((m1 - m0)) \
        -v w=$((w1 - w0)) -v b=$((b1 - b0)) -v cpus="$(nproc)" 'BEGIN { t = 1000 / 100 / (n > 0 ? n : 1);
        printf "CPU gunicorn_ms=%.2f db_ms=%.2f wrk_ms=%.2f machine_ms=%.2f machine_util=%.0f%%\n",
               g * t, m * t, w * t, b * t, b / 100 / s / cpus * 100 }' >"$WORK/cpu-$1.txt"
}
field() { grep '^BENCH ' "$WORK/wrk-$1.txt" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

log "warming up (every worker, its DB connection and code paths)"
run_wrk warmup 16 4s

checks=("warmup:$(field warmup issued):16")
for c in $CONNECTIONS; do
    wait_quiet "c$c"
    log "wrk -t1 -c$c -d$DURATION ($(wc -l <"$WORK/c$c.jsonl") bodies available; background load $(cat "$WORK/bg-c$c.txt")%)"
    spy=""
    if [[ -n "${BENCH_PYSPY:-}" ]]; then  # optional sampling profile of every gunicorn worker
        "$BENCH_PYSPY" record --pid "$GUNICORN_PID" --subprocesses --nonblocking --rate 200 --format raw \
            --duration "${DURATION%s}" -o "$WORK/profile-c$c.txt" >"$WORK/py-spy-c$c.log" 2>&1 &
        spy=$!
    fi
    run_wrk "c$c" "$c" "$DURATION"
    [[ -z "$spy" ]] || wait "$spy" || log "py-spy failed: $(tail -3 "$WORK/py-spy-c$c.log")"
    log "  $(grep '^BENCH ' "$WORK/wrk-c$c.txt" | cut -c7-)"
    log "  $(cat "$WORK/cpu-c$c.txt") per callback"
    checks+=("c$c:$(field "c$c" issued):$c")
    sleep 2  # let the queue drain between runs
done
stop_gunicorn

# --- correctness ----------------------------------------------------------------------------------------
log "manage.py verify_ledger"
ledger=OK
"$PY" manage.py verify_ledger >"$WORK/verify_ledger.txt" 2>&1 || ledger=DRIFT
sed 's/^/    /' "$WORK/verify_ledger.txt"
log "SQL checks (one allocation per succeeded payment; credited == distinct bodies delivered)"
sqlcheck=OK
"$PY" bench/check_results.py "$WORK" "${checks[@]}" >"$WORK/checks.txt" 2>&1 || sqlcheck=FAILED
sed 's/^/    /' "$WORK/checks.txt"
if grep -q 'Traceback' "$WORK/gunicorn.log" "$WORK/gunicorn.out" "$WORK/logs/errors.log" 2>/dev/null; then
    log "errors were logged: see $WORK/gunicorn.log, gunicorn.out and logs/errors.log"
fi

# --- per-callback cost, in-process (statements, round trips, commits, CPU) ---
last=${CONNECTIONS##* }
total_lines=$(wc -l <"$WORK/c$last.jsonl")
start=$(( total_lines - 1900 ))
if [[ "${BENCH_PROFILE:-1}" == 1 && $start -gt $(field "c$last" issued) ]]; then
    log "profiling one callback at a time in-process (bench/profile_callback.py, unsent bodies of c$last)"
    "$PY" bench/profile_callback.py "$WORK/c$last.jsonl" --start "$start" --list >"$WORK/statements.txt" 2>>"$WORK/profile.err"
    "$PY" bench/profile_callback.py "$WORK/c$last.jsonl" --start $((start + 100)) --n 600 >"$WORK/profile.txt" 2>>"$WORK/profile.err"
    sed 's/^/    /' "$WORK/statements.txt" "$WORK/profile.txt"
    "$PY" manage.py verify_ledger >/dev/null 2>&1 || { ledger=DRIFT; log "verify_ledger failed after profiling"; }
    "$PY" bench/check_results.py "$WORK" >"$WORK/checks-after-profile.txt" 2>&1 || { sqlcheck=FAILED; log "SQL checks failed after profiling"; }
fi

# --- summary --------------------------------------------------------------------------------------------
setcheck() { grep "\"set\": \"$1\"" "$WORK/checks.txt" | "$PY" -c 'import json,sys; print("ok" if json.loads(sys.stdin.read().split(" ",1)[1])["ok"] else "FAIL")'; }
cpu() { tr ' ' '\n' <"$WORK/cpu-$1.txt" | sed -n "s/^$2=//p"; }
{
    echo
    echo "gunicorn $WSGI_APP $WORKER_CLASS --workers $WORKERS --threads $THREADS | wrk -t1 -d$DURATION | LOG_LEVEL=$LOG_LEVEL TASKS_BACKEND=$TASKS_BACKEND | $(nproc) CPUs | $(date '+%F %T')"
    printf '%-6s %11s %8s %8s %8s %7s %8s %8s %9s %7s %7s %5s %5s\n' conns callbacks/s p50_ms p90_ms p99_ms non2xx sock_err requests set_check gu_cpu db_cpu util bg
    for c in $CONNECTIONS; do
        sock=$(( $(field "c$c" connect_err) + $(field "c$c" read_err) + $(field "c$c" write_err) + $(field "c$c" timeouts) ))
        printf '%-6s %11s %8s %8s %8s %7s %8s %8s %9s %7s %7s %5s %5s\n' "$c" "$(field "c$c" rps)" "$(field "c$c" p50_ms)" \
            "$(field "c$c" p90_ms)" "$(field "c$c" p99_ms)" "$(field "c$c" non2xx)" "$sock" "$(field "c$c" requests)" \
            "$(setcheck "c$c")" "$(cpu "c$c" gunicorn_ms)" "$(cpu "c$c" db_ms)" "$(cpu "c$c" machine_util)" "$(cat "$WORK/bg-c$c.txt")%"
        [[ "$(field "c$c" exhausted)" == 0 ]] || echo "  note: c$c ran out of bodies before $DURATION (raise BENCH_PAYMENTS)"
    done
    echo "gu_cpu/db_cpu: CPU ms per callback of the gunicorn workers / the database server; util: whole machine"
    echo "during the run; bg: machine load from other processes in the 2 s before the run"
    if [[ -s "$WORK/profile.txt" ]]; then
        echo "one callback at a time, in-process (bench/profile_callback.py):"
        grep '^PROFILE' "$WORK/profile.txt" | sed 's/ breakdown=.*//; s/^PROFILE /  /'
    fi
    echo "verify_ledger: $ledger   SQL checks: $sqlcheck   total time: ${SECONDS}s   details: $WORK"
} | tee "$WORK/summary.txt"
[[ $ledger == OK && $sqlcheck == OK ]]
