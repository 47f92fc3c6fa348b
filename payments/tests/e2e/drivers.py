"""One end-to-end driver per provider for the shared suite (test_pipeline.py): the live site, the provider's
simulator in the running sandbox, real HTTP between them.

A driver knows only its provider's facts: how its sandbox is started and the site pointed at it, how a donor
donates with it, how its simulator knows a charge, which phone numbers give which outcome (the last two digits,
payments/sandbox/outcomes.py), the words of its reasons, where its callbacks come to and what it answers them,
how a forged or an unconfirmed callback of its own looks, and how its payouts and refunds go. The behaviours every
provider must show end to end are written once, in test_pipeline.py, against this interface; what is a
provider's own stays in its file (test_<code>.py).

Adding a provider: one `E2eDriver` subclass here, in `DRIVERS`; the suite fails while a registered provider has
none.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from django.core.cache import cache

from payments.models import Payout
from payments.providers.airtel.client import airtel_id
from payments.providers.airtel.config import CONFIG as AIRTEL_CONFIG
from payments.providers.azampay.config import CONFIG as AZAMPAY_CONFIG
from payments.providers.mpesa.config import CONFIG as MPESA_CONFIG
from payments.providers.mpesa.stk import account_reference
from payments.providers.mtn.config import CONFIG as MTN_CONFIG
from payments.sandbox.airtel import callback_hash
from payments.sandbox.daraja import build_stk_callback
from payments.sandbox.server import run_sandbox
from payments.tests.azampay_fakes import CALLBACK_URL as AZAMPAY_CALLBACK_PATH
from payments.tests.azampay_fakes import PASSWORD as AZAMPAY_PASSWORD
from payments.tests.e2e.support import donate_via_api, sandbox_charge, wait_for_deliveries

TIME_SCALE = 0.1  # every simulator runs ten times faster than real time
Request = tuple[str, str, bytes]  # (HTTP method, path on the site, body)


@dataclass(frozen=True)
class PayoutCase:
    msisdn: str  # the treatment partner's wallet: its last two digits choose the outcome
    approved: tuple[str, ...]  # the payout's status right after the checker's approval
    via: str  # how it ends paid: "answer" (the request's own answer), "callback", or "reconcile" (a status query)
    first: str = ""  # a status it passes through before it is paid


@dataclass(frozen=True)
class RefundCase:
    amount: str  # what is refunded of the donation
    at_once: bool  # the provider's answer to the request is the result (no callback)
    callback_path: str = ""  # where its result callback comes to, when it sends one
    whole_only: str = ""  # the refusal of a partial refund, when it refunds whole payments only


class E2eDriver:
    code: ClassVar[str]
    patient: ClassVar[str]
    currency: ClassVar[str]
    country: ClassVar[str]
    amount: ClassVar[str] = "5000"
    goal: ClassVar[Decimal] = Decimal("10000000")
    phone_prefix: ClassVar[str]  # a local number but for its last two digits, which choose the outcome
    donor_name: ClassVar[str] = "Nakato"
    donation_fields: ClassVar[dict[str, str]] = {}
    ack: ClassVar[dict]  # what the site answers the provider's callbacks
    callback_path: ClassVar[str]  # where the simulator's payment callbacks come to
    callback_token: ClassVar[bool] = True  # the callback URL ends in the payment's secret token
    counts_queries: ClassVar[bool] = True  # its simulator counts the status queries (charge extra "queries")
    trust: ClassVar[str] = "unverified"  # the trust of its payment callbacks (confirmed by the status query)
    event_kind: ClassVar[str] = ""  # the kind of its payment callback events ("": not checked)
    never_stored: ClassVar[tuple[str, ...]] = ()  # body keys of its callbacks the site never keeps
    reference_prefix: ClassVar[str] = ""  # how the payment's provider reference begins
    reference_is_transaction: ClassVar[bool] = True  # the donor's "transactionId" is the provider reference
    charge_extra: ClassVar[dict[str, str]] = {}  # what its simulator's charge of a donation records besides
    receipt_key: ClassVar[tuple[str, ...]]  # where its receipt is in the simulator's charge
    receipt_by_query: ClassVar[bool] = True  # its status query tells the receipt (else only its callback does)
    # (words of the donor's reason, the provider's code kept in the payment's failure reason)
    insufficient: ClassVar[tuple[str, str]]
    cancelled: ClassVar[str]  # in the payment's failure reason
    expires_by: ClassVar[str] = "refresh"  # "refresh": the donor's page asks; "reconcile": the sweeper asks
    expired: ClassVar[str]  # in the payment's failure reason
    health_name: ClassVar[str]
    forged: ClassVar[dict[str, Any]] = {}  # case → what `forged_request` makes of it: refused with 401
    unconfirmed: ClassVar[dict[str, Any]] = {}  # case → a success the status query does not confirm
    payouts: ClassVar[dict[str, PayoutCase]] = {}
    payout_channel: ClassVar[str] = ""
    payout_key: ClassVar[str] = "transactionId"  # the field of the simulator's transfer the payout knows it by
    payout_callback_path: ClassVar[str] = ""  # where a payout's result callback comes to ("": not checked)
    refunds: ClassVar[dict[str, RefundCase]] = {}

    # --- its sandbox --------------------------------------------------------------------------------------

    def config(self, server) -> dict[str, Any]:
        """The provider's settings over the test defaults, pointed at the running sandbox."""
        raise NotImplementedError

    def configure(self, settings, server) -> None:
        providers = settings.PAYMENT_PROVIDERS
        settings.PAYMENT_PROVIDERS = {**providers, self.code: {**providers[self.code], **self.config(server)}}

    def start(self, live_server, settings, time_scale: float):
        return run_sandbox(port=0, callback_url=live_server.url + "/unused/", time_scale=time_scale)

    @contextmanager
    def running(self, live_server, settings, time_scale: float = TIME_SCALE) -> Iterator[Any]:
        cache.clear()  # tokens, keys and rate-limit counters of an earlier test
        server = self.start(live_server, settings, time_scale)
        self.configure(settings, server)
        settings.SITE_URL = live_server.url
        try:
            yield server
        finally:
            server.shutdown()
            cache.clear()

    # --- donating -----------------------------------------------------------------------------------------

    def phone(self, outcome: str) -> str:
        return self.phone_prefix + outcome

    def donate(
        self, live_server, outcome: str = "00", *, phone: str | None = None, amount: str = "", **fields: Any
    ) -> dict:
        return donate_via_api(
            live_server,
            patient=self.patient,
            amount=amount or self.amount,
            currency=self.currency,
            provider=self.code,
            phone_number=self.phone(outcome) if phone is None else phone,
            name=self.donor_name,
            **{**self.donation_fields, **fields},
        )

    def msisdn(self, phone: str) -> str:
        """The payer's number as the provider's requests carry it."""
        raise NotImplementedError

    def external_id(self, reference: str) -> str:
        """Our reference as the provider knows it."""
        return reference

    def charge_reference(self, reference: str) -> str:
        """Our reference as the provider's charge of a donation carries it."""
        return self.external_id(reference)

    def payout_msisdn(self, msisdn: str) -> str:
        """A treatment partner's wallet as the provider's transfer carries it."""
        return msisdn

    # --- the simulator's records ----------------------------------------------------------------------------

    def match(self, created: dict) -> dict[str, str]:
        """The fields the simulator's charge of a donation is found by."""
        return {"transactionId": created["payment"]["provider_reference"]}

    def charge(self, sandbox, created: dict) -> dict:
        return sandbox_charge(sandbox, self.code, **self.match(created))

    def deliveries(self, sandbox, created: dict, count: int, seconds: float = 15) -> list[dict]:
        return wait_for_deliveries(sandbox, self.code, count, seconds=seconds, **self.match(created))

    def decided(self, sandbox, created: dict) -> bool:
        return self.charge(sandbox, created)["status"] != "pending"

    def receipt(self, charge: dict) -> str:
        value: Any = charge
        for key in self.receipt_key:
            value = value[key]
        return value

    def payout_receipts(self, charge: dict) -> tuple[str, ...]:
        """What a paid payout's receipt may be: the ids the simulator gave the transfer."""
        raise NotImplementedError

    def refund_target(self, simulated: dict, payment) -> tuple[str, str]:
        """(what the refund request named, what it should name): the payment it refunds."""
        raise NotImplementedError

    # --- callbacks of our own ---------------------------------------------------------------------------------

    def forged_request(self, created: dict, case: Any) -> Request:
        raise NotImplementedError

    def unconfirmed_request(self, created: dict, case: Any) -> Request:
        raise NotImplementedError


class Airtel(E2eDriver):
    """Airtel Money in Uganda: one callback URL set on Airtel's portal, each callback signed with a `hash` of
    AIRTEL_CALLBACK_SECRET (set on both sides); the transaction enquiry decides; payouts and refunds answered
    synchronously."""

    code = "airtel"
    patient = "PAT-UG-AIR"
    currency = "UGX"
    country = "UG"
    phone_prefix = "07521234"
    callback_secret = "e2e-airtel-callback-secret"  # AIRTEL_CALLBACK_SECRET, the same on Airtel's side
    ack = {"status": {"code": "200", "message": "Callback received successfully", "success": True}}
    callback_path = "/webhooks/airtel/payment/"
    callback_token = False
    event_kind = "payment"
    never_stored = ("hash",)  # keyed with our secret
    receipt_key = ("transactionId",)  # Airtel's airtel_money_id
    reference_is_transaction = False  # the donor's "transactionId" is its airtel_money_id too
    insufficient = ("not enough balance", "DP00800001007")
    cancelled = "cancelled"
    expires_by = "reconcile"  # Airtel says TIP/TA while the prompt is open, then TF
    expired = "DP00800001024"
    health_name = "airtel_money"
    forged = {"wrong-hash": "not-our-secret", "no-hash": None}
    unconfirmed = {"signed": callback_secret}  # even with our hash, only a reason to ask
    payouts = {
        "paid-at-once": PayoutCase("256752123400", (Payout.Status.PAID,), "answer"),
        "ambiguous-then-paid": PayoutCase("256752123403", (Payout.Status.AMBIGUOUS,), "reconcile"),
        "processing-then-paid": PayoutCase("256752123406", (Payout.Status.SENT,), "reconcile"),
    }
    payout_channel = "disbursement"
    payout_key = "externalId"  # our id in Airtel's alphabet
    refunds = {"full": RefundCase("5000", at_once=True, whole_only="whole payment only")}

    def start(self, live_server, settings, time_scale: float):
        # The simulator signs its callbacks with the site's AIRTEL_CALLBACK_SECRET, read when it starts.
        self.configure(settings, None)
        return super().start(live_server, settings, time_scale)

    def config(self, server) -> dict[str, Any]:
        return {
            **AIRTEL_CONFIG.sandbox_credentials(),
            "country": self.country,
            "currency": self.currency,
            "callback_secret": self.callback_secret,
            **({"api_url": f"{server.base_url}/airtel"} if server else {}),
        }

    def msisdn(self, phone: str) -> str:
        return phone.removeprefix("0")

    def external_id(self, reference: str) -> str:
        return airtel_id(reference)  # our id in Airtel's alphabet

    def payout_msisdn(self, msisdn: str) -> str:
        return msisdn.removeprefix("256")

    def match(self, created: dict) -> dict[str, str]:
        return {"externalId": airtel_id(created["reference"]), "channel": "ussd_push"}

    def payout_receipts(self, charge: dict) -> tuple[str, ...]:
        return (charge["transactionId"], charge["extra"]["reference_id"])

    def refund_target(self, simulated: dict, payment) -> tuple[str, str]:
        return simulated["externalId"], payment.receipt  # refunded by the payment's airtel_money_id

    def paid_callback(self, created: dict, secret: str | None, money_id: str = "MP261202.1200.X00001") -> bytes:
        """Airtel's collection callback saying TS for the donation, with the hash of `secret` (None: no hash)."""
        transaction = {
            "id": airtel_id(created["reference"]),
            "message": f"Paid UGX 5,000 to DONATION PORTAL Charge UGX 0, Trans ID {money_id}.",
            "status_code": "TS",
            "airtel_money_id": money_id,
        }
        body: dict = {"transaction": transaction}
        if secret is not None:
            body["hash"] = callback_hash(secret, transaction)
        return json.dumps(body).encode()

    def forged_request(self, created: dict, case: Any) -> Request:
        return "post", self.callback_path, self.paid_callback(created, case)

    def unconfirmed_request(self, created: dict, case: Any) -> Request:
        return "post", self.callback_path, self.paid_callback(created, case)


class AzamPay(E2eDriver):
    """AzamPay in Tanzania: one callback URL set on AzamPay's dashboard, its callbacks carrying the callback
    password (trusted: credited on their word)."""

    code = "azampay"
    patient = "PAT-0001"
    currency = "TZS"
    country = "TZ"
    phone_prefix = "07123456"
    donor_name = "Asha"
    donation_fields = {"channel": "Mpesa"}
    ack: ClassVar[dict] = {"success": True, "message": "Callback received"}
    callback_path = AZAMPAY_CALLBACK_PATH
    callback_token = False
    counts_queries = False
    trust = "trusted"
    receipt_key = ("extra", "mnoreference")
    insufficient = ("insufficient", "")
    cancelled = ""
    expired = ""
    health_name = "azampay"

    def start(self, live_server, settings, time_scale: float):
        return run_sandbox(port=0, callback_url=live_server.url + AZAMPAY_CALLBACK_PATH, time_scale=time_scale)

    def config(self, server) -> dict[str, Any]:
        return {
            **AZAMPAY_CONFIG.sandbox_credentials(),
            "auth_url": f"{server.base_url}/azampay-auth",
            "api_url": f"{server.base_url}/azampay",
            "callback_password": AZAMPAY_PASSWORD,  # the test settings', not the sandbox credentials'
        }

    def msisdn(self, phone: str) -> str:
        return "255" + phone.removeprefix("0")

    def match(self, created: dict) -> dict[str, str]:
        return {"externalId": created["reference"]}


class Mpesa(E2eDriver):
    """M-Pesa in Kenya (Daraja): each STK callback to the payment's own secret URL, confirmed by the STK Push
    Query; payouts (B2C) end with their result callbacks."""

    code = "mpesa"
    patient = "PAT-KE-01"
    currency = "KES"
    country = "KE"
    amount = "1000"
    goal = Decimal("1000000")
    phone_prefix = "07123456"
    donor_name = "Wanjiku"
    ack = {"ResultCode": 0, "ResultDesc": "Accepted"}
    callback_path = "/webhooks/mpesa/stkpush/"
    reference_prefix = "ws_CO_"  # Daraja's CheckoutRequestID
    receipt_key = ("extra", "receipt")
    receipt_by_query = False  # the STK Push Query has no MpesaReceiptNumber
    insufficient = ("insufficient", "(M-Pesa 1)")
    cancelled = "1032"
    expired = "1037"
    health_name = "mpesa"
    forged = {"wrong-token": "/webhooks/mpesa/stkpush/not-the-token/"}
    unconfirmed = {
        path.strip("/").replace("/", "_") + ("-slash" if path.endswith("/") else ""): path
        for path in (
            "/webhooks/mpesa/stkpush/",
            "/webhooks/mpesa/stkpush",
            "/api/v1/payments/mpesa/callback",
            "/mpesa/callback/",
        )
    }
    payouts = {
        "paid": PayoutCase("254708374149", (Payout.Status.SENT,), "callback"),
        "ambiguous-then-paid": PayoutCase("254708374103", (Payout.Status.SENT,), "callback", Payout.Status.AMBIGUOUS),
    }
    payout_channel = "b2c"

    def config(self, server) -> dict[str, Any]:
        return {
            **MPESA_CONFIG.sandbox_credentials(),
            "api_url": f"{server.base_url}/daraja",
            "callback_url": "",
            "trust_callbacks": False,
            "allowed_ips": [],
            "ip_allowlist_strict": False,
        }

    def msisdn(self, phone: str) -> str:
        return "254" + phone.removeprefix("0")

    def charge_reference(self, reference: str) -> str:
        return account_reference(reference)  # ≤ 12 characters shown on the payer's phone

    def payout_receipts(self, charge: dict) -> tuple[str, ...]:
        return (charge["transactionId"], *charge["extra"].values())

    def success_body(self, created: dict) -> bytes:
        return json.dumps(
            build_stk_callback(
                merchant_request_id="1234-5678-1",
                checkout_request_id=created["payment"]["provider_reference"],
                result_code=0,
                result_desc="The service request is processed successfully.",
                amount=int(self.amount),
                receipt="FORGED0001",
                phone=self.msisdn(self.phone("03")),
                transaction_date="20260101120000",
            )
        ).encode()

    def forged_request(self, created: dict, case: Any) -> Request:
        return "post", case, self.success_body(created)

    def unconfirmed_request(self, created: dict, case: Any) -> Request:
        return "post", case, self.success_body(created)


class Mtn(E2eDriver):
    """MTN MoMo in Uganda (environment `mtnuganda`): callbacks PUT to each request's X-Callback-Url with the
    payment's secret, nothing signed, every one confirmed by the status GET."""

    code = "mtn"
    patient = "PAT-UG-MTN"
    currency = "UGX"
    country = "UG"
    environment = "mtnuganda"  # the simulator's Uganda: UGX (its "sandbox" environment takes EUR only)
    phone_prefix = "07721234"
    ack = {"status": "accepted", "message": "Callback received"}
    callback_path = "/webhooks/mtn/collection/"
    event_kind = "collection"
    charge_extra = {"target_environment": environment}
    receipt_key = ("extra", "financialTransactionId")
    insufficient = ("not enough money", "NOT_ENOUGH_FUNDS")
    cancelled = "APPROVAL_REJECTED"
    expired = "EXPIRED"
    health_name = "mtn_mobile_money"
    forged = {"wrong-token": "/webhooks/mtn/collection/not-the-token/"}
    unconfirmed = {"collection-slash": "/webhooks/mtn/collection/", "collection": "/webhooks/mtn/collection"}
    payouts = {
        "result-callback": PayoutCase("256772123400", (Payout.Status.SENT, Payout.Status.PAID), "callback"),
        "lost-callback-found-by-reconciliation": PayoutCase(
            "256772123405", (Payout.Status.SENT, Payout.Status.PAID), "reconcile"
        ),
    }
    payout_channel = "transfer"
    payout_callback_path = "/webhooks/mtn/disbursement/"
    refunds = {"partial": RefundCase("2000", at_once=False, callback_path="/webhooks/mtn/refund/")}

    def config(self, server) -> dict[str, Any]:
        return {
            **MTN_CONFIG.sandbox_credentials(),
            "api_url": f"{server.base_url}/mtn",
            "target_environment": self.environment,
            "currency": self.currency,
        }

    def msisdn(self, phone: str) -> str:
        return "256" + phone.removeprefix("0")

    def payout_receipts(self, charge: dict) -> tuple[str, ...]:
        return (charge["extra"]["financialTransactionId"],)

    def refund_target(self, simulated: dict, payment) -> tuple[str, str]:
        return simulated["extra"]["refund_of"], payment.provider_reference  # referenceIdToRefund

    def success_body(self, created: dict) -> bytes:
        return json.dumps(
            {
                "financialTransactionId": "999999999",
                "externalId": created["reference"],
                "amount": self.amount,
                "currency": self.currency,
                "payer": {"partyIdType": "MSISDN", "partyId": self.msisdn(self.phone("03"))},
                "payerMessage": "Donation",
                "payeeNote": "Donation",
                "status": "SUCCESSFUL",
            }
        ).encode()

    def forged_request(self, created: dict, case: Any) -> Request:
        return "put", case, self.success_body(created)

    def unconfirmed_request(self, created: dict, case: Any) -> Request:
        return "put", case, self.success_body(created)


DRIVERS: dict[str, E2eDriver] = {driver.code: driver for driver in (AzamPay(), Mpesa(), Mtn(), Airtel())}


def cases(attribute: str) -> list:
    """pytest params (driver code, case) of every driver's `attribute` (a dict: case name → case)."""
    import pytest

    return [
        pytest.param(code, case, id=f"{code}-{name}")
        for code, driver in DRIVERS.items()
        for name, case in getattr(driver, attribute).items()
    ]
