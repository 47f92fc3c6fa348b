"""The raw-SQL reference: the same four essential statements as bench/orm_reference, with mysqlclient, no Django.

    BENCH_APPS=raw bash bench/run.sh          # gunicorn bench.raw_reference_wsgi:application

Calibration only, NOT the site. Per callback: parse the JSON, check the password, then
1. INSERT the raw event into payments_callbackevent (its NOT NULL columns; the password redacted, a keyed
   digest of the raw bytes), committed on its own (autocommit) before anything trusts it;
2. SELECT ... FOR UPDATE the donation by its reference;
3. UPDATE it to completed (only if it was pending: a repeat changes nothing);
4. UPDATE patients_patient SET funding_received = funding_received + amount;
2–4 in one transaction. It tells what the essential SQL of a callback costs on this machine right now (the
machine is shared and its speed drifts), next to what Django's ORM adds (bench/orm_reference) and what the
site adds on top (payments, allocations, history, notifications, logging, middleware).
"""

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import MySQLdb

_url = urlsplit(os.environ.get("DATABASE_URL", "mysql://root@127.0.0.1:3306/donations_bench"))
_password = os.environ.get("AZAMPAY_CALLBACK_PASSWORD", "").encode()
_secret = os.environ.get("SECRET_KEY", "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz").encode()
# The site's body digest: Django's salted_hmac("payments.callback_body", body, sha256) with SECRET_KEY.
_digest_key = hashlib.sha256(b"payments.callback_body" + _secret).digest()
_connection = None
OK = b'{"success": true, "message": "Callback received"}'
INSERT_EVENT = (
    "INSERT INTO payments_callbackevent (provider, kind, body, headers, client_ip, body_digest, url_token_digest, "
    "trust, status, error, attempts, our_reference, provider_reference, received_at, body_kept, body_size, traceback) "
    "VALUES ('azampay', 'payment', %s, '{}', %s, %s, '', 'trusted', 'processed', '', 1, %s, %s, %s, 1, %s, '')"
)


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
            cursor.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
    return _connection


def _process(body: bytes, client_ip: str | None) -> tuple[str, bytes]:
    try:
        data = {str(k).lower(): v for k, v in json.loads(body).items()}
        amount = Decimal(str(data.get("amount")))
    except (ValueError, AttributeError, InvalidOperation):
        return "400 Bad Request", b'{"error": "malformed"}'
    if not _password or not hmac.compare_digest(str(data.get("password") or "").encode(), _password):
        return "401 Unauthorized", b'{"error": "unauthenticated"}'
    reference = str(data.get("utilityref") or "")[:64]
    now = datetime.now(UTC).replace(tzinfo=None)  # the site stores UTC (USE_TZ)
    db = _db()
    with db.cursor() as cursor:
        cursor.execute(
            INSERT_EVENT,
            (
                json.dumps({**data, "password": "***"}),
                client_ip,
                hmac.new(_digest_key, body, hashlib.sha256).hexdigest(),
                reference,
                str(data.get("reference") or "")[:100],
                now,
                len(body),
            ),
        )
        cursor.execute("START TRANSACTION")
        try:
            cursor.execute(
                "SELECT id, amount, status, patient_id FROM donor_donation WHERE reference = %s FOR UPDATE",
                (reference,),
            )
            row = cursor.fetchone()
            if row is None:
                db.rollback()
                return "404 Not Found", b'{"error": "unknown reference"}'
            donation_id, donation_amount, status, patient_id = row
            if donation_amount != amount:
                db.rollback()
                return "409 Conflict", b'{"error": "amount mismatch"}'
            if status == "pending":
                cursor.execute(
                    "UPDATE donor_donation SET status = 'completed', completed_at = %s, updated_at = %s WHERE id = %s",
                    (now, now, donation_id),
                )
                cursor.execute(
                    "UPDATE patients_patient SET funding_received = funding_received + %s WHERE id = %s",
                    (amount, patient_id),
                )
            db.commit()
        except Exception:
            db.rollback()
            raise
    return "200 OK", OK


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":  # the health probe from bench/run.sh
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "healthy"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    status, payload = _process(environ["wsgi.input"].read(length), environ.get("REMOTE_ADDR"))
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
