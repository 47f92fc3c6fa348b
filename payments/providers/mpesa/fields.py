"""Reading Daraja's JSON fields: strings that sometimes come as numbers, never as objects."""

from payments.providers.base import CallbackMalformed


def text_field(data: dict, key: str, *, required: bool = False) -> str:
    if key not in data or data[key] is None:
        if required:
            raise CallbackMalformed(f"{key} is required")
        return ""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackMalformed(f"{key} must be a string")
    return str(value).strip()
