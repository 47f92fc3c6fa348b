"""Airtel's money out and back: refunds of a collection and disbursements, answered synchronously (Airtel
documents no disbursement callback), by the payee number's last two digits (see simulator.py's docstring); the
PIN must decrypt with the key the simulator serves. A mixin of AirtelSimulator, apart so each file holds one job.
"""

import base64
import hmac
import logging
import re
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.sandbox.airtel import bodies
from payments.sandbox.airtel.bodies import new_money_id
from payments.sandbox.airtel.checks import (
    DISBURSEMENT_OUTCOMES,
    DISBURSEMENT_PAID,
    MAX_REFERENCE,
    MIN_REFERENCE,
    REFUNDED,
    alphanumeric,
    amount_field,
    gateway_error,
    json_object,
    msisdn_field,
    object_field,
    refused,
    transaction_id_field,
)
from payments.sandbox.base import mask_msisdn
from payments.sandbox.outcomes import PENDING, Result
from payments.sandbox.protocol import SandboxRequest, SandboxResponse, json_response
from payments.sandbox.store import Charge

logger = logging.getLogger("payments.sandbox.airtel")
PROVIDER = "airtel"


class AirtelMoneyRoutes:
    """The simulator's store, dispatcher, key and PIN come from AirtelSimulator."""

    store: Any
    dispatcher: Any
    private_key: rsa.RSAPrivateKey
    disbursement_pin: str

    def _authorize(self, request: SandboxRequest) -> None:
        raise NotImplementedError

    def _routing(self, request: SandboxRequest) -> tuple[str, str]:
        raise NotImplementedError

    def _find(self, kind: str, transaction_id: str) -> Charge | None:
        raise NotImplementedError

    def refund(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        _country, currency = self._routing(request)
        transaction = object_field(json_object(request), "transaction")
        money_id = transaction.get("airtel_money_id")
        if not isinstance(money_id, str) or not money_id:
            raise refused("transaction.airtel_money_id is required.", result_code="ESB000008")
        with self.store.lock:
            original = self.store.get_charge(PROVIDER, money_id)
            if original is None or original.extra.get("kind") != "collection":
                raise refused("No Transaction Found With Provided Transaction Id.", result_code="ESB000045", code="404")
            if original.state() != Result.SUCCESS:
                raise refused("Only a successful transaction can be refunded.", result_code="ESB000011")
            if original.extra.get("refunded_by"):
                raise refused("The transaction was already refunded.", result_code="ESB000011")
            refund = Charge(
                provider=PROVIDER,
                transaction_id=new_money_id("CI"),
                external_id=money_id,
                msisdn=original.msisdn,
                amount=original.amount,
                currency=currency,
                channel="refund",
                outcome=REFUNDED,
                extra={"kind": "refund", "of": original.external_id},
            )
            refund.decide_at = refund.created_mono
            original.extra["refunded_by"] = refund.transaction_id
            self.store.add_charge(refund)
        logger.info("Airtel sandbox refund %s of %s", refund.transaction_id, money_id)
        return json_response(
            200,
            {
                "data": {"transaction": {"airtel_money_id": refund.transaction_id, "status": "SUCCESS"}},
                "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "success": True},
            },
        )

    # --- disbursements -----------------------------------------------------------------------------------

    def disburse(self, request: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        country, currency = self._routing(request)
        data = json_object(request)
        payee = object_field(data, "payee")
        transaction = object_field(data, "transaction")
        msisdn = msisdn_field(payee.get("msisdn"), country)
        reference = data.get("reference")
        if not isinstance(reference, str) or not alphanumeric(reference, MIN_REFERENCE, MAX_REFERENCE):
            raise refused("reference must be 4 to 64 letters and digits.", result_code="ESB000008")
        self._check_pin(data.get("pin"))
        amount = amount_field(transaction.get("amount"), currency, "DP00900001004")
        transaction_id = transaction_id_field(transaction.get("id"))
        outcome = DISBURSEMENT_OUTCOMES.get(msisdn[-2:], DISBURSEMENT_PAID)
        with self.store.lock:
            if self._find("disbursement", transaction_id) is not None:
                raise refused(
                    "Duplicate Transaction Id.", result_code="ESB000041", response_code="DP00900001017", code="500"
                )
            charge = Charge(
                provider=PROVIDER,
                transaction_id=new_money_id("DS"),
                external_id=transaction_id,
                msisdn=msisdn,
                amount=amount,
                currency=currency,
                channel="disbursement",
                outcome=outcome,
                extra={"kind": "disbursement", "reference_id": f"{secrets.randbelow(10**10):010d}"},
            )
            charge.decide_at = charge.created_mono + self.dispatcher.scaled(outcome.decide_after)
            self.store.add_charge(charge)
        logger.info("Airtel sandbox disbursement %s to %s: %s", transaction_id, mask_msisdn(msisdn), outcome.name)
        if outcome.result == Result.INSUFFICIENT_FUNDS:
            raise refused(
                "Not enough funds in account to complete the transaction.",
                result_code="ESB000011",
                response_code="DP00900001007",
            )
        suffix = msisdn[-2:]
        if suffix == "03":
            state, response_code, message = "TA", "DP00900001000", "Transaction is ambiguous: do an enquiry."
        elif suffix == "06":
            state, response_code, message = "TIP", "DP00900001006", "Transaction is in process."
        else:
            state, response_code = "TS", "DP00900001001"
            message = (
                f"Trans.ID : {charge.transaction_id}. You have sent {currency} {amount} to {msisdn}. "
                "Your balance is UGX 1,000,000."
            )
        answer = bodies.disbursement_result(
            transaction_id=transaction_id,
            money_id=charge.transaction_id,
            reference_id=charge.extra["reference_id"],
            state=state,
            message=message,
            response_code=response_code,
        )
        return json_response(200, answer)

    def _check_pin(self, value: object) -> None:
        if not isinstance(value, str) or not value:
            raise gateway_error(400, "ROUTER003", "Mandatory parameters are missing either in the header or body.")
        try:
            encrypted = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise gateway_error(400, "ROUTER116", "The encrypted value of the pin is incorrect.") from exc
        oaep = rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
        try:
            pin = self.private_key.decrypt(encrypted, oaep)
        except ValueError:
            try:
                # PKCS#1 v1.5 decryption never fails loudly (implicit rejection): a wrong one gives noise.
                pin = self.private_key.decrypt(encrypted, rsa_padding.PKCS1v15())
            except ValueError as exc:
                raise gateway_error(400, "ROUTER116", "The encrypted value of the pin is incorrect.") from exc
        if not hmac.compare_digest(pin, self.disbursement_pin.encode()):
            raise gateway_error(400, "ROUTER115", "Pin you have entered is incorrect.")

    def disbursement_enquiry(self, request: SandboxRequest, found: re.Match[str]) -> SandboxResponse:
        self._authorize(request)
        self._routing(request)
        charge = self._find("disbursement", found["id"])
        if charge is None:
            raise refused("No Transaction Found With Provided Transaction Id.", result_code="ESB000045", code="404")
        state = charge.state()
        if state == PENDING:
            state_, message, code, money_id = "TIP", "Transaction is in process.", "DP00900001006", ""
        elif state == Result.SUCCESS:
            state_, message, code, money_id = "TS", "Transaction is successful.", "DP00900001001", charge.transaction_id
        else:
            state_, message, code, money_id = "TF", "Insufficient funds.", "DP00900001007", ""
        answer = bodies.enquiry_answer(
            transaction_id=charge.external_id,
            state=state_,
            message=message,
            response_code=code,
            money_id=money_id,
            success=state != PENDING,
        )
        return json_response(200, answer)
