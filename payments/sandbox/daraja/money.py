"""Daraja's money movements beside STK: C2B paybill (register URLs, simulate, validation then confirmation),
B2C payouts and Transaction Reversal, each answered at once and settled by a callback built in bodies.py.

B2C payouts (`/mpesa/b2c/v3/paymentrequest`) answer with the `{"Result": {...}}` envelope at the ResultURL; by
the receiving number's last two digits: 01 → ResultCode 1 (insufficient balance), 03 → a queue-timeout callback
first and the success result later, 04 → the result three times, 05 → no callback; anything else succeeds.
A mixin of DarajaSimulator (simulator.py), apart so each file holds one job.
"""

import hmac
import json
import re
import secrets
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from payments.sandbox.daraja import bodies
from payments.sandbox.daraja.checks import MSISDN_RE, DarajaError, json_object, msisdn_field, whole_amount
from payments.sandbox.outcomes import DECISION_SECONDS, Result
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge

PROVIDER = "mpesa"
# Daraja refuses C2B URLs containing these words, in any case (docs/providers/mpesa.md). Kept here, not
# imported from the site's adapter: the simulator plays Safaricom and shares no code with its client.
C2B_FORBIDDEN_URL_WORDS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")


class DarajaMoneyRoutes:
    """C2B, B2C and reversal endpoints; the simulator's store, dispatcher and credentials come from DarajaSimulator."""

    store: Any
    dispatcher: Any
    initiator_name: str
    security_credential: str
    b2c_shortcode: str
    c2b_shortcode: str
    c2b_urls: dict[str, dict[str, str]]

    def _authorize(self, request: SandboxRequest) -> None:
        raise NotImplementedError

    # --- C2B paybill -----------------------------------------------------------------------------------------

    def c2b_register(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        if shortcode != self.c2b_shortcode:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode")
        if data.get("ResponseType") not in ("Completed", "Cancelled"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ResponseType")
        urls = {}
        for key in ("ConfirmationURL", "ValidationURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            if any(word in value.lower() for word in C2B_FORBIDDEN_URL_WORDS):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            self.c2b_urls[shortcode] = {**urls, "ResponseType": data["ResponseType"]}
        return json_response(
            200,
            {
                "OriginatorCoversationID": bodies.new_conversation_id(),
                "ResponseCode": "0",
                "ResponseDescription": "Success",
            },
        )

    def c2b_simulate(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        registered = self.c2b_urls.get(shortcode)
        if registered is None:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode (no URLs registered)")
        if data.get("CommandID") not in ("CustomerPayBillOnline", "CustomerBuyGoodsOnline"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        amount = whole_amount(data.get("Amount"))
        msisdn = str(data.get("Msisdn") or "")
        if not MSISDN_RE.fullmatch(msisdn):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Msisdn")
        bill_ref = str(data.get("BillRefNumber") or "")[:20]
        trans_id = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(10))
        charge = Charge(
            provider=PROVIDER,
            transaction_id=trans_id,
            external_id=bill_ref,
            msisdn=msisdn,
            amount=str(amount),
            currency="KES",
            channel="c2b",
            outcome=None,
            extra={"kind": "c2b", "shortcode": shortcode, **registered},
        )
        self.store.add_charge(charge)
        body = bodies.c2b_body(
            trans_id=trans_id,
            amount=amount,
            shortcode=shortcode,
            bill_ref=bill_ref,
            msisdn=msisdn,
            paybill=data["CommandID"] == "CustomerPayBillOnline",
        )
        self.dispatcher.call_later(DECISION_SECONDS, partial(self._c2b_deliver, charge, body))
        return json_response(
            200,
            {
                "OriginatorCoversationID": bodies.new_conversation_id(),
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def _c2b_deliver(self, charge: Charge, body: dict[str, Any]) -> None:
        """Validation first; confirmation when it accepts (or is unreachable and ResponseType is Completed)."""
        validation = self.dispatcher.post(
            charge, charge.extra["ValidationURL"], json.dumps(body).encode(), label="c2b_validation"
        )
        try:
            accepted = str(json.loads(validation.response).get("ResultCode")) == "0"
        except (ValueError, AttributeError):
            accepted = None
        if accepted is None:
            accepted = validation.http_status is None and charge.extra["ResponseType"] == "Completed"
        with self.store.lock:
            charge.extra["validation_accepted"] = accepted
        if not accepted:
            return
        confirmation = {**body, "OrgAccountBalance": "49197.00"}
        self.dispatcher.post(
            charge, charge.extra["ConfirmationURL"], json.dumps(confirmation).encode(), label="c2b_confirmation"
        )

    # --- B2C payouts -----------------------------------------------------------------------------------------

    def b2c_payment(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        originator = data.get("OriginatorConversationID")
        if not isinstance(originator, str) or not originator.strip():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid OriginatorConversationID")
        if data.get("InitiatorName") != self.initiator_name or not hmac.compare_digest(
            str(data.get("SecurityCredential") or "").encode(), self.security_credential.encode()
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Initiator")
        if data.get("CommandID") not in ("BusinessPayment", "SalaryPayment", "PromotionPayment"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        amount = whole_amount(data.get("Amount"))
        if str(data.get("PartyA") or "") != self.b2c_shortcode:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PartyA")
        phone = msisdn_field(data, "PartyB")
        remarks = data.get("Remarks")
        if not isinstance(remarks, str) or not 2 <= len(remarks) <= 100:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Remarks")
        urls = {}
        for key in ("ResultURL", "QueueTimeOutURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            if any(
                c.extra.get("kind") == "b2c" and c.external_id == originator
                for c in self.store.find_charges(provider=PROVIDER)
            ):
                raise DarajaError(500, "500.002.1001", "Duplicate OriginatorConversationID.")
            conversation_id = f"AG_{datetime.now(bodies.NAIROBI):%Y%m%d}_{secrets.token_hex(10)}"
            charge = Charge(
                provider=PROVIDER,
                transaction_id=conversation_id,
                external_id=originator,
                msisdn=phone,
                amount=str(amount),
                currency="KES",
                channel="b2c",
                outcome=None,
                extra={"kind": "b2c", "receipt": bodies.new_receipt(), **urls},
            )
            self.store.add_charge(charge)
        suffix = phone[-2:]
        if suffix == "03":
            self.dispatcher.call_later(DECISION_SECONDS, partial(self._b2c_deliver, charge, "timeout", 1))
            self.dispatcher.call_later(3 * DECISION_SECONDS, partial(self._b2c_deliver, charge, "success", 1))
        elif suffix != "05":
            label = "insufficient_funds" if suffix == "01" else "success"
            copies = 3 if suffix == "04" else 1
            self.dispatcher.call_later(DECISION_SECONDS, partial(self._b2c_deliver, charge, label, copies))
        return json_response(
            200,
            {
                "ConversationID": conversation_id,
                "OriginatorConversationID": originator,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def b2c_result_body(self, charge: Charge, label: str) -> dict[str, Any]:
        return bodies.b2c_result(
            originator_conversation_id=charge.external_id,
            conversation_id=charge.transaction_id,
            receipt=charge.extra["receipt"],
            label=label,
            amount=int(charge.amount),
            receiver=f"{charge.msisdn} - TREATMENT PARTNER",
        )

    def _b2c_deliver(self, charge: Charge, label: str, copies: int) -> None:
        body = json.dumps(self.b2c_result_body(charge, label)).encode()
        url = charge.extra["QueueTimeOutURL" if label == "timeout" else "ResultURL"]
        if copies > 1:
            self.dispatcher.post_burst(charge, url, body, label=f"b2c_{label}", copies=copies)
        else:
            self.dispatcher.post(charge, url, body, label=f"b2c_{label}")

    def reversal(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        """Transaction Reversal: accepted at once; the result (reversed, already reversed, or no such
        transaction) arrives at the ResultURL, as Daraja's does."""
        self._authorize(request)
        data = json_object(request)
        if data.get("Initiator") != self.initiator_name or not hmac.compare_digest(
            str(data.get("SecurityCredential") or "").encode(), self.security_credential.encode()
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Initiator")
        if data.get("CommandID") != "TransactionReversal":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        if str(data.get("RecieverIdentifierType") or "") != "11":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid RecieverIdentifierType")
        receipt = str(data.get("TransactionID") or "")
        amount = whole_amount(data.get("Amount"))
        urls = {}
        for key in ("ResultURL", "QueueTimeOutURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
            urls[key] = value
        with self.store.lock:
            original = next(
                (
                    c
                    for c in self.store.find_charges(provider=PROVIDER)
                    if c.extra.get("receipt") == receipt and c.extra.get("kind") != "reversal"
                ),
                None,
            )
            earlier = [
                c
                for c in self.store.find_charges(provider=PROVIDER)
                if c.extra.get("kind") == "reversal" and c.extra.get("original") == receipt
            ]
            if original is None or (original.outcome is not None and original.outcome.result != Result.SUCCESS):
                code = "R000002"
            elif earlier:
                code = "R000001"
            elif str(amount) != str(int(float(original.amount))):
                code = "R000002"
            else:
                code = "0"
            conversation_id = f"AG_{datetime.now(bodies.NAIROBI):%Y%m%d}_{secrets.token_hex(10)}"
            charge = Charge(
                provider=PROVIDER,
                transaction_id=conversation_id,
                external_id=receipt,
                msisdn=original.msisdn if original else "",
                amount=str(amount),
                currency="KES",
                channel="reversal",
                outcome=None,
                extra={"kind": "reversal", "original": receipt, "code": code, "receipt": bodies.new_receipt(), **urls},
            )
            self.store.add_charge(charge)
        self.dispatcher.call_later(DECISION_SECONDS, partial(self._reversal_deliver, charge))
        return json_response(
            200,
            {
                "OriginatorConversationID": bodies.new_conversation_id(),
                "ConversationID": conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def _reversal_deliver(self, charge: Charge) -> None:
        body = bodies.reversal_result(
            code=charge.extra["code"],
            conversation_id=charge.transaction_id,
            receipt=charge.extra["receipt"],
            original=charge.external_id,
            amount=int(charge.amount),
        )
        self.dispatcher.post(
            charge, charge.extra["ResultURL"], json.dumps(body).encode(), label=f"reversal_{charge.extra['code']}"
        )
