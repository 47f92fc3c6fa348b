"""AzamPay's names for things: operators (a case-sensitive enum), banks, and the words of its statuses."""

from payments.providers.base import PaymentStatus

MNO_CHANNELS = ("Mpesa", "Airtel", "Tigo", "Halopesa", "Azampesa")
BANK_CHANNELS = ("CRDB", "NMB")
CARD_CHANNEL = "card"
BANK_CHANNEL = "bank"
CALLBACK_SUCCESS = "success"
CURRENCY = "TZS"
HOSTED_EXTERNAL_ID_MAX = 30  # PostCheckout's externalId; the MNO and bank calls allow 128
# Donors type operator names in many ways; AzamPay's enum is case-sensitive.
CHANNEL_ALIASES = {c.lower(): c for c in MNO_CHANNELS} | {
    "m-pesa": "Mpesa",
    "vodacom": "Mpesa",
    "mixx": "Tigo",
    "yas": "Tigo",
    "halotel": "Halopesa",
    "azam pesa": "Azampesa",
    "airtel money": "Airtel",
    "card": CARD_CHANNEL,
    "bank": BANK_CHANNEL,
}
CHANNEL_LABELS = {
    "Mpesa": "M-Pesa (Vodacom)",
    "Airtel": "Airtel Money",
    "Tigo": "Tigo Pesa (Mixx by Yas)",
    "Halopesa": "Halopesa",
    "Azampesa": "AzamPesa",
    CARD_CHANNEL: "Card (Visa, Mastercard)",
    BANK_CHANNEL: "Bank (CRDB, NMB)",
}
# Free-text statuses of the status query, matched conservatively: anything else is UNKNOWN, never FAILED.
# Words that say "not finished" come first: "Pending success confirmation" is pending, not paid, and
# "processing, not yet failed" is pending, not failed. Only text with no pending word can end a payment.
STATUS_MAP: tuple[tuple[str, PaymentStatus], ...] = (
    ("pending", PaymentStatus.PENDING),
    ("processing", PaymentStatus.PENDING),
    ("progress", PaymentStatus.PENDING),
    ("awaiting", PaymentStatus.PENDING),
    ("initiated", PaymentStatus.PENDING),
    ("cancel", PaymentStatus.CANCELLED),
    ("timeout", PaymentStatus.EXPIRED),
    ("timed out", PaymentStatus.EXPIRED),
    ("expired", PaymentStatus.EXPIRED),
    # Negations before "success": "Transaction unsuccessful" must never read as paid.
    ("unsuccess", PaymentStatus.FAILED),
    ("not success", PaymentStatus.FAILED),
    ("fail", PaymentStatus.FAILED),
    ("reject", PaymentStatus.FAILED),
    ("insufficient", PaymentStatus.FAILED),
    ("success", PaymentStatus.SUCCEEDED),
)
SECRET_FIELDS = ("password",)


def normalize_channel(value: str) -> str:
    """AzamPay's spelling of an operator, "card" or "bank"; "" when it is none of them."""
    return CHANNEL_ALIASES.get((value or "").strip().lower(), "")


def status_from_text(text: str) -> PaymentStatus:
    lowered = (text or "").lower()
    for needle, status in STATUS_MAP:
        if needle in lowered:
            return status
    return PaymentStatus.UNKNOWN
