"""Request parsers for the JSON API."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 for JSON nested too deeply to parse.

    Python's json module raises RecursionError (not a ValueError) for a body like `[[[[…]]]]` a few thousand
    levels deep; DRF only catches ValueError, so the client got a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
