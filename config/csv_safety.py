"""CSV cells a spreadsheet cannot run (every CSV export: the settlement file, the admin's downloads).

A spreadsheet reads a cell that begins with `=`, `+`, `-` or `@` as a formula (and a leading tab or carriage
return can hide one), so a provider's field, a donor's name or a message like `=HYPERLINK(…)` would run on a
finance officer's machine. Such a text cell is written with a leading apostrophe, which spreadsheets show as
text. Numbers are left alone: a Decimal or int, and a text cell that is nothing but a signed number (a refund's
`-5000.00`), cannot be a formula, and finance must be able to add them up.
"""

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return f"'{value}"
    return value


class SafeCsvWriter:
    """csv.writer, with every cell passed through safe_cell."""

    def __init__(self, stream: Any, **kwargs: Any):
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
