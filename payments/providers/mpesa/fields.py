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


def result_parameters(result: dict) -> dict[str, object]:
    """`ResultParameters.ResultParameter` of a `{"Result": …}` body (a list of Key/Value pairs, or one pair
    alone) as a dict."""
    parameters = result.get("ResultParameters")
    items = (parameters.get("ResultParameter") or []) if isinstance(parameters, dict) else []
    if isinstance(items, dict):
        items = [items]
    return {str(i["Key"]): i["Value"] for i in items if isinstance(i, dict) and "Key" in i and "Value" in i}
