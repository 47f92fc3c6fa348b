#!/usr/bin/env bash
# Callback throughput benchmark, side by side: the site (CALLBACK_ACK=handled and =stored) and two references
# doing only the four essential statements (bench/orm_reference through Django's ORM, bench/raw_reference_wsgi.py
# in raw SQL), each under the same gunicorn and wrk, on its own copy of the same seeded database.
#
#   make bench            (= bash bench/run.sh; 7-12 min; MariaDB/MySQL root without a password on 127.0.0.1:3306)
#
# 1. resets $BENCH_DB (donations_bench), migrates it, seeds pending AzamPay payments (bench/setup_payments.py):
#    sets warmup, main ($BENCH_PAYMENTS, ~10% exact repeats), lat (no repeats) and profile; then copies it to
#    ${BENCH_DB}_<app> for every app, so that every app starts from the same rows and gets the same bodies;
# 2. per app (in $BENCH_APPS order): starts gunicorn on 127.0.0.1:$BENCH_PORT (and, for the site, the task
#    workers: $BENCH_TASK_WORKERS x `manage.py db_worker --interval $BENCH_TASK_INTERVAL`, or rqworker), warms up,
#    waits for the machine to be quiet, runs wrk -t1 -c$BENCH_CONNECTIONS through the whole main set (every body
#    once, the intended repeats aside; -d$BENCH_MAX_DURATION is only a cap), waits until every callback is
#    settled and the task queue is empty (bench/wait_settled.py, bounded), and for the site measures the
#    donor-visible latency at $BENCH_LATENCY_RATE/s (bench/donor_latency.py); stops everything, then checks:
#    the site `manage.py verify_ledger` + bench/check_results.py + the credit lag (bench/credit_lag.py),
#    the references bench/check_results.py --reference;
# 3. one callback at a time in-process (bench/profile_callback.py): statements, round trips, CPU of the site;
# 4. prints the table: callbacks/s, p50/p90/p99, CPU per callback, ratios to the ORM reference, drain times,
#    credit lag and donor latency.
# Only ever talks to 127.0.0.1; gunicorn and the task workers are stopped by a trap whatever happens.
#
# Knobs (environment; defaults in brackets): BENCH_APPS ["orm handled stored stored_nice stored_split raw"; stored_nice:
# stored with the task workers under `nice -n $BENCH_NICE` (10); stored_split: stored with the task workers
# stopped while wrk runs and started after it — the web host's share when the workers run on other hosts
# (README "Deployment on several hosts"); its drain is then the workers' catch-up on one box], BENCH_CONNECTIONS [16],
# BENCH_PAYMENTS [5000], BENCH_PATIENTS [100], BENCH_MAX_DURATION [90s], BENCH_WARMUP [4s], BENCH_WORKERS [4],
# BENCH_WORKER_CLASS [sync], BENCH_THREADS [1], BENCH_TASK_WORKERS [2], BENCH_TASK_INTERVAL [0.1],
# BENCH_TASKS_BACKEND [database|rq], BENCH_REDIS_URL [redis://127.0.0.1:6379/14, rq only], BENCH_DRAIN_TIMEOUT
# [180], BENCH_LATENCY [1], BENCH_LATENCY_RATE [20], BENCH_LATENCY_DURATION [20], BENCH_LATENCY_POLL_MS [100],
# BENCH_QUIET_WAIT [30 s per run], BENCH_QUIET_LIMIT [20 %], BENCH_LOG_LEVEL [INFO], BENCH_CACHE_URL [locmem],
# BENCH_PROFILE [1], BENCH_PYSPY [a py-spy binary: samples gunicorn during each measured run], BENCH_DB, BENCH_PORT.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
PORT=${BENCH_PORT:-8099}
DB=${BENCH_DB:-donations_bench}
APPS=${BENCH_APPS:-"orm handled stored stored_nice stored_split raw"}
CONNS=${BENCH_CONNECTIONS:-16}
PAYMENTS=${BENCH_PAYMENTS:-5000}
PATIENTS=${BENCH_PATIENTS:-100}
MAX_DURATION=${BENCH_MAX_DURATION:-90s}
WARMUP=${BENCH_WARMUP:-4s}
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
QUIET_LIMIT=${BENCH_QUIET_LIMIT:-20}
WORKERS=${BENCH_WORKERS:-4}  # the README's production line
WORKER_CLASS=${BENCH_WORKER_CLASS:-sync}
THREADS=${BENCH_THREADS:-1}
TASK_WORKERS=${BENCH_TASK_WORKERS:-2}
TASK_INTERVAL=${BENCH_TASK_INTERVAL:-0.1}
NICE=${BENCH_NICE:-10}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-180}
LATENCY=${BENCH_LATENCY:-1}
LAT_RATE=${BENCH_LATENCY_RATE:-20}
LAT_DURATION=${BENCH_LATENCY_DURATION:-20}
LAT_POLL_MS=${BENCH_LATENCY_POLL_MS:-100}
PROFILE=${BENCH_PROFILE:-1}
URL_PATH=/api/v1.0/donors/payment/azampay/callback/
BASE_URL=http://127.0.0.1:$PORT
MYSQL=(mysql -uroot -h127.0.0.1 -P3306 --protocol=TCP)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/donations-bench.XXXXXX")
GUNICORN_PID=""
TASK_PIDS=()
SECONDS=0

log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

stop_pid() {  # stop_pid PID SECONDS: TERM, wait up to SECONDS, then KILL (only our own processes, by pid)
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < $2 * 5; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_task_workers() {
    local pid
    for pid in "${TASK_PIDS[@]}"; do stop_pid "$pid" 30; done
    TASK_PIDS=()
}
stop_gunicorn() {  # graceful: workers finish the request in hand
    [[ -n "$GUNICORN_PID" ]] || return 0
    stop_pid "$GUNICORN_PID" 30
    GUNICORN_PID=""
}
cleanup() { stop_gunicorn; stop_task_workers; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------------------------------
[[ -x "$PY" ]] || die "$PY not found: run 'make install' first"
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk not found: installing it with apt-get"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get install -y wrk || { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y wrk; }
fi
command -v "${MYSQL[0]}" >/dev/null || die "the mysql client is needed (apt-get install -y mariadb-client)"
command -v mysqldump >/dev/null || die "mysqldump is needed (apt-get install -y mariadb-client)"
"${MYSQL[@]}" -e 'SELECT 1' >/dev/null 2>&1 || die "no MariaDB/MySQL answering as root on 127.0.0.1:3306"
"$PY" -c 'import gunicorn, MySQLdb' 2>/dev/null || die "gunicorn and mysqlclient must be installed in $PY"
[[ $DB == donations_bench* ]] || die "BENCH_DB must start with donations_bench (it is dropped and recreated)"

# Production-like settings (.env.production.example): DEBUG off, persistent connections, file logs at INFO,
# the database task backend, the callback password; the webhook rate limit lifted (one client IP sends all).
export DJANGO_SETTINGS_MODULE=config.settings
export DEBUG=0
export SECRET_KEY=bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz
export ALLOWED_HOSTS=127.0.0.1
export CONN_MAX_AGE=60
export AZAMPAY_CALLBACK_PASSWORD=bench-password
export WEBHOOK_RATE_LIMIT_PER_MINUTE=1000000000
# donor_latency.py polls the status API for every donor from one client IP (the site allows 120 a minute each).
export STATUS_RATE_LIMIT_PER_MINUTE=1000000000
export LOG_LEVEL=${BENCH_LOG_LEVEL:-INFO}
export LOG_DIR=$WORK/logs
export TASKS_BACKEND=${BENCH_TASKS_BACKEND:-database}
export PYTHONDONTWRITEBYTECODE=1
unset PAYMENTS_SANDBOX_URL CACHE_URL TASKS_REDIS_URL CALLBACK_ACK
[[ -z "${BENCH_CACHE_URL:-}" ]] || export CACHE_URL=$BENCH_CACHE_URL
if [[ $TASKS_BACKEND == rq ]]; then
    export TASKS_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
    "$PY" -c 'import django_tasks_rq' 2>/dev/null || die "TASKS_BACKEND=rq needs django-tasks-rq installed"
fi
db_url() { echo "mysql://root@127.0.0.1:3306/$1"; }
export DATABASE_URL=$(db_url "$DB")

log "work dir $WORK; apps: $APPS; gunicorn $WORKER_CLASS --workers $WORKERS --threads $THREADS; wrk -t1 -c$CONNS"
log "task workers for the site: $TASK_WORKERS x $TASKS_BACKEND (interval $TASK_INTERVAL s); $(nproc) CPUs"

# --- database and fixtures ----------------------------------------------------------------------------
log "resetting database $DB, migrating"
"${MYSQL[@]}" -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
"$PY" manage.py migrate --noinput -v0

LAT_COUNT=$(awk -v r="$LAT_RATE" -v d="$LAT_DURATION" 'BEGIN { printf "%d", r * d + 50 }')
log "seeding $PATIENTS patients; sets warmup:1500 main:$PAYMENTS lat:$LAT_COUNT profile:800"
LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --set profile:800 >"$WORK/seed.txt"
pids=()
LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --set main:"$PAYMENTS" >>"$WORK/seed.txt" & pids+=($!)
LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --set warmup:1500 >>"$WORK/seed.txt" & pids+=($!)
LOG_LEVEL=WARNING "$PY" bench/setup_payments.py --out "$WORK" --patients "$PATIENTS" --dup-ratio 0 --set lat:"$LAT_COUNT" >>"$WORK/seed.txt" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || die "seeding failed: $(cat "$WORK/seed.txt")"; done
grep 'set ' "$WORK/seed.txt" | sed 's/^ */    /'
mysqldump -uroot -h127.0.0.1 -P3306 --protocol=TCP --single-transaction "$DB" >"$WORK/seed.sql"
for app in $APPS; do
    "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS \`${DB}_$app\`; CREATE DATABASE \`${DB}_$app\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    "${MYSQL[@]}" "${DB}_$app" <"$WORK/seed.sql"
done
log "copied the seeded database to ${DB}_{${APPS// /,}}"

# --- measurement helpers ------------------------------------------------------------------------------
ticks() {  # ticks PID... -> user+system CPU ticks of those processes and their reaped children (missing count 0)
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        total=$(( total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
gunicorn_pids() { [[ -z "$GUNICORN_PID" ]] || echo "$GUNICORN_PID" $(pgrep -P "$GUNICORN_PID" || true); }
db_pids() { pgrep -x mariadbd || pgrep -x mysqld || true; }
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
all_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
snap() {  # snap NAME: CPU ticks so far of gunicorn (G_), task workers (T_), the database (M_), the machine (B_ busy, A_ all)
    printf -v "G_$1" '%s' "$(ticks $(gunicorn_pids))"
    printf -v "T_$1" '%s' "$(ticks "${TASK_PIDS[@]}")"
    printf -v "M_$1" '%s' "$(ticks $(db_pids))"
    printf -v "B_$1" '%s' "$(busy_ticks)"
    printf -v "A_$1" '%s' "$(all_ticks)"
    printf -v "E_$1" '%s' "$(date +%s.%N)"
}

# Before each measured run, sample for 2 s how busy the machine is without our load and, while it is over
# $QUIET_LIMIT %, wait (at most $QUIET_WAIT s per run). The figure (bg) goes in the summary.
wait_quiet() {  # wait_quiet NAME -> background CPU % in $WORK/bg-NAME.txt
    local b0 a0 b1 a1 bg end=$(( SECONDS + QUIET_WAIT ))
    while :; do
        b0=$(busy_ticks); a0=$(all_ticks); sleep 2; b1=$(busy_ticks); a1=$(all_ticks)
        bg=$(( (b1 - b0) * 100 / (a1 - a0 > 0 ? a1 - a0 : 1) ))
        (( bg <= QUIET_LIMIT || SECONDS >= end )) && break
        log "  machine ${bg}% busy without us: waiting for it to calm down"
    done
    echo "$bg" >"$WORK/bg-$1.txt"
}

start_gunicorn() {  # start_gunicorn APP
    local wsgi=config.wsgi:application
    [[ $1 == orm ]] && wsgi=bench.orm_reference.wsgi:application
    [[ $1 == raw ]] && wsgi=bench.raw_reference_wsgi:application
    "$PY" -m gunicorn "$wsgi" \
        --bind "127.0.0.1:$PORT" --workers "$WORKERS" --worker-class "$WORKER_CLASS" --threads "$THREADS" \
        --backlog 2048 --timeout 60 --log-level warning --error-logfile "$WORK/gunicorn-$1.log" \
        >"$WORK/gunicorn-$1.out" 2>&1 &
    GUNICORN_PID=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$BASE_URL/health/" 2>/dev/null && return 0
        kill -0 "$GUNICORN_PID" 2>/dev/null || die "gunicorn exited: $(tail -20 "$WORK/gunicorn-$1.log")"
        sleep 0.2
    done
    die "gunicorn did not answer /health/ within 20 s"
}

start_task_workers() {  # start_task_workers APP: what production runs beside gunicorn (stored_nice: under nice)
    local i prefix=()
    [[ $1 == *_nice ]] && prefix=(nice -n "$NICE")
    for (( i = 1; i <= TASK_WORKERS; i++ )); do
        if [[ $TASKS_BACKEND == rq ]]; then
            "${prefix[@]}" "$PY" manage.py rqworker --job-class django_tasks_rq.Job default >"$WORK/worker-$1-$i.log" 2>&1 &
        else
            "${prefix[@]}" "$PY" manage.py db_worker --interval "$TASK_INTERVAL" --no-reload --worker-id "bench-$1-$i" \
                >"$WORK/worker-$1-$i.log" 2>&1 &
        fi
        TASK_PIDS+=($!)
    done
}

run_wrk() {  # run_wrk APP SET DURATION -> $WORK/wrk-APP-SET.txt
    timeout 300 wrk -t1 -c"$CONNS" -d"$3" --timeout 10s --latency -s bench/callbacks.lua \
        "$BASE_URL$URL_PATH" -- "$WORK/$2.jsonl" 1 >"$WORK/wrk-$1-$2.txt" 2>&1 || die "wrk failed: $(cat "$WORK/wrk-$1-$2.txt")"
    grep -q '^BENCH ' "$WORK/wrk-$1-$2.txt" || die "no BENCH line from wrk: $(cat "$WORK/wrk-$1-$2.txt")"
}
field() { grep '^BENCH ' "$WORK/wrk-$1-$2.txt" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | head -1; }  # kv FILE KEY: a key=value from a one-line file

settle() {  # settle APP SINCE LABEL: wait for every callback settled and the queue empty -> $WORK/settle-APP-LABEL.txt
    local queue=()
    (( TASK_WORKERS > 0 )) || queue=(--no-queue)  # nobody runs the queued notifications: wait for the callbacks only
    "$PY" bench/wait_settled.py --since "$2" --timeout "$DRAIN_TIMEOUT" --sweep "${queue[@]}" \
        >"$WORK/settle-$1-$3.txt" 2>&1 || true
    log "  $(grep '^SETTLED' "$WORK/settle-$1-$3.txt" || tail -3 "$WORK/settle-$1-$3.txt")"
}

# --- the runs -----------------------------------------------------------------------------------------
for app in $APPS; do
    case $app in handled|stored|stored_nice|stored_split|orm|raw) ;;
        *) die "unknown app $app (handled, stored, stored_nice, stored_split, orm, raw)" ;; esac
    [[ $app != stored* || $TASK_WORKERS -gt 0 ]] || die "CALLBACK_ACK=stored needs task workers (BENCH_TASK_WORKERS > 0)"
    export DATABASE_URL=$(db_url "${DB}_$app")
    site=0; [[ $app == handled || $app == stored* ]] && site=1
    if (( site )); then export CALLBACK_ACK=${app%_*}; else unset CALLBACK_ACK; fi
    if [[ $TASKS_BACKEND == rq && $site == 1 ]]; then
        "$PY" -c 'import os, redis; r = redis.Redis.from_url(os.environ["TASKS_REDIS_URL"]); r.ping()
assert all(k.startswith(b"rq:") for k in r.scan_iter(count=1000)), "that Redis database holds other keys"' \
            || die "Redis at $TASKS_REDIS_URL is not answering or holds other keys than rq:*"
    fi
    log "== $app: gunicorn on $BASE_URL, database ${DB}_$app"
    start_gunicorn "$app"
    (( site )) && start_task_workers "$app"
    run_wrk "$app" warmup "$WARMUP"
    (( site )) && settle "$app" "$(date +%s.%N)" warmup
    [[ $app != *_split ]] || stop_task_workers  # the web host alone takes the callbacks; workers start after wrk
    wait_quiet "$app"
    log "  wrk -t1 -c$CONNS through main ($(wc -l <"$WORK/main.jsonl") lines; background load $(cat "$WORK/bg-$app.txt")%)"
    spy=""
    if [[ -n "${BENCH_PYSPY:-}" ]]; then
        "$BENCH_PYSPY" record --pid "$GUNICORN_PID" --subprocesses --nonblocking --rate 200 --format raw \
            --duration 30 -o "$WORK/profile-$app.txt" >"$WORK/py-spy-$app.log" 2>&1 &
        spy=$!
    fi
    w0=$(awk '{print $16 + $17}' /proc/$$/stat)
    snap start
    run_wrk "$app" main "$MAX_DURATION"
    snap wrk
    w1=$(awk '{print $16 + $17}' /proc/$$/stat)
    [[ -z "$spy" ]] || wait "$spy" || true
    log "  $(grep '^BENCH ' "$WORK/wrk-$app-main.txt" | cut -c7-)"
    [[ $app != *_split ]] || start_task_workers "$app"
    if (( site )); then settle "$app" "$E_wrk" main; fi
    snap end
    # CPU ms per answered callback (1 tick = 10 ms) over [wrk start, settled and queue empty]: gunicorn,
    # the task workers, the database server; wrk itself; the whole machine (other tenants included); others:
    # the share of the machine's capacity other processes used in that window (MariaDB's own CPU counts as ours).
    awk -v n="$(field "$app" main requests)" -v dur="$(field "$app" main duration_s)" \
        -v g=$((G_end - G_start)) -v t=$((T_end - T_start)) -v m=$((M_end - M_start)) -v w=$((w1 - w0)) \
        -v b=$((B_end - B_start)) -v bw=$((B_wrk - B_start)) -v a=$((A_end - A_start)) -v cpus="$(nproc)" 'BEGIN {
        k = 1000 / 100 / (n > 0 ? n : 1); others = b - g - t - m - w; if (others < 0) others = 0;
        printf "CPU gu_ms=%.2f tw_ms=%.2f db_ms=%.2f total_ms=%.2f wrk_ms=%.2f machine_ms=%.2f util=%.0f others=%.0f\n",
               g * k, t * k, m * k, (g + t + m) * k, w * k, b * k, bw / 100 / dur / cpus * 100, others * 100 / (a > 0 ? a : 1) }' \
        >"$WORK/cpu-$app.txt"
    log "  $(cat "$WORK/cpu-$app.txt") per callback"
    if (( site )) && [[ $LATENCY == 1 ]]; then
        wait_quiet "$app-lat"
        log "  donor latency: $LAT_RATE callbacks/s for $LAT_DURATION s, polling the status API every $LAT_POLL_MS ms (bg $(cat "$WORK/bg-$app-lat.txt")%)"
        "$PY" bench/donor_latency.py --base-url "$BASE_URL" --bodies "$WORK/lat.jsonl" --rate "$LAT_RATE" \
            --duration "$LAT_DURATION" --poll-ms "$LAT_POLL_MS" --label "$app" >"$WORK/latency-$app.txt" 2>&1 || true
        log "  $(grep '^LATENCY' "$WORK/latency-$app.txt" | cut -c9- || tail -3 "$WORK/latency-$app.txt")"
        settle "$app" "$(date +%s.%N)" lat
    fi
    stop_gunicorn
    stop_task_workers
    checks=("warmup:$(field "$app" warmup issued):$CONNS" "main:$(field "$app" main issued):$CONNS")
    if (( site )); then
        [[ -s "$WORK/latency-$app.txt" ]] && checks+=("lat:$(kv "$WORK/latency-$app.txt" sent):0")
        ok=OK
        "$PY" manage.py verify_ledger >"$WORK/verify_ledger-$app.txt" 2>&1 || ok=DRIFT
        "$PY" bench/check_results.py "$WORK" "${checks[@]}" >"$WORK/checks-$app.txt" 2>&1 || ok="$ok,SQL-FAILED"
        [[ $ok == OK ]] || ok="FAILED($ok)"
        "$PY" bench/credit_lag.py "$WORK" main lat >"$WORK/lag-$app.txt" 2>&1 || true
        sed 's/^/    /' "$WORK/lag-$app.txt"
    else
        ok=OK
        "$PY" bench/check_results.py --reference "$WORK" "${checks[@]}" >"$WORK/checks-$app.txt" 2>&1 || ok=FAILED
    fi
    echo "$ok" >"$WORK/verdict-$app.txt"
    log "  checks: $ok (verify_ledger and SQL: $WORK/checks-$app.txt)"
    [[ $ok == OK ]] || sed 's/^/    /' "$WORK/checks-$app.txt" "$WORK/verify_ledger-$app.txt" 2>/dev/null | head -40
    if grep -qs 'Traceback' "$WORK/gunicorn-$app.log" "$WORK/gunicorn-$app.out" "$WORK"/worker-"$app"-*.log; then
        log "  errors were logged: see $WORK/gunicorn-$app.log, worker-$app-*.log and logs/errors.log"
    fi
done

# --- one callback at a time, in-process -----------------------------------------------------------------
if [[ $PROFILE == 1 && " $APPS " == *" handled "* ]]; then
    log "profiling one callback at a time in-process (bench/profile_callback.py, the profile set, ${DB}_handled)"
    export DATABASE_URL=$(db_url "${DB}_handled") CALLBACK_ACK=handled
    "$PY" bench/profile_callback.py "$WORK/profile.jsonl" --list >"$WORK/statements.txt" 2>>"$WORK/profile.err" || true
    "$PY" bench/profile_callback.py "$WORK/profile.jsonl" --start 100 --n 600 >"$WORK/profile.txt" 2>>"$WORK/profile.err" || true
    sed 's/^/    /' "$WORK/statements.txt"
    "$PY" manage.py verify_ledger >/dev/null 2>&1 || log "verify_ledger failed after profiling"
fi
if [[ $PROFILE == 1 && " $APPS " == *" stored "* && $TASKS_BACKEND == database ]]; then
    log "profiling CALLBACK_ACK=stored: the request, the process_callback task, the notification task (${DB}_stored)"
    export DATABASE_URL=$(db_url "${DB}_stored") CALLBACK_ACK=stored
    "$PY" bench/profile_callback.py "$WORK/profile.jsonl" --stored --list >"$WORK/statements-stored.txt" 2>>"$WORK/profile.err" || true
    "$PY" bench/profile_callback.py "$WORK/profile.jsonl" --stored --start 100 --n 600 >>"$WORK/profile.txt" 2>>"$WORK/profile.err" || true
    sed 's/^/    /' "$WORK/statements-stored.txt"
    "$PY" manage.py verify_ledger >/dev/null 2>&1 || log "verify_ledger failed after profiling"
fi

# --- summary --------------------------------------------------------------------------------------------
orm_rps=""; orm_cpu=""
if [[ -s "$WORK/wrk-orm-main.txt" ]]; then orm_rps=$(field orm main rps); orm_cpu=$(kv "$WORK/cpu-orm.txt" total_ms); fi
ratio() { [[ -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }' || echo -; }
{
    echo
    echo "gunicorn $WORKER_CLASS --workers $WORKERS --threads $THREADS | wrk -t1 -c$CONNS through $PAYMENTS payments (+~10% repeats) | LOG_LEVEL=$LOG_LEVEL TASKS_BACKEND=$TASKS_BACKEND, site task workers: $TASK_WORKERS | $(nproc) CPUs | $(date -u '+%F %T') UTC | $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
    printf '%-11s %9s %7s %7s %7s %6s %5s %6s %6s %6s %7s %8s %8s %8s %10s %6s %4s %5s\n' app callbacks/s p50_ms p90_ms p99_ms non2xx sock gu_cpu tw_cpu db_cpu cpu_all x_orm_rps x_orm_cpu credit/s drain_s checks bg others
    for app in $APPS; do
        [[ -s "$WORK/wrk-$app-main.txt" ]] || continue
        sock=$(( $(field "$app" main connect_err) + $(field "$app" main read_err) + $(field "$app" main write_err) + $(field "$app" main timeouts) ))
        settled=$(kv "$WORK/settle-$app-main.txt" settled_s 2>/dev/null || true); empty=$(kv "$WORK/settle-$app-main.txt" empty_s 2>/dev/null || true)
        credit=$(field "$app" main rps); drain=-
        if [[ -n "$settled" && "$settled" != - ]]; then
            credit=$(awk -v n="$(field "$app" main requests)" -v d="$(field "$app" main duration_s)" -v s="$settled" 'BEGIN { printf "%.1f", n / (d + s) }')
            drain="$settled/$empty"
        fi
        printf '%-11s %9s %7s %7s %7s %6s %5s %6s %6s %6s %7s %8s %8s %8s %10s %6s %4s %5s\n' "$app" "$(field "$app" main rps)" \
            "$(field "$app" main p50_ms)" "$(field "$app" main p90_ms)" "$(field "$app" main p99_ms)" "$(field "$app" main non2xx)" "$sock" \
            "$(kv "$WORK/cpu-$app.txt" gu_ms)" "$(kv "$WORK/cpu-$app.txt" tw_ms)" "$(kv "$WORK/cpu-$app.txt" db_ms)" "$(kv "$WORK/cpu-$app.txt" total_ms)" \
            "$(ratio "$(field "$app" main rps)" "$orm_rps")" "$(ratio "$(kv "$WORK/cpu-$app.txt" total_ms)" "$orm_cpu")" "$credit" "$drain" \
            "$(cat "$WORK/verdict-$app.txt")" "$(cat "$WORK/bg-$app.txt")%" "$(kv "$WORK/cpu-$app.txt" others)%"
        [[ "$(field "$app" main exhausted)" != 0 ]] || echo "  note: $app did not get through the main set within $MAX_DURATION (raise BENCH_MAX_DURATION)"
    done
    echo "callbacks/s, p50..p99: wrk's answered requests (the ack); cpu: ms per answered callback over [wrk start, all settled"
    echo "and the task queue empty] — gu gunicorn, tw task workers, db MariaDB, cpu_all their sum; x_orm: ratio to the ORM"
    echo "reference (callbacks/s, cpu_all); credit/s: callbacks / (wrk time + drain), drain_s: after wrk, until settled/queue empty;"
    echo "bg: machine busy without us in the 2 s before the run; others: share of the machine other processes used during it"
    for app in $APPS; do
        [[ -s "$WORK/lag-$app.txt" ]] && sed "s/^LAG /credit lag $app: /" "$WORK/lag-$app.txt"
    done
    for app in $APPS; do
        [[ -s "$WORK/latency-$app.txt" ]] && grep '^LATENCY' "$WORK/latency-$app.txt" | sed "s/^LATENCY /donor latency $app: /"
        [[ -s "$WORK/bg-$app-lat.txt" ]] && echo "  (bg $(cat "$WORK/bg-$app-lat.txt")%)"
    done
    if [[ -s "$WORK/profile.txt" ]]; then
        echo "one callback at a time, in-process (bench/profile_callback.py; app = handled, stored-* = the three halves):"
        grep '^PROFILE' "$WORK/profile.txt" | sed 's/ breakdown=.*//; s/^PROFILE /  /'
    fi
    echo "total time: ${SECONDS}s   details: $WORK"
} | tee "$WORK/summary.txt"
for app in $APPS; do [[ "$(cat "$WORK/verdict-$app.txt" 2>/dev/null)" == OK ]] || exit 1; done
