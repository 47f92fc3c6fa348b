"""Credit lag of a set of callbacks, from SQL: how long after a delivery was stored its payment was credited.

    python bench/credit_lag.py DIR SET [SET ...]      # DIR/<SET>.jsonl from bench/setup_payments.py

For every credited payment of the set: payment.completed_at - the first received_at among its inbox rows
(the first delivery of its body). With CALLBACK_ACK=stored this is the queue wait plus the worker's handling;
with `handled` it is the handling inside the request. Prints one "LAG ..." line per set (milliseconds).
Both timestamps are written by the site (timezone.now() in the web and the task worker, same clock).
"""

import json
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a list (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> str:
    return " ".join(
        [f"n={len(values)}"]
        + [f"p{p}_ms={percentile(values, p):.1f}" for p in (50, 95, 99)]
        + [f"max_ms={max(values, default=0):.1f}"]
    )


def credit_lags_ms(references: set[str]) -> list[float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_lag_refs (ref VARCHAR(64) PRIMARY KEY)")
        cursor.executemany("INSERT INTO bench_lag_refs (ref) VALUES (%s)", [(r,) for r in references])
        try:
            cursor.execute(
                """SELECT TIMESTAMPDIFF(MICROSECOND, MIN(e.received_at), p.completed_at)
                   FROM payments_payment p
                   JOIN bench_lag_refs r ON r.ref = p.reference
                   JOIN payments_callbackevent e ON e.our_reference = p.reference
                   WHERE p.status = 'succeeded'
                   GROUP BY p.id, p.completed_at"""
            )
            return [row[0] / 1000 for row in cursor.fetchall()]
        finally:
            cursor.execute("DROP TEMPORARY TABLE bench_lag_refs")


def main() -> None:
    import django

    django.setup()
    directory = Path(sys.argv[1])
    for name in sys.argv[2:]:
        refs = {json.loads(line)["utilityref"] for line in (directory / f"{name}.jsonl").read_text().splitlines()}
        print(f"LAG set={name} {summary(credit_lags_ms(refs))}")


if __name__ == "__main__":
    main()
