"""Reading Daraja's JSON fields: strings that sometimes come as numbers, never as objects; and the `{"Result":
…}` envelope every initiator result (reversal, Account Balance) arrives in."""

from payments.providers.base import CallbackMalformed, load_json


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


def initiator_result(body: bytes) -> tuple[dict, str, str]:
    """The `{"Result": {...}}` of a result or queue-timeout callback: (the Result object, its ConversationID,
    its ResultCode as text); CallbackMalformed when either is missing."""
    data = load_json(body)
    result = data.get("Result") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise CallbackMalformed('expected {"Result": {...}}')
    conversation = text_field(result, "ConversationID")
    if not conversation:
        raise CallbackMalformed("Result.ConversationID is required")
    if "ResultCode" not in result or isinstance(result["ResultCode"], bool | dict | list | None):
        raise CallbackMalformed("Result.ResultCode is required")
    return result, conversation, str(result["ResultCode"]).strip()
