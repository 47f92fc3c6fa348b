"""Reads of patients and of a partner's payout destination (what the payout page shows about its approvals).
No writes here: the two-person change of a destination is in patients/destinations.py."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet

from patients.models import PARTNER_DESTINATION_FIELDS, Patient, PayoutDestinationChange, TreatmentPartner


def patient_list_published() -> QuerySet[Patient]:
    return Patient.objects.filter(published=True).select_related("treatment_partner").order_by("code")


def patient_get_published(*, code: str) -> Patient | None:
    return patient_list_published().filter(code__iexact=code.strip()).first()


@dataclass(frozen=True)
class DestinationSummary:
    """What a payout checker needs to see about where a partner's money goes (unmasked: staff only)."""

    partner_id: int
    partner_name: str
    provider: str
    msisdn: str
    account_name: str
    approval: PayoutDestinationChange | None  # the approval behind today's values (None: never approved)
    matches_approval: bool  # False: the fields were written outside the approval (payouts refuse them)
    since: datetime | None  # the moment compared against (the previous payout); None: there was none
    changes_since: list[PayoutDestinationChange] = field(default_factory=list)  # approved after `since`
    pending: PayoutDestinationChange | None = None  # a change waiting for its second person (not applied)

    @property
    def changed_since(self) -> bool:
        return bool(self.changes_since)

    @property
    def approved_by_two(self) -> bool:
        """Approved by a second person (not seeded, not recorded by the migration)."""
        return bool(self.approval and self.approval.requested_by_id and self.approval.decided_by_id)


def payout_destination_summary(partner: TreatmentPartner, *, since: datetime | None) -> DestinationSummary:
    """The partner's approved destination in full, the approval behind it, the approved changes since `since`
    (the previous payout to this partner: the caller knows it) and any change still pending."""
    partner = TreatmentPartner.objects.get(pk=partner.pk)  # fresh: the caller's object may predate an approval
    approvals = PayoutDestinationChange.objects.filter(
        kind=PayoutDestinationChange.Kind.PARTNER, partner=partner, status=PayoutDestinationChange.Status.APPROVED
    ).select_related("requested_by", "decided_by")
    approval = approvals.order_by("-decided_at", "-id").first()
    current = {name: getattr(partner, name) for name in PARTNER_DESTINATION_FIELDS}
    matches = approval is not None and {name: approval.new.get(name, "") for name in PARTNER_DESTINATION_FIELDS} == (
        current
    )
    changes = list(approvals.filter(decided_at__gt=since).order_by("decided_at", "id")) if since is not None else []
    pending = (
        PayoutDestinationChange.objects.filter(
            kind=PayoutDestinationChange.Kind.PARTNER, partner=partner, status=PayoutDestinationChange.Status.REQUESTED
        )
        .select_related("requested_by")
        .first()
    )
    return DestinationSummary(
        partner_id=partner.pk,
        partner_name=partner.name,
        provider=partner.payout_provider,
        msisdn=partner.payout_msisdn,
        account_name=partner.payout_account_name,
        approval=approval,
        matches_approval=matches,
        since=since,
        changes_since=changes,
        pending=pending,
    )
