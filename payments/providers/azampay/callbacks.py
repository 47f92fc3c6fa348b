"""AzamPay's callback: one dashboard URL, our id in `utilityref`, authenticated by the dashboard's callback
password echoed in the body (and, when a public key is configured, an RSA signature). Key casing varies
between integrations, so keys are read case-insensitively. Shapes: docs/providers/azampay.md."""

import base64
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payments.providers.azampay.codes import CALLBACK_SUCCESS, CURRENCY, SECRET_FIELDS, status_from_text
from payments.providers.base import (
    CallbackMalformed,
    CallbackTrust,
    PaymentStatus,
    ProviderResult,
    load_json_object,
    parse_money,
)

logger = logging.getLogger("payments.azampay")
SIGNED_FIELDS = ("utilityref", "externalreference", "transactionstatus", "operator")


@dataclass(frozen=True)
class CallbackAuth:
    password: str  # the dashboard's callback password; "" = none configured
    public_key_pem: str = ""
    require_signature: bool = False


def parse_callback(body: bytes) -> ProviderResult:
    data = callback_fields(body)
    our_reference = str(data.get("utilityref") or "")
    provider_reference = str(data.get("reference") or data.get("transid") or "")
    external = str(data.get("externalreference") or "")
    if not our_reference and external and external != provider_reference:
        our_reference = external  # a variant integrators report: our id in externalreference
    provider_reference = provider_reference or external
    state = str(data.get("transactionstatus") or "").strip().lower()
    if not state or not (our_reference or provider_reference):
        raise CallbackMalformed("transactionstatus and utilityref/reference are required")
    message = str(data.get("message") or "")
    if state == CALLBACK_SUCCESS:
        status = PaymentStatus.SUCCEEDED
    else:
        mapped = status_from_text(message)
        status = mapped if mapped in (PaymentStatus.CANCELLED, PaymentStatus.EXPIRED) else PaymentStatus.FAILED
    return ProviderResult(
        status=status,
        provider_reference=provider_reference,
        our_reference=our_reference,
        amount=parse_money(data.get("amount")),
        currency=CURRENCY,
        receipt=str(data.get("mnoreference") or data.get("fspreferenceid") or provider_reference or ""),
        msisdn=str(data.get("msisdn") or ""),
        message=message,
    )


def authenticate(auth: CallbackAuth, body: bytes) -> CallbackTrust:
    try:
        data = callback_fields(body)
    except CallbackMalformed:
        return CallbackTrust.UNVERIFIED  # parse_callback will reject it with a precise 400
    if auth.public_key_pem and (data.get("signature") or auth.require_signature):
        if not signature_valid(auth.public_key_pem, data):
            return CallbackTrust.REJECTED
        if not auth.password:
            return CallbackTrust.TRUSTED
    if auth.password:
        given = str(data.get("password") or "")
        if hmac.compare_digest(given.encode(), auth.password.encode()):
            return CallbackTrust.TRUSTED
        return CallbackTrust.REJECTED
    return CallbackTrust.UNVERIFIED


def signature_valid(public_key_pem: str, data: Mapping[str, object]) -> bool:
    signed = "".join(str(data.get(k) or "") for k in SIGNED_FIELDS)
    try:
        key = serialization.load_pem_public_key(public_key_pem.replace("\\n", "\n").encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("AzamPay signs with RSA; the configured key is not an RSA public key")
        key.verify(
            base64.b64decode(str(data.get("signature") or "")), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError, TypeError):
        logger.warning("AzamPay callback signature did not verify (utilityref %s)", data.get("utilityref"))
        return False
    return True


def redact(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body.decode("utf-8", errors="replace")
    if isinstance(data, dict):
        for key in list(data):
            if key.lower() in SECRET_FIELDS:
                data[key] = "***"
    return json.dumps(data, ensure_ascii=False)


def callback_fields(body: bytes) -> dict:
    data = load_json_object(body)
    return {str(k).lower(): v for k, v in data.items()}  # key casing varies between integrations
