"""Numbers as instrument software writes them.

Vendor exports mix numbers with range markers. Seen in real xPONENT, Bio-Plex Manager and
MSD Discovery Workbench files: ``< 0.105`` / ``> 5850`` (outside the standard range, the
number is the bound), ``OOR <`` / ``OOR >`` (out of range, no number), ``*1.55``
(extrapolated beyond the standards), ``***`` / ``---`` / ``NaN`` / empty (no value), and
numbers re-saved by Excel in scientific notation (``1.30013E+12``).
"""

from __future__ import annotations

import math
import re

__all__ = ["VENDOR_FLAGS", "parse_vendor_value"]

#: The flag vocabulary of :func:`parse_vendor_value`.
VENDOR_FLAGS = ("below_range", "above_range", "extrapolated", "missing")

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_vendor_value(text: object) -> tuple[float, str | None]:
    """Return ``(value, flag)`` for one cell of a vendor export.

    ``value`` is NaN when the cell holds no number; ``flag`` is one of
    :data:`VENDOR_FLAGS` or ``None`` for a plain number.

    >>> parse_vendor_value("< 0.105")
    (0.105, 'below_range')
    >>> parse_vendor_value("*1.55")
    (1.55, 'extrapolated')
    >>> parse_vendor_value("OOR >")
    (nan, 'above_range')
    """
    if text is None:
        return math.nan, "missing"
    if isinstance(text, (int, float)):
        value = float(text)
        return (value, None) if math.isfinite(value) else (math.nan, "missing")
    s = (
        str(text).strip().replace(",", "")
        if str(text).count(",") and "." in str(text)
        else str(text).strip()
    )
    if s == "" or s.upper() in {"NAN", "***", "---", "N/A", "NA", "NONE", "<NONE>"}:
        return math.nan, "missing"
    upper = s.upper()
    if upper.startswith("OOR"):
        rest = upper[3:].strip()
        return math.nan, "below_range" if rest.startswith("<") else "above_range"
    flag = None
    if s[0] in "<>":
        flag = "below_range" if s[0] == "<" else "above_range"
        s = s[1:].strip()
    elif s[0] == "*":
        flag = "extrapolated"
        s = s[1:].strip()
    if _NUMBER.match(s):
        return float(s), flag
    return math.nan, "missing" if flag is None else flag
