"""One test driver per provider: shared test support for the callback pipeline suites (services/test_pipeline.py,
services/test_pipeline_money_out.py), the quirk files (services/test_quirks_<code>.py), reconciliation, the
admin and the end-to-end tests.

A driver knows only its provider's facts: how to make a payment (or payout, refund) awaiting a callback, the
provider's own callback bodies about it (built from its real payloads in payments/tests/fixtures/<code>/), what
its far side answers to a status query (mocked with `responses`), and which URL is the payment's secret one and
which a forger would use. The properties every provider must have are written once, in the suites, against
this interface; a provider's file of quirks (test_quirks_<code>.py) holds only what is its own.

Adding a provider: one `Driver` subclass here, in `DRIVERS`; the suite fails while a registered provider has none.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import requests
import responses
from django.core.cache import cache
from django.test import Client, TestCase
from django.utils.timezone import now

from donor.models import Allocation, Donation
from donor.services import donation_complete, donation_create, donor_for_guest
from patients.models import Patient
from patients.tests.factories import PatientFactory, TreatmentPartnerFactory
from payments.models import CallbackEvent, Payment, Payout, Refund
from payments.services.money_out import funds_available
from payments.services.payouts import payout_approve, payout_cancel, payout_request, payout_resolve
from payments.services.refunds import refund_approve, refund_cancel, refund_request, refund_resolve
from payments.tests import azampay_fakes as azampay
from payments.tests import mpesa_fakes as mpesa
from payments.tests.factories import PaymentFactory, staff_user, token_for
from payments.tests.fixtures import load_fixture
from payments.tests.helpers import credited, run_together
from payments.tests.providers.airtel import support as airtel
from payments.tests.providers.mtn import support as mtn

Body = dict | bytes
THREADS = 20


def encode(body: Body, indent: int | None = None) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, indent=indent).encode()


def deliver(path: str, body: Body, *, method: str = "post") -> tuple[int, dict]:
    """Deliver a callback through the real URL and run what it left for after its commit (the status query).
    Never a redirect: providers do not follow one."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = getattr(Client(), method)(path, data=encode(body), content_type="application/json")
    assert "Location" not in response
    return response.status_code, response.json()


def deliver_together(deliveries: list[tuple[str, str, bytes]]) -> list[tuple[int, dict]]:
    """Every (method, path, body) at the same instant, each from its own client and connection (MariaDB)."""

    def sender(method: str, path: str, data: bytes) -> Callable[[], tuple[int, dict]]:
        def send() -> tuple[int, dict]:
            response = getattr(Client(), method)(path, data=data, content_type="application/json")
            return response.status_code, response.json()

        return send

    return run_together([sender(*delivery) for delivery in deliveries])


def statuses() -> list[str]:
    return list(CallbackEvent.objects.order_by("pk").values_list("status", flat=True))


def airtel_hash(secret: str, transaction: dict) -> str:
    """Airtel's `hash`: Base64(HMAC-SHA256(secret, compact JSON of `transaction`)), written from its docs."""
    signed = json.dumps(transaction, separators=(",", ":")).encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


# --- the shared part of every driver ----------------------------------------------------------------------------


class Rail:
    """What payment and money-out drivers share: settings, the mocked far side, counting its status queries."""

    code: ClassVar[str]
    ack: ClassVar[dict]
    methods: ClassVar[tuple[str, ...]] = ("post",)
    trusted: ClassVar[bool] = False  # credited (settled) on the callback's word, without asking
    status_url: ClassVar[str]
    status_method: ClassVar[str] = "GET"

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock

    config: ClassVar[dict[str, Any]]  # the provider's settings over the test defaults
    site_url: ClassVar[str] = ""
    token_urls: ClassVar[tuple[tuple[str, str], ...]]  # (method, URL) of its token endpoints

    @classmethod
    def configure(cls, settings) -> None:
        providers = settings.PAYMENT_PROVIDERS
        settings.PAYMENT_PROVIDERS = {**providers, cls.code: {**providers[cls.code], **cls.config}}
        if cls.site_url:
            settings.SITE_URL = cls.site_url

    @classmethod
    @contextmanager
    def running(cls, settings) -> Iterator["Rail"]:
        cache.clear()  # tokens and rate-limit counters
        cls.configure(settings)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            for method, url in cls.token_urls:
                mock.add(method, url, json=cls.fixture("token_success.json"))
            yield cls(mock)
        cache.clear()

    @property
    def method(self) -> str:
        return self.methods[0]

    def answer(self, name: str, *, status: int = 200, **changes: Any) -> None:
        """The far side's status answer: one of its fixtures, with `changes`; where `name` is "", a bare HTTP
        `status` without a body, or (status 0) no answer at all."""
        if not name:
            failure = {"status": status} if status else {"body": requests.ConnectionError("unreachable")}
            self.mock.add(self.status_method, self.status_url, **failure)
            return
        body = self.fixture(name) | changes
        self.mock.add(self.status_method, self.status_url, json=body, status=status)

    @classmethod
    def fixture(cls, name: str) -> Any:
        return load_fixture(cls.code, name)

    def asked(self) -> int:
        """How often the far side was asked about the payment (the status query)."""
        return sum(
            c.request.method == self.status_method and c.request.url.split("?")[0] == self.status_url
            for c in self.mock.calls
        )

    def calls(self) -> int:
        """Every request to the far side but token requests."""
        return sum("token" not in c.request.url and "generate" not in c.request.url for c in self.mock.calls)


class Driver(Rail):
    """A provider's payments: the role every registered provider has."""

    amount: ClassVar[Decimal]
    currency: ClassVar[str]
    msisdn: ClassVar[str]
    reference: ClassVar[str] = ""  # the payment's (and its donation's) reference, where its fixtures name it
    goal: ClassVar[Decimal] = Decimal("1000000")
    receipt: ClassVar[str]
    callback_path: ClassVar[str]
    secret_in_body: ClassVar[bool] = False  # the secret is in the body (a password, a hash), not in the URL
    receipt_needs_secret_url: ClassVar[bool] = False  # the receipt is the body's, believed only on its secret URL
    # Status answers, by fixture name: (name, HTTP status, the event's verdict). A success is never credited on
    # any of these; "failed" ones overrule it (→ payment status, the reason's code).
    paid: ClassVar[tuple[str, dict]] = ("", {})
    pending: ClassVar[tuple[str, dict]] = ("", {})  # its "not yet" status answer (trusted or secret-bearing rails)
    down: ClassVar[tuple[str, dict]] = ("", {})  # its far side failing (secret-bearing rails)
    secret_setting: ClassVar[str] = ""  # the provider setting holding the secret in its bodies, where it has one
    notice_kind: ClassVar[str] = ""  # the kind its notices are stored as, where it sends any
    unsure: ClassVar[list[tuple[str, int, str]]] = []
    failed: ClassVar[list[tuple[str, str, str]]] = []
    malformed: ClassVar[dict[str, bytes]] = {}
    aliases: ClassVar[tuple[str, ...]] = ()  # other URLs the same callback may arrive on

    def says_paid(self, payment: Payment) -> None:
        name, changes = self.paid
        self.answer(name, **changes)

    def payment(self) -> Payment:
        """A payment awaiting its callback, as the provider's own fields (`payment_fields`) describe it."""
        return PaymentFactory(
            provider=self.code,
            channel="",
            donation__amount=self.amount,
            donation__currency=self.currency,
            donation__patient__currency=self.currency,
            donation__patient__funding_goal=self.goal,
            msisdn=self.msisdn,
            **({"reference": self.reference, "donation__reference": self.reference} if self.reference else {}),
            **self.payment_fields(),
        )

    def payment_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def success_body(self, payment: Payment) -> Body:
        raise NotImplementedError

    def failure_body(self, payment: Payment) -> Body:
        raise NotImplementedError

    def url(self, payment: Payment, path: str = "secret") -> str:
        """One of the URLs the same callback may arrive on: its secret one, or one of the `aliases`."""
        return self.secret_url(payment) if path == "secret" else path

    def secret_url(self, payment: Payment) -> str:
        """Its secret URL: the payment's own (`callback_path` and its token), or the one URL its secret-bearing
        bodies come to."""
        return self.callback_path if self.secret_in_body else f"{self.callback_path}{token_for(payment)}/"

    def notice(self, forged: bool = False) -> tuple[str, dict]:
        """A notice (not about a payment of ours) on its URL, or on one we never issued; where a rail has notices."""
        raise NotImplementedError

    def unsigned_body(self, payment: Payment) -> Body:
        """A success without the secret in its body (what is sent while none is configured)."""
        raise NotImplementedError

    def forged_url(self, payment: Payment) -> str:
        """A URL (with a body below) that no callback of ours can come from."""
        return self.callback_path if self.secret_in_body else f"{self.callback_path}not-a-token-of-ours/"

    def forgeries(self, payment: Payment) -> dict[str, tuple[str, Body]]:
        return {"forged-url": (self.forged_url(payment), self.success_body(payment))}

    def unknown(self, payment: Payment) -> tuple[str, Body]:
        """A callback about no payment of ours."""
        raise NotImplementedError

    def other_amount(self, payment: Payment) -> Body | None:
        """Set up a success about another amount and return the body to deliver; None where nothing names one."""
        return None


# --- AzamPay: the callback password makes its word trusted ------------------------------------------------------


class AzamPay(Driver):
    code = "azampay"
    callback_path = azampay.CALLBACK_URL  # the one URL on its dashboard; the secret is the password in the body
    config = azampay.SETTINGS
    token_urls = (("POST", azampay.TOKEN_URL),)
    ack = azampay.ACK
    trusted = True
    secret_in_body = True
    status_url = azampay.STATUS_URL
    amount = Decimal("5000")
    receipt = "a068932f-09a8-4ff4-82c0-6efa13def8d5"
    aliases = (azampay.CALLBACK_URL.rstrip("/"),)  # never a redirect, with or without the slash
    paid = ("status_success.json", {})
    pending = ("status_success.json", {"data": "Transaction pending."})
    down = ("", {"status": 503})
    secret_setting = "callback_password"
    failed = [("status_failed.json", Payment.Status.FAILED, "")]
    malformed = {
        "truncated": b'{"transactionstatus": "success", "utilityref": ',
        "not-json": b"not json",
        "array": b"[]",
    }

    def payment(self, **fields: Any) -> Payment:
        return PaymentFactory(
            donation__amount=self.amount,
            donation__patient__funding_goal=Decimal("1000000"),
            donation__donor__email="donor@example.org",
            **fields,
        )

    @classmethod
    def body(cls, payment: Payment, *, status: str = "success", password: str | None = azampay.PASSWORD, **fields):
        return json.loads(azampay.callback_body(payment, status=status, password=password, **fields))

    def success_body(self, payment):
        return self.body(payment)

    def failure_body(self, payment):
        return self.body(payment, status="failure")

    def unsigned_body(self, payment):
        return self.body(payment, password=None, amount="1")  # its amount is not believed either

    def forgeries(self, payment):
        return {
            name: (self.forged_url(payment), self.body(payment, password=password))
            for name, password in [("no-password", None), ("empty", ""), ("wrong", "guessed-password")]
        }

    def unknown(self, payment):
        other = {"reference": "TEST123", "externalreference": "TEST123", "transid": "TEST123"}
        return azampay.CALLBACK_URL, self.body(payment, utilityref="RHCI-DN-999-20251219120000", **other)

    def other_amount(self, payment):
        return self.body(payment, amount="50")  # the password is right: the body is believed, its amount is not


# --- M-Pesa: the STK Push Query decides -------------------------------------------------------------------------


class Mpesa(Driver):
    code = "mpesa"
    callback_path = "/webhooks/mpesa/stkpush/"
    config = mpesa.SETTINGS
    site_url = mpesa.SITE_URL
    token_urls = (("GET", mpesa.TOKEN_URL),)
    ack = mpesa.ACK
    status_url = mpesa.QUERY_URL
    status_method = "POST"
    amount = Decimal("1.00")
    currency = "KES"
    msisdn = "254708374149"
    goal = Decimal("100000")
    receipt = "NLJ7RT61SV"
    receipt_needs_secret_url = True  # Daraja's query carries no receipt
    checkout_id = "ws_CO_191220191020363925"
    paid = ("query_success.json", {"CheckoutRequestID": checkout_id})
    unsure = [
        ("query_pending_4999.json", 200, CallbackEvent.Status.REVIEW),
        ("query_pending_500.json", 500, CallbackEvent.Status.REVIEW),  # Daraja's "still being processed"
        ("", 0, CallbackEvent.Status.FAILED),  # Daraja unreachable: the sweeper asks again
    ]
    failed = [("query_cancelled_1032.json", Payment.Status.CANCELLED, "1032")]
    aliases = (
        "/webhooks/mpesa/stkpush/",
        "/webhooks/mpesa/stkpush",
        "/api/v1/payments/mpesa/callback",
        "/api/v1/payments/mpesa/callback/",
        "/mpesa/callback",
        "/mpesa/callback/",
    )
    malformed = {
        "not-json": b"not json",
        "empty-object": b"{}",
        "no-checkout-id": b'{"Body": {"stkCallback": {"ResultCode": 0}}}',
        "callback-not-object": b'{"Body": {"stkCallback": "x"}}',
    }

    def answer(self, name: str, *, status: int = 200, **changes: Any) -> None:
        if name and "CheckoutRequestID" in self.fixture(name):
            changes.setdefault("CheckoutRequestID", self.checkout_id)  # about our payment, not the sample's
        super().answer(name, status=status, **changes)

    def payment_fields(self):
        return {"provider_reference": self.checkout_id}

    def stk(self, name: str, checkout_id: str | None = None) -> dict:
        body = self.fixture(name)
        body["Body"]["stkCallback"]["CheckoutRequestID"] = checkout_id or self.checkout_id
        return body

    def success_body(self, payment):
        return self.stk("callback_success_balance_without_value.json")

    def failure_body(self, payment):
        return self.stk("callback_cancelled_1032.json")

    def unknown(self, payment):
        return "/webhooks/mpesa/stkpush/", self.stk("callback_success_balance_without_value.json", "ws_CO_0000000000")


# --- MTN MoMo: signs nothing; the secret URL names the payment, the status GET decides -------------------------


class Mtn(Driver):
    code = "mtn"
    callback_path = "/webhooks/mtn/collection/"
    config = mtn.KWARGS
    site_url = mtn.SITE_URL
    token_urls = (("POST", mtn.COLLECTION_TOKEN_URL), ("POST", mtn.DISBURSEMENT_TOKEN_URL))
    ack = {"status": "accepted", "message": "Callback received"}
    methods = ("put", "post")
    status_url = f"{mtn.RTP_URL}/{mtn.X_REFERENCE_ID}"
    amount = Decimal("50000")  # the fixtures' amount
    currency = "EUR"  # MTN's sandbox currency
    msisdn = "46733123454"
    reference = mtn.REFERENCE
    receipt = "1574559373"
    notice_kind = "remittance"
    aliases = ("/webhooks/mtn/collection/", "/webhooks/mtn/collection")  # the body's references name the payment
    paid = ("status_successful.json", {})
    unsure = [
        ("status_pending.json", 200, CallbackEvent.Status.REVIEW),
        ("status_created.json", 200, CallbackEvent.Status.REVIEW),
        ("status_not_found_404.json", 404, CallbackEvent.Status.REVIEW),  # "not visible yet": pending
        ("error_internal_processing_500.json", 500, CallbackEvent.Status.FAILED),  # MTN down: retried later
    ]
    failed = [
        ("status_failed_not_enough_funds.json", Payment.Status.FAILED, "NOT_ENOUGH_FUNDS"),
        ("status_failed_approval_rejected.json", Payment.Status.CANCELLED, "APPROVAL_REJECTED"),
        ("status_failed_expired.json", Payment.Status.EXPIRED, "EXPIRED"),
    ]

    def payment_fields(self):
        return {"provider_reference": mtn.X_REFERENCE_ID}  # our X-Reference-Id, stored before the request to pay

    def success_body(self, payment):
        return self.fixture("callback_collection_with_reference_id.json") | {"referenceId": mtn.X_REFERENCE_ID}

    def failure_body(self, payment):
        return self.fixture("callback_collection_failed_not_enough_funds.json")

    def unknown(self, payment):
        no_reference = {  # v1 callbacks carry no referenceId; this one lost its externalId too
            "financialTransactionId": "1574559373",
            "amount": "50000",
            "currency": "EUR",
            "payer": {"partyIdType": "MSISDN", "partyId": "46733123454"},
            "status": "SUCCESSFUL",
        }
        return "/webhooks/mtn/collection/", no_reference

    def other_amount(self, payment):
        self.answer("status_successful.json", amount="1")
        return self.success_body(payment)

    def notice(self, forged=False):
        path = "/webhooks/mtn/remittance/not-a-token-of-ours/" if forged else "/webhooks/mtn/remittance/"
        return path, self.fixture("callback_transfer_successful.json")


Mtn.malformed = {
    "array": mtn.raw_fixture("callback_malformed_array.json"),
    "no-status": mtn.raw_fixture("callback_malformed_no_status.json"),
    "reason-list": mtn.raw_fixture("callback_malformed_reason_list.json"),
    "not-json": b"not json",
    "status-not-text": b'{"status": 7}',
}


# --- Airtel Money: a `hash` over the transaction authenticates it; the enquiry decides -------------------------


class Airtel(Driver):
    code = "airtel"
    callback_path = "/webhooks/airtel/payment/"  # the one URL on its portal; the secret is in the hash
    config = {**airtel.KWARGS, "country": "UG", "currency": "UGX", "callback_secret": airtel.SECRET}
    token_urls = (("POST", airtel.TOKEN_URL),)
    ack = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}
    status_url = airtel.ENQUIRY_URL
    secret_in_body = True
    amount = Decimal("5000")
    currency = "UGX"
    msisdn = "256712345678"
    reference = airtel.REFERENCE
    receipt = "C3648.00993.538XX.XX67"  # the enquiry's airtel_money_id: Airtel's word, not the callback's
    paid = ("enquiry_success.json", {})
    pending = ("enquiry_in_progress.json", {})
    down = ("enquiry_success.json", {"status": 500})
    secret_setting = "callback_secret"
    notice_kind = "notification"
    unsure = [
        ("enquiry_in_progress.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_ambiguous.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_tu.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_not_found.json", 200, CallbackEvent.Status.REVIEW),
        ("enquiry_not_found.json", 404, CallbackEvent.Status.REVIEW),
        ("enquiry_success.json", 500, CallbackEvent.Status.FAILED),  # Airtel down: the sweeper asks again
    ]
    failed = [
        ("enquiry_failed_insufficient.json", Payment.Status.FAILED, "TF"),
        ("enquiry_failed_pin_not_entered.json", Payment.Status.EXPIRED, "TF"),
    ]

    def payment_fields(self):
        return {
            "external_id": airtel.AIRTEL_ID,  # our reference in Airtel's alphabet: the push's transaction.id
            "provider_reference": None,  # Airtel's airtel_money_id is learnt from the enquiry
        }

    @staticmethod
    def signed(name: str = "callback_success.json", *, secret: str | None = airtel.SECRET, **changes) -> dict:
        """An Airtel callback fixture about our payment (`changes` go into its transaction), with its hash."""
        body = airtel.fixture(name)
        transaction = body.get("transaction") or body["data"]["transaction"]
        transaction.update({"id": airtel.AIRTEL_ID, **changes})
        body.pop("hash", None)
        if secret is not None:
            body["hash"] = airtel_hash(secret, transaction)
        return body

    def success_body(self, payment):
        return self.signed()

    def failure_body(self, payment):
        return self.signed("callback_failure.json")

    def unsigned_body(self, payment):
        return self.signed(secret=None)

    def notice(self, forged=False):  # Airtel documents no notification shape: whatever it sends is kept
        return "/webhooks/airtel/notification/", self.signed(secret="not-our-secret" if forged else airtel.SECRET)

    def forgeries(self, payment):
        failure = self.signed("callback_failure.json")
        return {
            name: (self.forged_url(payment), body)
            for name, body in [
                ("wrong-secret", self.signed(secret="not-our-secret")),
                ("no-hash", self.signed(secret=None)),
                ("empty-hash", self.signed() | {"hash": ""}),
                # A good hash over another transaction, pasted onto ours.
                ("another-transactions-hash",
                 self.signed() | {"hash": airtel_hash(airtel.SECRET, {"id": "SOMEONEELSE1", "status_code": "TS"})}),
                # Our transaction's hash, with the state changed afterwards.
                ("tampered-after-signing",
                 failure | {"transaction": {**failure["transaction"], "status_code": "TS"}}),
            ]
        }  # fmt: skip

    def unknown(self, payment):
        return "/webhooks/airtel/payment/", self.signed(id="RHCIDN99920251219120000")


Airtel.malformed = {
    "no-id": encode(Airtel.signed("callback_malformed_no_id.json", id="")),
    "no-status": encode(Airtel.signed("callback_malformed_no_status.json")),
    "status-not-text": encode(Airtel.signed(status_code={"state": "TS"})),
    "not-json": b"not json",
    "array": b"[]",
}

DRIVERS: dict[str, type[Driver]] = {driver.code: driver for driver in (AzamPay, Mpesa, Mtn, Airtel)}


def driver_fixtures(driver: type[Driver]):
    """The `rail` (the driver, its far side running) and `payment` fixtures of a provider's quirk file."""

    @pytest.fixture
    def rail(settings):
        with driver.running(settings) as running:
            yield running

    @pytest.fixture
    def payment(rail):
        return rail.payment()

    return rail, payment


def cases(attribute: Callable[[Any], Any], *, where: Callable[[Any], bool] = lambda d: True, drivers: dict = DRIVERS):
    """pytest params (driver code, case) of every driver's cases: `attribute` gives a dict (name → case) or a list
    (a fixture's name names its case)."""
    params = []
    for code, driver in drivers.items():
        if not where(driver):
            continue
        found = attribute(driver)
        named = ((c.removesuffix(".json") if isinstance(c, str) else str(i), c) for i, c in enumerate(found))
        items = found.items() if isinstance(found, dict) else named
        params += [pytest.param(code, case, id=f"{code}-{name}") for name, case in items]
    return params


# --- money out: payout and refund results -----------------------------------------------------------------------


def funded_patient(*, provider: str, msisdn: str, amount: Decimal, currency: str) -> Patient:
    partner = TreatmentPartnerFactory(payout_provider=provider, payout_msisdn=msisdn)
    return PatientFactory(
        currency=currency,
        funding_goal=amount,
        funding_received=amount,
        status=Patient.Status.FULLY_FUNDED,
        treatment_partner=partner,
    )


def sent_payout(*, provider: str, reference: str, msisdn: str, amount: Decimal, currency: str, provider_reference: str):
    patient = funded_patient(provider=provider, msisdn=msisdn, amount=amount, currency=currency)
    return Payout.objects.create(
        reference=reference, patient=patient, treatment_partner=patient.treatment_partner, provider=provider,
        msisdn=msisdn, amount=amount, currency=currency, status=Payout.Status.SENT, requested_by=staff_user("maker"),
        approved_by=staff_user("checker"), provider_reference=provider_reference,
    )  # fmt: skip


def paid_donation(*, patient: Patient | None = None, provider: str = "mpesa", currency: str = "KES",
                  amount: str = "1000", email: str = "", **payment_fields: Any) -> Donation:  # fmt: skip
    """A completed donation, its payment through `provider` succeeded and credited to the patient."""
    patient = patient or PatientFactory(currency=currency, funding_goal=Decimal("1000000"))
    donor = donor_for_guest(name="Amina", email=email)
    donation = donation_create(patient=patient, amount=Decimal(amount), currency=patient.currency, donor=donor)
    Payment.objects.create(
        donation=donation,
        reference=donation.reference,
        provider=provider,
        channel="Mpesa" if provider == "azampay" else "",
        amount=donation.amount,
        currency=donation.currency,
        status=Payment.Status.SUCCEEDED,
        **{"msisdn": "254708374149", "provider_reference": f"ws_CO_{donation.pk}", "receipt": "TL4RCPT001",
           **payment_fields},
    )  # fmt: skip
    donation_complete(donation_id=donation.pk)
    return Donation.objects.get(pk=donation.pk)


def sent_refund(*, provider: str, paid: Decimal, amount: Decimal, currency: str, payment_fields: dict, **fields):
    donation = paid_donation(provider=provider, currency=currency, amount=str(paid), msisdn="46733123454",
                             **payment_fields)  # fmt: skip
    return Refund.objects.create(
        donation=donation, payment=donation.payments.get(), provider=provider, amount=amount, currency=currency,
        status=Refund.Status.SENT, requested_by=staff_user("refund-maker"), approved_by=staff_user("refund-checker"),
        **fields,
    )  # fmt: skip


def reversals(refund: Refund) -> list[Decimal]:
    rows = Allocation.objects.filter(donation=refund.donation, entry=Allocation.Entry.REVERSAL)
    return list(rows.values_list("amount", flat=True))


class MoneyOut(Rail):
    """A payout or refund rail: a result callback about money we sent."""

    kind: ClassVar[str]  # "payout" or "refund"
    result_path: ClassVar[str]
    receipt: ClassVar[str]
    another_amount: ClassVar[str] = ""  # the amount `other_amount` claims, where a rail has one
    timeout_path: ClassVar[str] = ""  # where its queue timeout comes, where it has one
    paid: ClassVar[tuple[str, dict]] = ("", {})
    unsure: ClassVar[list[str]] = []  # status answers that confirm nothing
    malformed: ClassVar[dict[str, bytes]] = {}

    def says_paid(self) -> None:
        name, changes = self.paid
        if name:
            self.answer(name, **changes)

    def subject(self) -> Payout | Refund:
        raise NotImplementedError

    def success_body(self, subject) -> Body:
        raise NotImplementedError

    def failure_body(self, subject) -> Body:
        """Its result saying the money did not move (trusted rails)."""
        raise NotImplementedError

    def queue_timeout_body(self, subject) -> Body:
        raise NotImplementedError

    def forged_url(self) -> str:
        raise NotImplementedError

    def forged_body(self, subject) -> Body:
        return self.success_body(subject)

    def other_amount(self, subject) -> Body | None:
        return None

    def settled_once(self, subject) -> None:
        subject.refresh_from_db()
        assert subject.receipt == self.receipt and not subject.needs_review
        if self.kind == "payout":
            assert subject.status == Payout.Status.PAID
            subject.patient.refresh_from_db()
            assert subject.patient.status == Patient.Status.IN_TREATMENT
        else:
            assert subject.status == Refund.Status.REFUNDED
            assert reversals(subject) == [-subject.amount]
            paid = subject.payment.amount
            assert credited(subject.payment) == paid - subject.amount
            partial = Donation.Status.COMPLETED if subject.amount < paid else Donation.Status.REFUNDED
            assert Donation.objects.get(pk=subject.donation_id).status == partial

    def untouched(self, subject) -> None:
        subject.refresh_from_db()
        assert subject.status == (Payout.Status.SENT if self.kind == "payout" else Refund.Status.SENT)
        if self.kind == "refund":
            assert reversals(subject) == []


class MpesaB2C(MoneyOut):
    code = "mpesa"
    kind = "payout"
    ack = mpesa.ACK
    trusted = True  # on its secret URL (MPESA_B2C_TOKEN), with PAYMENTS_APPLY_TRUSTED_CALLBACKS
    status_url = mpesa.QUERY_URL  # never asked: nothing to count
    status_method = "POST"
    result_path = f"/webhooks/mpesa/b2c/result/{mpesa.B2C_TOKEN}/"
    timeout_path = f"/webhooks/mpesa/b2c/timeout/{mpesa.B2C_TOKEN}/"
    receipt = "SG632NMUAB"
    another_amount = "11"
    conversation_id = "AG_20240706_20106e9209f64bebd05b"
    malformed = {
        "not-json": b"not json",
        "no-result": b"{}",
        "result-not-object": b'{"Result": "x"}',
        "no-ids": b'{"Result": {"ResultCode": 0}}',
        "no-result-code": b'{"Result": {"ConversationID": "x"}}',
    }
    config, site_url, token_urls = Mpesa.config, Mpesa.site_url, Mpesa.token_urls

    def subject(self):
        return sent_payout(
            provider="mpesa", reference="RHCI-PO-3-20240706224852", msisdn="254705912645", amount=Decimal("10"),
            currency="KES", provider_reference=self.conversation_id,
        )  # fmt: skip

    def success_body(self, subject, amount: Decimal | None = None):
        body = b2c_result(subject)
        parameters = body["Result"]["ResultParameters"]["ResultParameter"]
        next(p for p in parameters if p["Key"] == "TransactionAmount")["Value"] = int(amount or subject.amount)
        return body

    def failure_body(self, subject):
        return b2c_result(subject, 2001)

    def queue_timeout_body(self, subject):
        return b2c_result(subject, 1, "The service request has timed out.")

    def forged_url(self):
        return "/webhooks/mpesa/b2c/result/not-our-secret/"

    def other_amount(self, subject):
        return self.success_body(subject, amount=Decimal(self.another_amount))


class MpesaReversal(MoneyOut):
    code = "mpesa"
    kind = "refund"
    ack = mpesa.ACK
    trusted = True
    status_url = mpesa.QUERY_URL
    status_method = "POST"
    result_path = f"/webhooks/mpesa/reversal/result/{mpesa.B2C_TOKEN}/"
    timeout_path = f"/webhooks/mpesa/reversal/timeout/{mpesa.B2C_TOKEN}/"
    receipt = "TL4RVS0001"
    conversation_id = "AG_20261201_00004e2a5b1c7d9f0aaa"
    malformed = {name: MpesaB2C.malformed[name] for name in ("not-json", "no-result", "result-not-object")}
    config, site_url, token_urls = Mpesa.config, Mpesa.site_url, Mpesa.token_urls

    def subject(self):
        return sent_refund(
            provider="mpesa", paid=Decimal("1000"), amount=Decimal("1000"), currency="KES",
            payment_fields={"provider_reference": "ws_CO_paid", "receipt": "TL4RCPT001"},
            reference="RHCI-RF-8521-4298025-1", provider_reference=self.conversation_id,
        )  # fmt: skip

    def success_body(self, subject):
        return reversal_result()

    def failure_body(self, subject):
        return reversal_result("R000002", "The OriginalTransactionID is invalid")

    def queue_timeout_body(self, subject):
        return reversal_result(1, "The service request has timed out.")

    def forged_url(self):
        return "/webhooks/mpesa/reversal/result/not-our-secret/"


def b2c_result(payout: Payout, code: int = 0, desc: str = "", *, originator: str | None = None,
               conversation_id: str | None = MpesaB2C.conversation_id) -> dict:  # fmt: skip
    """Daraja's B2C result (fixtures/mpesa) about `payout`: paid, failed with `code`, or its queue timeout (1)."""
    body = mpesa.fixture(
        {0: "b2c_result_success.json", 1: "b2c_queue_timeout.json"}.get(code, "b2c_result_failed_2001.json")
    )
    result = body["Result"]
    result.update(ResultCode=code, ConversationID=conversation_id,
                  OriginatorConversationID=payout.reference if originator is None else originator)  # fmt: skip
    result["ResultDesc"] = desc or result["ResultDesc"]
    if code == 0:
        result["ResultParameters"]["ResultParameter"][0]["Value"] = int(payout.amount)  # TransactionAmount
    return body


def reversal_result(code: int | str = 0, desc: str = "", conversation_id: str = MpesaReversal.conversation_id) -> dict:
    """Daraja's reversal result (fixtures/mpesa): it reverses TL4RCPT001 (KES 1 000); done, or failed with `code`."""
    body = mpesa.fixture("reversal_result_success.json")
    body["Result"].update(ResultCode=code, ConversationID=conversation_id)
    body["Result"]["ResultDesc"] = desc or body["Result"]["ResultDesc"]
    return body


def request_accepted(conversation_id: str = MpesaReversal.conversation_id) -> dict:
    """Daraja's answer to a B2C or reversal request: accepted, under `conversation_id`."""
    return {"OriginatorConversationID": "f1e2-4b95-a71d", "ConversationID": conversation_id, "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully."}  # fmt: skip


class MtnTransfer(MoneyOut):
    code = "mtn"
    kind = "payout"
    callback = "callback_transfer_successful.json"
    another_amount = "150001"
    ack = Mtn.ack
    methods = Mtn.methods
    status_url = f"{mtn.TRANSFER_URL}/{mtn.PAYOUT_REFERENCE_ID}"
    result_path = "/webhooks/mtn/disbursement/"
    receipt = "363440463"
    paid = ("transfer_status_successful.json", {})
    unsure = ["transfer_status_pending.json", "transfer_status_failed.json"]
    malformed = {"no-ids": mtn.raw_fixture("callback_transfer_malformed_no_ids.json"), "not-json": b"not json"}
    config, site_url, token_urls = Mtn.config, Mtn.site_url, Mtn.token_urls

    def subject(self):
        return sent_payout(
            provider="mtn", reference=mtn.PAYOUT_REFERENCE, msisdn="46733123470", amount=Decimal("150000"),
            currency="EUR", provider_reference=mtn.PAYOUT_REFERENCE_ID,  # our X-Reference-Id of the transfer
        )  # fmt: skip

    def success_body(self, subject):
        return self.fixture(self.callback)

    def forged_url(self):
        return f"{self.result_path}not-a-token-of-ours/"

    def other_amount(self, subject):
        self.answer(self.paid[0], amount=self.another_amount)
        return self.success_body(subject) | {"amount": self.another_amount}


class MtnRefund(MtnTransfer):
    kind = "refund"
    callback = "callback_refund_successful.json"
    another_amount = "25000"
    status_url = f"{mtn.REFUND_URL}/{mtn.REFUND_REFERENCE_ID}"
    result_path = "/webhooks/mtn/refund/"
    receipt = "588874327"  # MTN's financialTransactionId
    paid = ("refund_status_successful.json", {})
    unsure = ["refund_status_pending.json", "refund_status_failed.json"]
    malformed = {"not-json": b"not json", "array": b"[]"}
    other_amount = MtnTransfer.other_amount

    def subject(self):
        return sent_refund(
            provider="mtn", paid=Mtn.amount, amount=Decimal("20000"), currency="EUR",
            payment_fields={"provider_reference": mtn.X_REFERENCE_ID, "receipt": "1574559373"},
            reference=mtn.REFUND_REFERENCE, provider_reference=mtn.REFUND_REFERENCE_ID,
        )  # fmt: skip


class AirtelDisbursement(MoneyOut):
    code = "airtel"
    kind = "payout"
    ack = Airtel.ack
    status_url = airtel.DISBURSEMENT_ENQUIRY_URL
    result_path = "/webhooks/airtel/disbursement/"
    receipt = "partner-ABCD07026984141"
    paid = ("disbursement_enquiry_success.json", {})
    unsure = ["disbursement_enquiry_in_progress.json", "disbursement_enquiry_failed.json"]
    config, site_url, token_urls = Airtel.config, Airtel.site_url, Airtel.token_urls

    def subject(self):
        """Accepted by Airtel as processing: its transaction id is the payout's id in Airtel's alphabet."""
        return sent_payout(
            provider="airtel", reference=airtel.PAYOUT_REFERENCE, msisdn="256700160185", amount=Decimal("1000"),
            currency="UGX", provider_reference=airtel.PAYOUT_ID,
        )  # fmt: skip

    def success_body(self, subject, *, secret: str | None = airtel.SECRET):
        body = self.fixture("callback_disbursement_success.json")
        body["data"]["transaction"]["id"] = airtel.PAYOUT_ID
        if secret is not None:
            body["hash"] = airtel_hash(secret, body["data"]["transaction"])
        return body

    def forged_url(self):
        return self.result_path

    def forged_body(self, subject):
        return self.success_body(subject, secret=None)


def _signed_disbursement(name: str) -> bytes:
    body = airtel.fixture(name)
    return encode(body | {"hash": airtel_hash(airtel.SECRET, body["data"]["transaction"])})


AirtelDisbursement.malformed = {
    "no-id": _signed_disbursement("callback_disbursement_malformed.json"),
    "not-json": b"not json",
}

MONEY_OUT: dict[str, type[MoneyOut]] = {
    "mpesa-b2c": MpesaB2C,
    "mpesa-reversal": MpesaReversal,
    "mtn-transfer": MtnTransfer,
    "mtn-refund": MtnRefund,
    "airtel-disbursement": AirtelDisbursement,
}


# --- money out by kind: the maker-checker rules payouts and refunds share (services/test_money_out.py) ----------


class PayoutKind:
    """Payouts as those rules see them: an M-Pesa B2C payout of KES 1 000 from a patient's 50 000 received."""

    model: type[Payout] | type[Refund] = Payout
    received, amount = Decimal("50000"), Decimal("1000")
    send_url = mpesa.B2C_URL
    result_path, timeout_path = MpesaB2C.result_path, MpesaB2C.timeout_path
    conversation_id, receipt = MpesaB2C.conversation_id, MpesaB2C.receipt
    codes: ClassVar[dict[str, int | str]] = {"paid": 0, "failed": 2001, "queue-timeout": 1}

    def __init__(self, daraja: responses.RequestsMock, maker, checker) -> None:
        self.daraja, self.maker, self.checker = daraja, maker, checker
        self.name = self.model._meta.model_name
        self.patient = self.funded()

    def funded(self) -> Patient:
        return funded_patient(provider="mpesa", msisdn="254708374149", amount=self.received, currency="KES")

    def request(self, by=None):
        return payout_request(patient=self.patient, amount=self.amount, requested_by=by or self.maker)

    def approve(self, obj, by=None):
        return payout_approve(payout_id=obj.pk, approved_by=by or self.checker)

    def resolve(self, obj, done: bool, by=None, receipt: str = ""):
        return payout_resolve(payout_id=obj.pk, paid=done, resolved_by=by or self.checker, receipt=receipt)

    def cancel(self, obj):
        return payout_cancel(payout_id=obj.pk, cancelled_by=self.checker)

    def result(self, obj, says: str, desc: str = "") -> dict:
        return b2c_result(obj, int(self.codes[says]), desc)

    def recorded(self, says: str, desc: str) -> tuple[str, str]:
        """The result_code and result_desc such a result leaves."""
        return str(self.codes[says]), desc

    def moved(self, obj) -> bool:
        """Whether the money's move is on the books: the patient is in treatment."""
        self.patient.refresh_from_db()
        return self.patient.status == Patient.Status.IN_TREATMENT

    def available(self) -> Decimal:
        self.patient.refresh_from_db()
        return funds_available(self.patient)

    def answers(self, **answer: Any) -> None:
        """Daraja's answer to the next send (replacing any earlier one): accepted unless `answer`."""
        self.daraja.remove(responses.POST, self.send_url)
        self.daraja.add(responses.POST, self.send_url, **(answer or {"json": request_accepted(self.conversation_id)}))

    def sends(self) -> int:
        return sum(c.request.url == self.send_url for c in self.daraja.calls)

    def brought_to(self, status: str):
        """One in `status` the way it happens (sending: its sender died; ambiguous: the send timed out)."""
        obj = self.request()
        if status == "cancelled":
            return self.cancel(obj)
        if status == "sending":
            self.model.objects.filter(pk=obj.pk).update(status=status, approved_by=self.checker, approved_at=now())
        elif status != "requested":
            failures = {"ambiguous": requests.ReadTimeout("slow"), "failed": requests.ConnectTimeout("no route")}
            self.answers(**({"body": failures[status]} if status in failures else {}))
            obj = self.approve(obj)
        obj.refresh_from_db()
        assert obj.status == status
        return obj


class RefundKind(PayoutKind):
    """Refunds: the M-Pesa reversal of a whole KES 1 000 payment."""

    model = Refund
    received = amount = Decimal("1000")
    send_url = f"{mpesa.API}/mpesa/reversal/v1/request"
    result_path, timeout_path = MpesaReversal.result_path, MpesaReversal.timeout_path
    conversation_id, receipt = MpesaReversal.conversation_id, MpesaReversal.receipt
    codes = {"paid": 0, "failed": "R000002", "queue-timeout": 1}

    def funded(self) -> Patient:
        self.donation = paid_donation()
        return self.donation.patient

    def request(self, by=None):
        return refund_request(donation=self.donation, amount=self.amount, reason="", requested_by=by or self.maker)

    def approve(self, obj, by=None):
        return refund_approve(refund_id=obj.pk, approved_by=by or self.checker)

    def resolve(self, obj, done: bool, by=None, receipt: str = ""):
        return refund_resolve(refund_id=obj.pk, refunded=done, resolved_by=by or self.checker, receipt=receipt)

    def cancel(self, obj):
        return refund_cancel(refund_id=obj.pk, cancelled_by=self.checker)

    def result(self, obj, says: str, desc: str = "") -> dict:
        return reversal_result(self.codes[says], desc)

    def recorded(self, says: str, desc: str) -> tuple[str, str]:
        return "", f"{desc} (M-Pesa {self.codes[says]})"

    def moved(self, obj) -> bool:
        """Whether the ledger holds its reversal (once), the patient credited the rest."""
        rows = reversals(obj)
        assert rows in ([], [-obj.amount]) and credited(self.patient) == self.received + sum(rows)
        return bool(rows)


KINDS = {"payout": PayoutKind, "refund": RefundKind}
