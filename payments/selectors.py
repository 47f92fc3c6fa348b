from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from payments.models import CallbackEvent, Payment


def provider_health(*, provider_code: str, public_name: str) -> dict:
    last = CallbackEvent.objects.filter(provider=provider_code).aggregate(at=Max("received_at"))["at"]
    pending = Payment.objects.filter(provider=provider_code, status=Payment.Status.PENDING).count()
    return {
        "status": "healthy",
        "provider": public_name,
        "timestamp": timezone.now().isoformat(),
        "last_callback_at": last.isoformat() if last else None,
        "pending_payments": pending,
    }


def payment_latest_for_donation(*, donation_id: int) -> Payment | None:
    return Payment.objects.filter(donation_id=donation_id).order_by("-pk").first()


def payments_report(*, start: datetime, end: datetime) -> dict:
    window = Payment.objects.filter(created_at__gte=start, created_at__lt=end)
    by_provider = (
        window.values("provider", "currency")
        .annotate(
            completed=Count("pk", filter=Q(status=Payment.Status.SUCCEEDED)),
            completed_amount=Sum("amount", filter=Q(status=Payment.Status.SUCCEEDED)),
            failed=Count(
                "pk", filter=Q(status__in=[Payment.Status.FAILED, Payment.Status.CANCELLED, Payment.Status.EXPIRED])
            ),
            pending=Count("pk", filter=Q(status__in=[Payment.Status.PENDING, Payment.Status.CREATED])),
        )
        .order_by("provider", "currency")
    )
    stuck = Payment.objects.filter(
        status=Payment.Status.PENDING, created_at__lt=timezone.now() - timedelta(minutes=5)
    ).count()
    events = CallbackEvent.objects.filter(received_at__gte=start, received_at__lt=end)
    return {
        "rows": list(by_provider),
        "stuck_pending": stuck,
        "needs_review": Payment.objects.filter(needs_review=True).count(),
        "events": dict(events.values_list("status").annotate(n=Count("pk")).order_by()),
    }


def callback_events(*, status: str | None = None) -> QuerySet[CallbackEvent]:
    qs = CallbackEvent.objects.order_by("pk")
    return qs.filter(status=status) if status else qs
