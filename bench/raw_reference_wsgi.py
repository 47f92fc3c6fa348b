"""Calibration only, NOT the site: the smallest raw-SQL callback pipeline, as a bare WSGI app.

    BENCH_WSGI=bench.raw_reference_wsgi:application bash bench/run.sh

The same database and callback bodies as the real benchmark, but no Django request handling, no ORM, no
logging, no notification task: authenticate the password, store the raw callback (one autocommit INSERT,
committed before anything trusts it), then one transaction that locks the payment and the donation, writes
the Allocation, adds to the patient's total and marks payment, donation and event. Exact repeats are stored
as duplicates and not processed. It passes the same ledger checks; it tells how fast this machine can do
the irreducible SQL of a callback right now, which is what the site's figures should be compared with
(the machine is shared and its speed drifts).
"""

import hashlib
import hmac
import json
import os
import time
from decimal import Decimal
from urllib.parse import urlsplit

import MySQLdb

_url = urlsplit(os.environ.get("DATABASE_URL", "mysql://root@127.0.0.1:3306/donations_bench"))
_password = os.environ.get("AZAMPAY_CALLBACK_PASSWORD", "").encode()
_connection = None
OK = b'{"success": true, "message": "Callback received"}'


def _db():
    global _connection
    if _connection is None:
        _connection = MySQLdb.connect(
            host=_url.hostname or "127.0.0.1",
            port=_url.port or 3306,
            user=_url.username or "root",
            password=_url.password or "",
            database=_url.path.lstrip("/"),
            charset="utf8mb4",
            autocommit=True,
        )
        with _connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return _connection


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def _process(body: bytes) -> tuple[str, bytes]:
    data = {str(k).lower(): v for k, v in json.loads(body).items()}
    if not hmac.compare_digest(str(data.get("password") or "").encode(), _password):
        return "401 Unauthorized", b'{"error": "unauthenticated"}'
    reference = str(data.get("utilityref") or "")
    amount = Decimal(str(data.get("amount")))
    digest = hashlib.sha256(body).hexdigest()
    redacted = json.dumps({**data, "password": "***"})
    db = _db()
    now = _now()
    with db.cursor() as cursor:
        insert = (
            "INSERT INTO payments_callbackevent (provider, kind, body, headers, client_ip, sha256, dedup_key, "
            "url_token, trust, status, error, attempts, our_reference, provider_reference, received_at) "
            "VALUES ('azampay', 'payment', %s, '{}', '127.0.0.1', %s, %s, '', 'trusted', %s, '', 0, %s, '', %s)"
        )
        try:
            cursor.execute(insert, (redacted, digest, f"azampay:payment:{digest}", "received", reference, now))
        except MySQLdb.IntegrityError:
            cursor.execute(insert, (redacted, digest, None, "duplicate", reference, now))
            return "200 OK", OK
        event_id = cursor.lastrowid
        cursor.execute("START TRANSACTION")
        try:
            cursor.execute(
                "SELECT id, donation_id, amount, status FROM payments_payment "
                "WHERE reference = %s AND provider = 'azampay' FOR UPDATE",
                (reference,),
            )
            row = cursor.fetchone()
            if row is None or row[2] != amount:
                db.rollback()
                return "404 Not Found", b'{"error": "unknown payment"}'
            payment_id, donation_id, _, status = row
            event_status = "ignored"
            if status != "succeeded":
                event_status = "processed"
                cursor.execute(
                    "UPDATE payments_payment SET status = 'succeeded', completed_at = %s, updated_at = %s, "
                    "next_check_at = NULL WHERE id = %s",
                    (now, now, payment_id),
                )
                cursor.execute(
                    "SELECT patient_id, amount, currency, status FROM donor_donation WHERE id = %s FOR UPDATE",
                    (donation_id,),
                )
                patient_id, donation_amount, currency, donation_status = cursor.fetchone()
                if donation_status == "pending":
                    # The patient row first: the allocation INSERT takes a shared lock on it (foreign key), and
                    # two callbacks for one patient that both hold that shared lock deadlock on the UPDATE.
                    cursor.execute(
                        "UPDATE patients_patient SET funding_received = funding_received + %s WHERE id = %s",
                        (donation_amount, patient_id),
                    )
                    cursor.execute(
                        "INSERT INTO donor_allocation (donation_id, patient_id, target, amount, currency, created_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (donation_id, patient_id, f"patient:{patient_id}", donation_amount, currency, now),
                    )
                    cursor.execute(
                        "UPDATE donor_donation SET status = 'completed', completed_at = %s, updated_at = %s "
                        "WHERE id = %s",
                        (now, now, donation_id),
                    )
            cursor.execute(
                "UPDATE payments_callbackevent SET status = %s, attempts = 1, processed_at = %s, payment_id = %s "
                "WHERE id = %s",
                (event_status, now, payment_id, event_id),
            )
            db.commit()
        except Exception:
            db.rollback()
            raise
    return "200 OK", OK


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":  # health probe from bench/run.sh
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "healthy"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    status, payload = _process(environ["wsgi.input"].read(length))
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
