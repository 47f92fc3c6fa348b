"""A payout's sender SIGKILLed in the middle of its request, on a real MariaDB (a few seconds).

The approval runs as the operator's process does (`manage.py shell`, production settings) against a far-side MTN
on 127.0.0.1 that takes the transfer request and never answers it; the process is killed while it waits. The
promise: the claim and the X-Reference-Id chosen before sending are committed, the payout is never sent again,
and once it has been stuck for 10 minutes `reconcile_payments` asks MTN by that id and settles it once.

    DATABASE_URL=mysql://root@127.0.0.1:3306/donations_faults .venv/bin/pytest -q \
        payments/tests/faults/test_money_out_kill.py
"""

import json
import os
import signal
import subprocess
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from donor.services import donation_complete, donation_create, donor_for_guest
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.faults.processes import BIN, HOST, ROOT, command_summary, free_port, manage
from payments.faults.rig import Secrets, app_env
from payments.models import Payment, Payout
from payments.sandbox.server import serve_in_thread
from payments.services.payouts import payout_request
from payments.tests.factories import staff_user

pytestmark = [pytest.mark.mysql, pytest.mark.fault, pytest.mark.django_db(transaction=True)]
AMOUNT = Decimal("150000")


class HangingMtn(ThreadingHTTPServer):
    """MTN's Disbursement product: a token, a transfer request that is never answered, and its status GET."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, free_port()), _Handler)
        self.transfer_arrived = threading.Event()
        self.release = threading.Event()
        self.transfers: list[str] = []  # the X-Reference-Id of each transfer request received
        self.status: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: HangingMtn

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/disbursement/token/":
            return self._json(200, {"access_token": "t", "token_type": "access_token", "expires_in": 3600})
        if self.path == "/disbursement/v1_0/transfer":
            self.server.transfers.append(self.headers.get("X-Reference-Id", ""))
            self.server.transfer_arrived.set()
            self.server.release.wait(30)  # the sender is killed while it waits for this answer
            return None
        return self._json(404, {})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/disbursement/v1_0/transfer/"):
            return self._json(200, self.server.status)
        return self._json(404, {})

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server signature)
        pass


@pytest.fixture
def mtn():
    server = HangingMtn()
    serve_in_thread(server)
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def funded_patient_with_an_mtn_partner():
    partner = TreatmentPartnerFactory(payout_provider="mtn", payout_msisdn="256772123456", country="UG")
    patient = PatientFactory(currency="UGX", funding_goal=AMOUNT, treatment_partner=partner)
    donation = donation_create(patient=patient, amount=AMOUNT, currency="UGX", donor=donor_for_guest(name="Nakato"))
    Payment.objects.create(donation=donation, reference=donation.reference, provider="mtn", msisdn="256772123456",
                           amount=AMOUNT, currency="UGX", status=Payment.Status.SUCCEEDED)  # fmt: skip
    donation_complete(donation_id=donation.pk)
    patient.refresh_from_db()
    return patient


def test_a_payout_whose_sender_is_killed_mid_request_is_asked_about_by_its_stored_id_and_paid_once(tmp_path, mtn):
    patient = funded_patient_with_an_mtn_partner()
    payout = payout_request(patient=patient, amount=AMOUNT, requested_by=staff_user("maker", "payments.add_payout"))
    staff_user("checker", "payments.approve_payout")
    env = app_env(database_url=f"mysql://root@{HOST}:3306/{connection.settings_dict['NAME']}", provider_url=mtn.url,
                  log_dir=tmp_path, secrets=Secrets.generate())  # fmt: skip
    approve = (
        "from django.contrib.auth.models import User; from payments.services.payouts import payout_approve; "
        f"payout_approve(payout_id={payout.pk}, approved_by=User.objects.get(username='checker'))"
    )
    sender = subprocess.Popen([str(BIN / "python"), "manage.py", "shell", "-c", approve], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert mtn.transfer_arrived.wait(60), "the transfer request never reached MTN"
        os.kill(sender.pid, signal.SIGKILL)
    finally:
        sender.wait(30)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING  # claimed, never answered: the process died
    assert payout.provider_reference == mtn.transfers[0]  # the X-Reference-Id was stored before the request left

    mtn.status = {"financialTransactionId": "363440463", "amount": str(int(AMOUNT)), "currency": "UGX",
                  "externalId": payout.reference, "status": "SUCCESSFUL",
                  "payee": {"partyIdType": "MSISDN", "partyId": "256772123456"}}  # fmt: skip
    early = manage(env, "reconcile_payments")
    assert early.returncode == 0, command_summary(early)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING  # under 10 minutes it may still be sending: left alone

    Payout.objects.filter(pk=payout.pk).update(approved_at=timezone.now() - timedelta(minutes=11))
    late = manage(env, "reconcile_payments")
    assert late.returncode == 0, command_summary(late)
    payout.refresh_from_db()
    assert (payout.status, payout.receipt) == (Payout.Status.PAID, "363440463")
    assert len(mtn.transfers) == 1  # never sent again
    ledger = manage(env, "verify_ledger")
    assert ledger.returncode == 0, command_summary(ledger)
