"""Secrets stay secret: URL tokens never reach a log file or a database column in clear; stored digests are
keyed, so someone with the database cannot test guesses of the AzamPay callback password offline; log lines
mask phone numbers and secrets."""

import hashlib
import json
import logging
from decimal import Decimal

import pytest
from django.test import Client

from config.logging import MaskSensitiveFilter, mask_text
from config.tests.log_files import log_files
from payments.models import CallbackEvent, Payment
from payments.tests.azampay_fakes import CALLBACK_URL, PASSWORD, fixture
from payments.tests.factories import PaymentFactory, token_for
from payments.url_tokens import new_url_token

pytestmark = pytest.mark.django_db

C2B_SECRET = new_url_token()


@pytest.fixture(autouse=True)
def c2b_token(settings):
    settings.PAYMENT_PROVIDERS = {
        **settings.PAYMENT_PROVIDERS,
        "mpesa": {**settings.PAYMENT_PROVIDERS["mpesa"], "c2b_token": C2B_SECRET, "allowed_ips": []},
    }


def log_text() -> str:
    for handler in logging.getLogger().handlers + logging.getLogger("payments").handlers:
        handler.flush()
    return "\n".join(p.read_text(errors="replace") for p in log_files())


def test_a_wrong_or_right_url_token_never_reaches_a_log_file():
    wrong = new_url_token()
    client = Client()
    # 401 (Django's request logger writes the path of every 4xx), 400 on the right token, 405 on GET.
    assert (
        client.post(f"/webhooks/paybill/confirmation/{wrong}/", b"{}", content_type="application/json").status_code
        == 401
    )
    assert (
        client.post(f"/webhooks/paybill/confirmation/{C2B_SECRET}/", b"nope", content_type="text/plain").status_code
        == 400
    )
    assert client.get(f"/webhooks/mpesa/b2c/result/{wrong}/").status_code == 405
    assert client.post(f"/webhooks/mpesa/stkpush/{wrong}/", b"[[[", content_type="application/json").status_code in (
        400,
        401,
    )

    text = log_text()
    assert "/webhooks/paybill/confirmation/***/" in text  # the line is there, its secret is not
    assert wrong not in text and C2B_SECRET not in text


def test_url_tokens_are_stored_only_as_keyed_digests():
    payment = PaymentFactory(provider="mpesa", channel="", donation__currency="KES")
    token = token_for(payment)
    Client().post(f"/webhooks/mpesa/stkpush/{token}/", b"{}", content_type="application/json")
    Client().post(f"/webhooks/paybill/confirmation/{C2B_SECRET}/", b"{}", content_type="application/json")

    rows = list(Payment.objects.values()) + list(CallbackEvent.objects.values())
    dumped = json.dumps(rows, default=str)
    assert token not in dumped and C2B_SECRET not in dumped
    assert hashlib.sha256(token.encode()).hexdigest() not in dumped  # keyed, not a plain hash either


@pytest.mark.usefixtures("azampay_settings")
def test_the_stored_body_digest_is_keyed_so_the_redacted_password_cannot_be_guessed_offline():
    payment = PaymentFactory(donation__amount=Decimal("5000"))
    data = fixture("callback_real_sandbox.json") | {"utilityref": payment.reference, "password": PASSWORD}
    body = json.dumps(data).encode()
    Client().post(CALLBACK_URL, body, content_type="application/json")

    event = CallbackEvent.objects.get()
    assert PASSWORD not in event.body  # redacted
    # With the redacted body, the digest and a guess, a plain SHA-256 would confirm the guess:
    guess = event.body.replace('"***"', json.dumps(PASSWORD)).encode()
    assert hashlib.sha256(guess).hexdigest() != event.body_digest
    assert hashlib.sha256(body).hexdigest() != event.body_digest


def test_logs_mask_phone_numbers_and_secrets():
    assert mask_text("payer 255712345678 paid") == "payer 2557****678 paid"
    assert mask_text('{"password": "hunter2", "x": 1}') == '{"password": ***, "x": 1}' or "hunter2" not in mask_text(
        '{"password": "hunter2", "x": 1}'
    )
    assert "abc.def" not in mask_text("Authorization: Bearer abc.def")
    assert mask_text("ref RHCI-DN-12-20251219120000") == "ref RHCI-DN-12-20251219120000"
    record = logging.LogRecord(
        "payments", logging.INFO, __file__, 1, "phone %s token=%s", ("0712345678", "s3cr3t"), None
    )
    MaskSensitiveFilter().filter(record)
    assert "0712345678" not in record.getMessage() and "s3cr3t" not in record.getMessage()
