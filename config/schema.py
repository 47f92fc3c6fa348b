"""The OpenAPI schema at /api/schema/, made truthful in one place (docs/api.md "Schema").

- `ErrorSerializer`: the one error body of docs/api.md, the `Error` component every error response refers to.
- `ApiSchemaGenerator` (SPECTACULAR_SETTINGS["DEFAULT_GENERATOR_CLASS"]) gives every view's schema the
  `ErrorResponses` mixin: each operation documents the errors it can answer, inferred from what the view is
  (a request body → 400 and 415; an authentication class or a token view → 401; a path parameter or a page →
  404), plus what the view declares itself with `extend_schema(responses=…)` (409, 422, 429, 502, 503). The mixin
  also states on every request string what DRF's CharField enforces (no NUL character; not blank unless
  allow_blank), so a schema-valid string is never refused for them.
- `amount_schema`: a money amount as the API takes it (a JSON integer or a decimal string) within limits.
- `inline_enum_components` / `enum_components`: drf-spectacular's enum hook, except that the one-value enums
  of the donation request variants stay inline (the hook would name them with hashes).
"""

import copy
import math
from collections.abc import Callable
from decimal import Decimal

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.hooks import postprocess_schema_enums
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import append_meta, force_instance
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import fields, serializers


class ErrorSerializer(serializers.Serializer):
    """The error body of every /api/ path (docs/api.md "Error bodies"). Clients key on the status and `code`."""

    error = serializers.CharField(help_text="The HTTP reason phrase, e.g. `Bad Request`.")
    message = serializers.CharField(help_text="Text for a person (free text: do not parse it).")
    code = serializers.CharField(
        help_text="What clients key on: `VALIDATION_ERROR`, `INVALID_FORMAT`, `AUTH_REQUIRED`, `NOT_FOUND`, "
        "`IDEMPOTENCY_IN_PROGRESS`, `UNSUPPORTED_MEDIA_TYPE`, `IDEMPOTENCY_KEY_REUSED`, `RATE_LIMIT_EXCEEDED`, "
        "`PROVIDER_ERROR`, … (docs/api.md)."
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="`VALIDATION_ERROR` only: the messages of each field that failed.",
    )
    retry_after = serializers.IntegerField(required=False, help_text="429 only: seconds to wait.")
    reference = serializers.CharField(required=False, help_text="502 only: the reference of the failed donation.")
    request_id = serializers.CharField(required=False, help_text="500 only: the request id (= `X-Request-ID`).")


def error_response(description: str) -> OpenApiResponse:
    """An error response for `extend_schema(responses={status: error_response("…")})`."""
    return OpenApiResponse(ErrorSerializer, description=description)


BODY_ERRORS = {
    400: "`VALIDATION_ERROR`: a field breaks a rule (`errors` names each field); `INVALID_FORMAT`: the body is "
    "not JSON.",
    413: "`PAYLOAD_TOO_LARGE`: the body is over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB).",
    415: "`UNSUPPORTED_MEDIA_TYPE`: the body is not JSON (`Content-Type: application/json`).",
}
NOT_FOUND = {404: "`NOT_FOUND`: nothing has this reference or code."}
NO_SUCH_PAGE = {404: "`NOT_FOUND`: there is no such page (`page` is one whole number from 1)."}
BAD_TOKEN = {401: "`AUTH_REQUIRED`: the bearer token is invalid or expired (a request without one is a guest's)."}
NO_TOKEN = {401: "`AUTH_REQUIRED`: no bearer token, or an invalid or expired one."}
WRONG_CREDENTIALS = {401: "`AUTH_REQUIRED`: wrong username or password, or an invalid or expired refresh token."}

LOCKED_OUT = {
    429: "`LOGIN_LOCKED_OUT`: too many failed sign-ins for this account or client; wait `retry_after` seconds. "
    "`RATE_LIMIT_EXCEEDED`: over LOGIN_RATE_LIMIT_PER_MINUTE sign-in attempts from this client; wait "
    "`retry_after` seconds (`Retry-After`)."
}


def _over(setting: str) -> dict[int, str]:
    return {429: f"`RATE_LIMIT_EXCEEDED`: over {setting} from this client; wait `retry_after` seconds (`Retry-After`)."}


# Views whose own extra errors nothing else shows (not ours to decorate, or the doors config/throttles.py limits),
# by dotted class name along the MRO.
VIEW_ERRORS = {
    "config.login_security.TokenObtainView": LOCKED_OUT,
    "donor.apis.DonorRegisterApi": _over("REGISTER_RATE_LIMIT_PER_MINUTE"),
    "payments.apis.DonationStatusApi": _over("STATUS_RATE_LIMIT_PER_MINUTE"),
}

# What Python's str.strip() (DRF's trim_whitespace) removes, spelt so ECMA and Python regexes agree.
_WHITESPACE = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_WHITESPACE}][^\\u0000]*$"


def trimmed_length_pattern(min_length: int) -> str:
    """A string without NUL that is at least `min_length` long once stripped (DRF trims before it measures)."""
    if min_length <= 1:
        return NOT_BLANK_PATTERN
    edge = f"[^\\u0000{_WHITESPACE}]"
    return f"^[{_WHITESPACE}]*{edge}[^\\u0000]{{{min_length - 2},}}{edge}[{_WHITESPACE}]*$"


class ErrorResponses(AutoSchema):
    """Mixed into every view's schema by ApiSchemaGenerator (before the view's own, extend_schema's, class)."""

    def error_responses(self) -> dict[int, str]:
        """The error statuses this operation can answer that every view of its kind shares, with their codes."""
        from rest_framework_simplejwt.views import TokenViewBase  # the token views' 401 is a wrong password

        errors: dict[int, str] = {}
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors |= BODY_ERRORS
        if isinstance(self.view, TokenViewBase):
            errors |= WRONG_CREDENTIALS
        elif self.view.get_authenticators():
            required = any(not isinstance(p, _allow_any()) for p in self.view.get_permissions())
            errors |= NO_TOKEN if required else BAD_TOKEN
        for cls in type(self.view).__mro__:
            errors |= VIEW_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}", {})
        if "{" in self.path:
            errors |= NOT_FOUND
        elif self._is_list_view() and getattr(self.view, "pagination_class", None):
            errors |= NO_SUCH_PAGE
        return errors

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status, description in self.error_responses().items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    error_response(description), str(status), direction=direction
                )
        return dict(sorted(responses.items()))

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        variants = getattr(serializer, "serializers", None)
        if isinstance(serializer, PolymorphicProxySerializer) and not required:
            # drf-spectacular cannot see into a oneOf: the body is required when every variant requires a field.
            variants = variants() if callable(variants) else variants
            variants = variants.values() if isinstance(variants, dict) else variants
            required = bool(variants) and all(
                any(f.required for f in force_instance(v).fields.values()) for v in variants
            )
        return schema, required

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if getattr(field, "openapi_schema", None) is not None:  # a Documented field: its schema as given
            given = field.openapi_schema() if callable(field.openapi_schema) else copy.deepcopy(field.openapi_schema)
            return append_meta(given, self._get_serializer_field_meta(field, direction))
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, fields.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and not {"enum", "pattern", "format", "$ref"} & set(schema)
        ):
            schema["pattern"] = NO_NUL_PATTERN if field.allow_blank else NOT_BLANK_PATTERN
        return schema


def documented(field_class: type[fields.Field]) -> type[fields.Field]:
    """`field_class` taking an `openapi_schema=` keyword (a schema, or a function answering one when the schema
    is built): the field validates as before and is documented with that schema (a keyword, not an attribute,
    so that it survives DRF's copies of declared fields)."""

    def __init__(self, *args, openapi_schema: dict | Callable[[], dict], **kwargs):
        self.openapi_schema = openapi_schema
        field_class.__init__(self, *args, **kwargs)

    return type(f"Documented{field_class.__name__}", (field_class,), {"__init__": __init__})


DocumentedCharField = documented(fields.CharField)
DocumentedDecimalField = documented(fields.DecimalField)


def _allow_any():
    from rest_framework.permissions import AllowAny

    return AllowAny


class ApiSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator, with ErrorResponses in every view's schema class."""

    def create_view(self, callback, method, request=None):
        view = super().create_view(callback, method, request)
        schema_class = view.schema.__class__  # view.schema may be a weakref proxy: its __class__ is the real one
        if issubclass(schema_class, AutoSchema) and not issubclass(schema_class, ErrorResponses):
            schema_class = type(f"Api{schema_class.__name__}", (ErrorResponses, schema_class), {})
            self._set_schema_to_view(view, schema_class())
        return view


# --- Amounts -----------------------------------------------------------------------------------------------


def integer_range_pattern(low: int, high: int) -> str:
    """A regex alternation matching exactly the decimal integers low..high (no sign, no leading zeros)."""
    if not 0 <= low <= high:
        raise ValueError(f"bad range {low}..{high}")
    parts: list[str] = []
    for length in range(len(str(low)), len(str(high)) + 1):
        start, end = max(low, 10 ** (length - 1) if length > 1 else 0), min(high, 10**length - 1)
        if start <= end:
            parts += _same_length(str(start), str(end))
    return "|".join(parts)


def _same_length(a: str, b: str) -> list[str]:
    """Alternatives matching the integers a..b, both written with the same number of digits."""
    if a == b:
        return [a]
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return [_digits(a[0], b[0]) + (f"\\d{{{rest}}}" if rest > 1 else "\\d" * rest)]
    if a[0] == b[0]:
        return [a[0] + tail for tail in _same_length(a[1:], b[1:])]
    out = [a[0] + tail for tail in _same_length(a[1:], "9" * rest)]
    if int(a[0]) + 1 <= int(b[0]) - 1:
        out += _same_length(str(int(a[0]) + 1) + "0" * rest, str(int(b[0]) - 1) + "9" * rest)
    return out + [b[0] + tail for tail in _same_length("0" * rest, b[1:])]


def _digits(a: str, b: str) -> str:
    return a if a == b else f"[{a}-{b}]"


def amount_schema(low: Decimal, high: Decimal, *, whole: bool) -> dict:
    """An amount in low..high as the API takes it: a JSON integer, or a decimal string (`"5000"`, `"5000.00"`;
    fractions only when not `whole`, at most two decimals). Both limits are exact, for both forms."""
    lowest, highest = math.ceil(low), math.floor(high)
    if lowest > highest:
        raise ValueError(f"no whole amount in {low}..{high}")
    if whole or lowest == highest:
        string = f"^(?:{integer_range_pattern(lowest, highest)})(?:\\.0{{1,2}})?$"
    else:  # any cents below the top, and the top itself with none
        below = integer_range_pattern(lowest, highest - 1)
        string = f"^(?:(?:{below})(?:\\.\\d{{1,2}})?|{highest}(?:\\.0{{1,2}})?)$"
    return {
        "oneOf": [
            {"type": "integer", "minimum": lowest, "maximum": highest},
            {"type": "string", "pattern": string},
        ]
    }


# --- Enums -------------------------------------------------------------------------------------------------

inline_enum_components: set[str] = set()  # component names whose enums stay inline (added where they are built)


def enum_components(result, generator, request, public):
    """drf-spectacular's postprocess_schema_enums, skipping the components in inline_enum_components."""
    schemas = result.get("components", {}).get("schemas", {})
    kept = {name: schemas.pop(name) for name in list(schemas) if name in inline_enum_components}
    result = postprocess_schema_enums(result, generator, request=request, public=public)
    schemas = result.get("components", {}).get("schemas", {})
    schemas.update(kept)
    if schemas:
        result["components"]["schemas"] = dict(sorted(schemas.items()))
    _blank_strings_any_of(result)
    return result


BLANK = {"type": "string", "maxLength": 0}


def _blank_strings_any_of(node: object) -> None:
    """drf-spectacular documents a blank-allowed string with a validator as oneOf [the rule, blank]; when the rule
    admits "" too (ProhibitNullCharactersValidator's pattern does), "" matches both and breaks the oneOf, so a
    client reading the schema would think the "" that we accept is refused. anyOf says what we accept."""
    if isinstance(node, dict):
        choices = node.get("oneOf")
        if isinstance(choices, list) and BLANK in choices:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _blank_strings_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _blank_strings_any_of(value)
