"""What the payout checker sees about where a payout goes: the full number (not masked), the provider, the
account name, the approval behind it, and whether it changed since the previous payout to the partner.

The facts come from one selector, `patients.selectors.payout_destination_summary`; this module only finds the
previous payout and renders. Staff only: the payout's detail page in the admin.
"""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from patients.destinations import describe
from patients.selectors import DestinationSummary, payout_destination_summary
from payments.models import Payout

# A payout whose money left us, or may have: the "last payout" a changed number is compared against.
MONEY_LEFT = (Payout.Status.SENDING, Payout.Status.SENT, Payout.Status.PAID, Payout.Status.AMBIGUOUS)


def previous_payout(payout: Payout) -> Payout | None:
    return (
        Payout.objects.filter(treatment_partner_id=payout.treatment_partner_id, status__in=MONEY_LEFT, pk__lt=payout.pk)
        .order_by("-pk")
        .first()
    )


def payout_destination_html(payout: Payout) -> SafeString:
    previous = previous_payout(payout)
    summary = payout_destination_summary(payout.treatment_partner, since=previous.created_at if previous else None)
    rows = [
        ("Provider", payout.provider),
        ("Number", payout.msisdn),
        ("Account name", summary.account_name or "—"),
        ("Approved", _approval(summary)),
        ("Since the last payout", _since(payout, previous, summary)),
    ]
    warnings = _warnings(payout, summary)
    return format_html(
        "<table>{}</table>{}",
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        format_html_join("", '<p class="errornote">{}</p>', ((w,) for w in warnings)),
    )


def _approval(summary: DestinationSummary) -> str:
    approval = summary.approval
    if approval is None:
        return "never approved"
    if summary.approved_by_two:
        when = f"{localtime(approval.decided_at):%Y-%m-%d %H:%M}"
        return f"requested by {approval.requested_by}, approved by {approval.decided_by} on {when}"
    return f"not approved by a second person: {approval.note}"


def _since(payout: Payout, previous: Payout | None, summary: DestinationSummary) -> str:
    if previous is None:
        return "FIRST payout to this partner: check the number with the partner before approving"
    went = (
        f"the last payout {previous.reference} ({localtime(previous.created_at):%Y-%m-%d}) went to "
        f"{previous.provider} {previous.msisdn}"
    )
    if summary.changed_since or (previous.provider, previous.msisdn) != (payout.provider, payout.msisdn):
        changes = "; ".join(
            f"change #{c.pk} {describe(c)}, approved by {c.decided_by or '—'} on {localtime(c.decided_at):%Y-%m-%d}"
            for c in summary.changes_since
        )
        return f"CHANGED since {went}" + (f" — {changes}" if changes else "")
    return f"unchanged: {went}"


def _warnings(payout: Payout, summary: DestinationSummary) -> list[str]:
    warnings = []
    if not summary.matches_approval:
        warnings.append("The partner's destination is not the one last approved: payouts to it are refused.")
    elif (summary.provider, summary.msisdn) != (payout.provider, payout.msisdn):
        warnings.append(
            f"The partner's approved destination is now {summary.provider} {summary.msisdn}, not this payout's: "
            "approving it is refused; cancel it and request again."
        )
    if summary.pending is not None:
        warnings.append(
            f"Change #{summary.pending.pk} is waiting for approval ({describe(summary.pending)}); "
            "this payout goes to the approved number above."
        )
    return warnings
