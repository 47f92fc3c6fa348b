"""Sending SMS once per purpose, and what a delivery report changes.

`sms_send(key=…)` is the only way a text leaves: one SmsMessage per key, so a second call with the same key
(a relay that retries, a scheduler that runs again) sends nothing new once the gateway took it. A number in
SmsOptOut is never sent to. Numbers appear masked in every log line and in the texts we keep.
"""

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from donor.models import SmsMessage, SmsOptOut
from donor.money import money_for_people
from donor.phone_numbers import mask_msisdn
from integrations.sms import DeliveryReport, SmsStatus, fit_sms, log_sent, sms_gateway

logger = logging.getLogger("payments.sms")

DONE = {SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED, SmsMessage.Status.UNKNOWN}


def sms_opted_out(msisdn: str) -> bool:
    return SmsOptOut.objects.filter(msisdn=msisdn).exists()


def sms_send(*, key: str, msisdn: str, text: str) -> str:
    """Send `text` to `msisdn` once for `key`. "" when it went (now or before) or will never go (opted out, SMS
    off); else why not, for a caller that retries (the outbox)."""
    gateway = sms_gateway()
    if gateway is None or not msisdn:
        return ""
    text = fit_sms(text)
    try:
        with transaction.atomic():
            message, _created = SmsMessage.objects.get_or_create(
                key=key, defaults={"msisdn": msisdn, "text": text, "gateway": gateway.name}
            )
    except IntegrityError:  # a concurrent first call created it: that one sends
        message = SmsMessage.objects.get(key=key)
    if message.status in DONE or message.status == SmsMessage.Status.OPTED_OUT:
        return ""
    if message.status == SmsMessage.Status.FAILED and message.attempts:
        return ""  # a final refusal: sending again cannot help
    if sms_opted_out(msisdn):
        SmsMessage.objects.filter(pk=message.pk).update(status=SmsMessage.Status.OPTED_OUT)
        logger.info("SMS %s not sent: %s opted out", key, mask_msisdn(msisdn))
        return ""
    sent = gateway.send(msisdn=msisdn, text=text, idempotency_key=key)
    log_sent(gateway.name, msisdn, sent)
    if sent.opted_out:
        sms_opt_out(msisdn, sent.error)
    status = {
        SmsStatus.SENT: SmsMessage.Status.SENT,
        SmsStatus.DELIVERED: SmsMessage.Status.DELIVERED,
        SmsStatus.UNKNOWN: SmsMessage.Status.UNKNOWN,
    }.get(sent.status, SmsMessage.Status.QUEUED if sent.retry else SmsMessage.Status.FAILED)
    SmsMessage.objects.filter(pk=message.pk).update(
        status=status, gateway_message_id=sent.message_id, reason=sent.error[:160], attempts=message.attempts + 1
    )
    return sent.error if status == SmsMessage.Status.QUEUED else ""


def sms_opt_out(msisdn: str, reason: str) -> None:
    """Never send to this number again."""
    SmsOptOut.objects.get_or_create(msisdn=msisdn, defaults={"reason": reason[:160]})
    logger.warning("SMS: %s opted out (%s); no more messages to it", mask_msisdn(msisdn), reason)


def sms_delivery_report(report: DeliveryReport) -> bool:
    """Apply a gateway's delivery report to the message it names. False: no such message of ours."""
    message = SmsMessage.objects.filter(gateway_message_id=report.message_id).first()
    if message is None:
        return False
    status = {
        SmsStatus.DELIVERED: SmsMessage.Status.DELIVERED,
        SmsStatus.FAILED: SmsMessage.Status.FAILED,
    }.get(report.status)
    if status is not None and message.status != SmsMessage.Status.DELIVERED:  # a final status is kept
        SmsMessage.objects.filter(pk=message.pk).update(status=status, reason=report.reason)
    if report.opted_out:
        sms_opt_out(message.msisdn, report.reason)
    logger.info("SMS %s to %s: delivery report %s", message.key, mask_msisdn(message.msisdn), report.reason)
    return True


def donation_sms_text(*, amount: Decimal, currency: str, patient_code: str, receipt: str, link: str) -> str:
    """The payer's receipt by SMS, one GSM-7 message: amount, what it is for, the provider's receipt, the link."""
    money = money_for_people(amount, currency)
    target = patient_code or _("the general fund")
    receipt_part = _("Receipt %(receipt)s.") % {"receipt": receipt} if receipt else ""
    full = _("Thank you! %(money)s received for %(target)s. %(receipt)s Details: %(link)s") % {
        "money": money, "target": target, "receipt": receipt_part, "link": link}  # fmt: skip
    short = _("%(money)s for %(target)s. %(receipt)s %(link)s") % {
        "money": money, "target": target, "receipt": receipt_part, "link": link}  # fmt: skip
    return fit_sms(" ".join(full.split()), " ".join(short.split()))
