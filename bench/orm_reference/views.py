"""One AzamPay success callback: parse, check the password, then the four essential statements.

1. INSERT the raw event (password redacted, keyed digest of the raw bytes), committed on its own (autocommit),
   before anything trusts it — as the site does;
2. SELECT ... FOR UPDATE the donation by its reference;
3. UPDATE it to completed (only if it was pending: a repeat changes nothing);
4. UPDATE the patient's funding_received = funding_received + amount (F()).
2–4 in one transaction. No payment row, allocation, history, notification or logging: those are the site's
choices on top of the essential work, which is what this measures.
"""

import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from bench.orm_reference.models import CallbackEvent, Donation, Patient

PASSWORD = settings.AZAMPAY_CALLBACK_PASSWORD.encode()
DIGEST_KEY = hashlib.sha256(b"payments.callback_body" + settings.SECRET_KEY.encode()).digest()


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "healthy"})


@csrf_exempt
def callback(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "method not allowed"}, status=405)
    body = request.body
    try:
        data = {str(k).lower(): v for k, v in json.loads(body).items()}
        amount = Decimal(str(data.get("amount")))
    except (ValueError, AttributeError, InvalidOperation):
        return JsonResponse({"error": "malformed"}, status=400)
    if not PASSWORD or not hmac.compare_digest(str(data.get("password") or "").encode(), PASSWORD):
        return JsonResponse({"error": "unauthenticated"}, status=401)
    reference = str(data.get("utilityref") or "")[:64]
    now = timezone.now()
    CallbackEvent.objects.create(
        provider="azampay",
        kind="payment",
        body=json.dumps({**data, "password": "***"}),
        headers={},
        client_ip=request.META.get("REMOTE_ADDR"),
        body_digest=hmac.new(DIGEST_KEY, body, hashlib.sha256).hexdigest(),
        url_token_digest="",
        trust="trusted",
        status="processed",
        error="",
        attempts=1,
        our_reference=reference,
        provider_reference=str(data.get("reference") or "")[:100],
        received_at=now,
        body_kept=True,
        body_size=len(body),
        traceback="",
    )
    with transaction.atomic():
        locked = Donation.objects.select_for_update().only("amount", "status", "patient_id")
        donation = locked.filter(reference=reference).first()
        if donation is None:
            return JsonResponse({"error": "unknown reference"}, status=404)
        if donation.amount != amount:
            return JsonResponse({"error": "amount mismatch"}, status=409)
        if donation.status == "pending":
            donation.status = "completed"
            donation.completed_at = now
            donation.updated_at = now
            donation.save(update_fields=["status", "completed_at", "updated_at"])
            Patient.objects.filter(pk=donation.patient_id).update(funding_received=F("funding_received") + amount)
    return JsonResponse({"success": True, "message": "Callback received"})
