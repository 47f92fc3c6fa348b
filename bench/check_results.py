"""After a benchmark run: prove with SQL that nothing was credited twice and nothing delivered was lost.

    python bench/check_results.py DIR SET:ISSUED:CONNECTIONS [...]               # the site (handled or stored)
    python bench/check_results.py --reference DIR SET:ISSUED:CONNECTIONS [...]   # bench/orm_reference, raw

Run against the database of DATABASE_URL (each app of bench/run.sh has its own copy of the seeded database).

DIR holds the <set>.jsonl files bench/setup_payments.py wrote; ISSUED is how many lines of that file wrk
handed out (its Lua counter) and CONNECTIONS how many connections wrk used. Prints one JSON line per set
and a global verdict; exits 1 on any failure.

Checks, globally:
  * every succeeded payment has exactly one Allocation, and no other payment's donation has any;
  * succeeded payments == completed donations == allocations, and their amounts add up;
  * no callback ended failed, rejected or in review.
Per set:
  * credited (succeeded payments of the set) == distinct bodies the server received (inbox rows that own
    their dedup key): every delivered body credited once, duplicates credited never;
  * wrk's view agrees: distinct bodies among the ISSUED lines minus the requests still in flight when wrk
    stopped (at most one per connection) <= credited <= distinct bodies among the ISSUED lines;
  * no payment whose body was never sent has been touched.

--reference (the ORM and raw-SQL reference apps write only an inbox row per request, the donation and the
patient's total; no payment, no allocation), globally:
  * every patient's funding_received == the sum of its completed donations (so no donation counted twice);
  * no allocation, no payment other than pending, every inbox row `processed`;
per set:
  * inbox rows == requests answered: ISSUED - CONNECTIONS <= rows <= ISSUED;
  * completed donations == distinct references among those rows, and lies between the distinct bodies
    issued minus CONNECTIONS and the distinct bodies issued; completed + pending == the set's size.
"""

import json
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def scalar(sql: str, params: tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        value = cursor.fetchone()[0]
    return int(value or 0)


def global_checks() -> dict:
    result = {
        # succeeded payments whose donation does not have exactly one allocation
        "succeeded_without_exactly_one_allocation": scalar(
            """SELECT COUNT(*) FROM payments_payment p
               LEFT JOIN (SELECT donation_id, COUNT(*) AS n FROM donor_allocation GROUP BY donation_id) a
                 ON a.donation_id = p.donation_id
               WHERE p.status = 'succeeded' AND COALESCE(a.n, 0) <> 1"""
        ),
        # allocations of donations with no succeeded payment
        "allocations_without_succeeded_payment": scalar(
            """SELECT COUNT(*) FROM donor_allocation a
               WHERE NOT EXISTS (SELECT 1 FROM payments_payment p
                                 WHERE p.donation_id = a.donation_id AND p.status = 'succeeded')"""
        ),
        "succeeded_payments": scalar("SELECT COUNT(*) FROM payments_payment WHERE status = 'succeeded'"),
        "completed_donations": scalar("SELECT COUNT(*) FROM donor_donation WHERE status = 'completed'"),
        "allocations": scalar("SELECT COUNT(*) FROM donor_allocation"),
        "allocated_amount": scalar("SELECT COALESCE(SUM(amount), 0) FROM donor_allocation"),
        "succeeded_amount": scalar("SELECT COALESCE(SUM(amount), 0) FROM payments_payment WHERE status = 'succeeded'"),
        "patients_funding_received": scalar("SELECT COALESCE(SUM(funding_received), 0) FROM patients_patient"),
        "callback_events": scalar("SELECT COUNT(*) FROM payments_callbackevent"),
        "callback_events_bad": scalar(
            "SELECT COUNT(*) FROM payments_callbackevent WHERE status IN ('failed', 'rejected', 'review', 'received')"
        ),
    }
    result["ok"] = (
        result["succeeded_without_exactly_one_allocation"] == 0
        and result["allocations_without_succeeded_payment"] == 0
        and result["succeeded_payments"] == result["completed_donations"] == result["allocations"]
        and result["allocated_amount"] == result["succeeded_amount"] == result["patients_funding_received"]
        and result["callback_events_bad"] == 0
    )
    return result


def set_checks(directory: Path, name: str, issued: int, connections: int) -> dict:
    lines = (directory / f"{name}.jsonl").read_text().splitlines()
    refs_all = {json.loads(line)["utilityref"] for line in lines}
    sent = [json.loads(line)["utilityref"] for line in lines[:issued]]
    sent_distinct = set(sent)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_refs (ref VARCHAR(64) PRIMARY KEY)")
        cursor.executemany("INSERT INTO bench_refs (ref) VALUES (%s)", [(r,) for r in refs_all])
    try:
        credited = scalar(
            "SELECT COUNT(*) FROM payments_payment p JOIN bench_refs r ON r.ref = p.reference "
            "WHERE p.status = 'succeeded'"
        )
        untouched_pending = scalar(
            "SELECT COUNT(*) FROM payments_payment p JOIN bench_refs r ON r.ref = p.reference "
            "WHERE p.status = 'pending'"
        )
        # Inbox rows owning their dedup key = distinct bodies the server received (first deliveries).
        received_distinct = scalar(
            "SELECT COUNT(DISTINCT e.our_reference) FROM payments_callbackevent e "
            "JOIN bench_refs r ON r.ref = e.our_reference WHERE e.dedup_key IS NOT NULL"
        )
        first_deliveries = scalar(
            "SELECT COUNT(*) FROM payments_callbackevent e "
            "JOIN bench_refs r ON r.ref = e.our_reference WHERE e.dedup_key IS NOT NULL"
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TEMPORARY TABLE bench_refs")
    result = {
        "set": name,
        "lines_issued": issued,
        "duplicate_lines_issued": issued - len(sent_distinct),
        "distinct_bodies_issued": len(sent_distinct),
        "distinct_bodies_received": received_distinct,
        "first_delivery_rows": first_deliveries,
        "credited": credited,
        "pending_untouched": untouched_pending,
    }
    result["ok"] = (
        credited == received_distinct == first_deliveries
        and len(sent_distinct) - connections <= credited <= len(sent_distinct)
        and credited + untouched_pending == len(refs_all)
    )
    return result


def reference_global_checks() -> dict:
    result = {
        "patients_total_not_sum_of_completed": scalar(
            """SELECT COUNT(*) FROM patients_patient p
               LEFT JOIN (SELECT patient_id, SUM(amount) AS s FROM donor_donation WHERE status = 'completed'
                          GROUP BY patient_id) d ON d.patient_id = p.id
               WHERE p.funding_received <> COALESCE(d.s, 0)"""
        ),
        "completed_donations": scalar("SELECT COUNT(*) FROM donor_donation WHERE status = 'completed'"),
        "completed_amount": scalar("SELECT COALESCE(SUM(amount), 0) FROM donor_donation WHERE status = 'completed'"),
        "patients_funding_received": scalar("SELECT COALESCE(SUM(funding_received), 0) FROM patients_patient"),
        "allocations": scalar("SELECT COUNT(*) FROM donor_allocation"),
        "payments_not_pending": scalar("SELECT COUNT(*) FROM payments_payment WHERE status <> 'pending'"),
        "callback_events": scalar("SELECT COUNT(*) FROM payments_callbackevent"),
        "callback_events_not_processed": scalar(
            "SELECT COUNT(*) FROM payments_callbackevent WHERE status <> 'processed'"
        ),
    }
    result["ok"] = (
        result["patients_total_not_sum_of_completed"] == 0
        and result["completed_amount"] == result["patients_funding_received"]
        and result["allocations"] == result["payments_not_pending"] == result["callback_events_not_processed"] == 0
    )
    return result


def reference_set_checks(directory: Path, name: str, issued: int, connections: int) -> dict:
    lines = (directory / f"{name}.jsonl").read_text().splitlines()
    refs_all = {json.loads(line)["utilityref"] for line in lines}
    sent_distinct = {json.loads(line)["utilityref"] for line in lines[:issued]}
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_refs (ref VARCHAR(64) PRIMARY KEY)")
        cursor.executemany("INSERT INTO bench_refs (ref) VALUES (%s)", [(r,) for r in refs_all])
    try:
        events = "FROM payments_callbackevent e JOIN bench_refs r ON r.ref = e.our_reference"
        rows = scalar(f"SELECT COUNT(*) {events}")
        distinct_rows = scalar(f"SELECT COUNT(DISTINCT e.our_reference) {events}")
        donations = "FROM donor_donation d JOIN bench_refs r ON r.ref = d.reference WHERE d.status"
        completed = scalar(f"SELECT COUNT(*) {donations} = 'completed'")
        pending = scalar(f"SELECT COUNT(*) {donations} = 'pending'")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TEMPORARY TABLE bench_refs")
    result = {
        "set": name,
        "lines_issued": issued,
        "distinct_bodies_issued": len(sent_distinct),
        "inbox_rows": rows,
        "distinct_bodies_received": distinct_rows,
        "completed": completed,
        "pending_untouched": pending,
    }
    result["ok"] = (
        issued - connections <= rows <= issued
        and completed == distinct_rows
        and len(sent_distinct) - connections <= completed <= len(sent_distinct)
        and completed + pending == len(refs_all)
    )
    return result


def main() -> None:
    args = sys.argv[1:]
    reference = bool(args) and args[0] == "--reference"
    args = args[1:] if reference else args
    directory = Path(args[0])
    ok = True
    for spec in args[1:]:
        name, issued, connections = spec.split(":")
        check = reference_set_checks if reference else set_checks
        result = check(directory, name, int(issued), int(connections))
        ok &= result["ok"]
        print("SETCHECK " + json.dumps(result))
    result = reference_global_checks() if reference else global_checks()
    ok &= result["ok"]
    print("GLOBALCHECK " + json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
