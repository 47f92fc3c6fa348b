"""Phone numbers parsed with `phonenumbers` and kept as E.164 digits without the "+"."""

import re

import phonenumbers
from django.utils.translation import gettext as _

REGION_BY_CURRENCY = {"TZS": "TZ", "KES": "KE", "UGX": "UG", "RWF": "RW", "ZMW": "ZM", "MWK": "MW"}
DEFAULT_REGION = "TZ"


class InvalidPhoneNumber(ValueError):
    pass


def normalize_msisdn(raw: str, *, region: str | None = None) -> str:
    """'0712 345 678' in TZ → '255712345678'. Raises InvalidPhoneNumber with a message a donor understands."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber(_("Enter a mobile number."))
    digits_only = text.replace(" ", "").replace("-", "")
    if digits_only.isdigit() and len(digits_only) > 10 and not digits_only.startswith("0"):
        text = "+" + digits_only  # 255712345678 written without the plus
    try:
        number = phonenumbers.parse(text, region or DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(_("That does not look like a phone number.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(_("That phone number is not valid for its country."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def reach_problem(msisdn: str, regions: frozenset[str] | set[str]) -> str | None:
    """Why a rail that prompts mobile numbers of `regions` cannot reach this one (E.164 digits), or None."""
    if not regions:
        return None
    number = phonenumbers.parse(f"+{msisdn}")
    region = phonenumbers.region_code_for_number(number)
    mobile = phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    if region in regions and mobile:
        return None
    names = or_words(sorted(regions))
    example = _mobile_example(sorted(regions)[0])
    if example:
        values = {"countries": names, "example": example}
        return _("Enter a mobile number of %(countries)s such as %(example)s.") % values
    return _("Enter a mobile number of %(countries)s.") % {"countries": names}


def or_words(choices: list[str] | tuple[str, ...]) -> str:
    """The choices joined the way a sentence lists them ("TZ or KE"), in the active language."""
    word = _("or")
    return f" {word} ".join(choices)


def _mobile_example(region: str) -> str:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL) if number else ""


def region_for_currency(currency: str) -> str:
    return REGION_BY_CURRENCY.get(currency.upper(), DEFAULT_REGION)


def mobile_number_pattern(region: str) -> str:
    """A regular expression (ECMA and Python alike) of the mobile numbers of a region as normalize_msisdn takes
    them: `+255712345678`, `255712345678`, `0712345678` or `712345678`, without spaces. From the same metadata
    `phonenumbers` validates with, so what it matches is accepted (the API also takes spaces, dashes and other
    valid numbers: the pattern is the documented form, not every spelling)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or not metadata.mobile.national_number_pattern:
        raise ValueError(f"no mobile numbers known for region {region!r}")
    national = metadata.mobile.national_number_pattern
    prefix = re.escape(metadata.national_prefix or "")
    country = f"\\+?{metadata.country_code}"
    lead = f"{country}|{prefix}" if prefix else country
    return f"^(?:{lead})?(?:{national})$"


def mask_msisdn(msisdn: str) -> str:
    if len(msisdn) < 8:
        return "****" if msisdn else ""
    return f"{msisdn[:4]}****{msisdn[-3:]}"
