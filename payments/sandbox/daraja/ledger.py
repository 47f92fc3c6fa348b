"""Daraja's answers to the month close's questions (a mixin of DarajaSimulator): Account Balance (accepted,
its `{"Result": …}` with the `AccountBalance` text POSTed to the ResultURL later) and Pull Transactions
(register once, then offset pages of the C2B transactions this run received, `[[]]` when none). Shapes:
docs/providers/mpesa.md ("Account Balance", "Pull Transactions"). Figures come from what the run took in.
"""

import hmac
import json
import re
import uuid
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from payments.sandbox.base import Endpoint, endpoint
from payments.sandbox.daraja.bodies import NAIROBI, new_conversation_id
from payments.sandbox.daraja.checks import DarajaError, json_object
from payments.sandbox.ledger import received, wallet
from payments.sandbox.outcomes import DECISION_SECONDS
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge

PULL_PAGE = 20  # rows per page of the pull query: small, so clients meet the offset pagination


class DarajaLedgerRoutes:
    store: Any
    dispatcher: Any
    initiator_name: str
    security_credential: str
    c2b_shortcode: str

    def _authorize(self, request: SandboxRequest) -> None:
        raise NotImplementedError

    def ledger_endpoints(self) -> list[Endpoint]:
        self.pull_registered: set[str] = set()
        return [
            endpoint("POST", r"/mpesa/accountbalance/v1/query", self.account_balance),
            endpoint("POST", r"/pulltransactions/v1/register", self.pull_register),
            endpoint("GET,POST", r"/pulltransactions/v1/query", self.pull_query),
        ]

    def account_balance(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        if data.get("Initiator") != self.initiator_name or not hmac.compare_digest(
            str(data.get("SecurityCredential") or "").encode(), self.security_credential.encode()
        ):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Initiator")
        if data.get("CommandID") != "AccountBalance" or str(data.get("IdentifierType") or "") != "4":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        if str(data.get("PartyA") or "") != self.c2b_shortcode:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PartyA")
        for key in ("ResultURL", "QueueTimeOutURL"):
            value = data.get(key)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {key}")
        conversation = f"AG_{datetime.now(NAIROBI):%Y%m%d}_{uuid.uuid4().hex[:20]}"
        originator = new_conversation_id()
        charge = Charge("mpesa", conversation, originator, "", "0", "KES", "balance", None, extra={"kind": "balance"})
        self.store.add_charge(charge)
        self.dispatcher.call_later(DECISION_SECONDS, partial(self._balance_deliver, charge, str(data["ResultURL"])))
        return json_response(
            200,
            {
                "OriginatorConversationID": originator,
                "ConversationID": conversation,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully",
            },
        )

    def _balance_deliver(self, charge: Charge, url: str) -> None:
        utility = wallet(self.store, "mpesa")
        text = (
            f"Working Account|KES|0.00|0.00|0.00|0.00&Float Account|KES|0.00|0.00|0.00|0.00&Utility Account|KES|"
            f"{utility:.2f}|{utility:.2f}|0.00|0.00&Charges Paid Account|KES|0.00|0.00|0.00|0.00&Organization "
            f"Settlement Account|KES|0.00|0.00|0.00|0.00"
        )
        body = {
            "Result": {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": charge.external_id,
                "ConversationID": charge.transaction_id,
                "TransactionID": "OA90000000",
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "AccountBalance", "Value": text},
                        {"Key": "BOCompletedTime", "Value": int(datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S"))},
                    ]
                },
                "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": url}},
            }
        }
        self.dispatcher.post(charge, url, json.dumps(body).encode(), label="balance_result")

    def pull_register(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        if shortcode != self.c2b_shortcode:
            raise DarajaError(400, "400.001", "Invalid ShortCode")
        if data.get("RequestType") != "Pull" or not str(data.get("NominatedNumber") or "").strip():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid RequestType or NominatedNumber")
        again = shortcode in self.pull_registered
        self.pull_registered.add(shortcode)
        return json_response(
            200,
            {
                "ResponseRefID": str(uuid.uuid4()),
                "ResponseStatus": "1001" if again else "1000",
                "ShortCode": shortcode,
                "ResponseDescription": "ShortCode already Registered" if again else "Shortcode Registered Successfully",
            },
        )

    def pull_query(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        data = json_object(request)
        shortcode = str(data.get("ShortCode") or "")
        if shortcode != self.c2b_shortcode or shortcode not in self.pull_registered:
            raise DarajaError(400, "400.001", "Invalid ShortCode")
        try:
            start, end = (_daraja_time(str(data.get(key) or "")) for key in ("StartDate", "EndDate"))
            offset = int(str(data.get("OffSetValue", "0")))
        except ValueError:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid StartDate, EndDate or OffSetValue") from None
        rows = sorted(
            (c for c in received(self.store, "mpesa") if start <= c.created_at.astimezone(NAIROBI) <= end),
            key=lambda c: (c.created_at, c.transaction_id),
        )
        page = [_pull_row(c) for c in rows[offset : offset + PULL_PAGE]]
        return json_response(
            200,
            {
                "ResponseRefID": str(uuid.uuid4()),
                "ResponseCode": "1000" if page else "1001",
                "ResponseMessage": "Success" if page else "No transactions available for the selected time period",
                "Response": [page],
            },
        )


def _daraja_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=NAIROBI)


def _pull_row(charge: Charge) -> dict[str, Any]:
    return {
        "transactionId": charge.extra.get("receipt") or charge.transaction_id,
        "trxDate": charge.created_at.strftime("%Y-%m-%dT%H:%M:00Z"),
        "msisdn": int(charge.msisdn) if charge.msisdn.isdigit() else charge.msisdn,
        "sender": "MPESA",
        "transactiontype": "c2b-pay-bill-debit",
        "billreference": charge.external_id,
        "amount": charge.amount,
        "organizationname": "Daraja Pull API Test",
    }
