"""Numbers and times as instrument software writes them: shared by the readers and writers.

Vendor exports mix numbers with range markers. Seen in real xPONENT, Bio-Plex Manager and
MSD Discovery Workbench files: ``< 0.105`` / ``> 5850`` (outside the standard range, the
number is the bound), ``OOR <`` / ``OOR >`` (out of range, no number), ``*1.55``
(extrapolated beyond the standards), ``***`` / ``---`` / ``NaN`` / empty (no value), and
numbers re-saved by Excel in scientific notation (``1.30013E+12``).

The writers print numbers with :func:`number_text`, stamp files with
:func:`export_time` and choose the unit of a layout that holds one with
:func:`written_unit`; readers whose instruments may report a signal below zero store it
with :func:`floor_at_zero`.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, date, datetime, time
from typing import Literal

import numpy as np
import pandas as pd

from cytosafe.errors import InputError, UnitError
from cytosafe.schema.units import CONCENTRATION_UNIT, canonical_unit, to_pg_per_ml

__all__ = [
    "VENDOR_FLAGS",
    "cell_text",
    "export_time",
    "floor_at_zero",
    "locale_number_error",
    "looks_like_locale_number",
    "number_text",
    "parse_vendor_value",
    "vendor_value",
    "written_unit",
]

#: The flag vocabulary of :func:`parse_vendor_value`.
VENDOR_FLAGS = ("below_range", "above_range", "extrapolated", "missing")

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# A number written under a decimal-comma locale, or with thousands separators: "0,105",
# "1,234", "1.234,5", "1,234.5", "1 234,5" (issue 14: such a cell is refused, never guessed;
# "1,234" is 1.234 in Germany and 1234 in the US).
_LOCALE_NUMBER = re.compile(r"^[+-]?\d[\d.' \u00a0\u202f]*,[\d.,' \u00a0\u202f]*$")


def locale_number_error(text: str, **where: object) -> InputError:
    """The :class:`~cytosafe.errors.InputError` for a number written with a decimal comma
    or a thousands separator (``where``: file, row, well, field)."""
    return InputError(
        f"'{text}' is written with a decimal comma or a thousands separator, which is "
        "ambiguous ('1,234' is 1.234 or 1234 depending on the locale)",
        expected="numbers with a decimal point and no thousands separator (export with an "
        "English locale, or set the decimal symbol to '.')",
        **where,
    )


def looks_like_locale_number(text: str) -> bool:
    """Whether ``text`` is a number written with a decimal comma or thousands separators."""
    return bool(_LOCALE_NUMBER.match(text.strip()))


def parse_vendor_value(text: object) -> tuple[float, str | None]:
    """Return ``(value, flag)`` for one cell of a vendor export.

    ``value`` is NaN when the cell holds no number; ``flag`` is one of
    :data:`VENDOR_FLAGS` or ``None`` for a plain number. A number written with a decimal
    comma or thousands separators (``0,105``, ``1,234.5``) and a number too large for a
    double (``1e400``) raise an :class:`~cytosafe.errors.InputError` without a location,
    which the reader fills in (:meth:`~cytosafe.errors.InputError.located`): such a cell is
    neither guessed at nor read as "no value" (issue 14).

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
    s = str(text).strip()
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
        value = float(s)
        if not math.isfinite(value):  # 1e400 overflows a double: no measurement is infinite
            raise InputError(f"'{text}' is not a finite number", expected="a finite number")
        return value, flag
    if _LOCALE_NUMBER.match(s):
        raise locale_number_error(str(text).strip())
    return math.nan, "missing" if flag is None else flag


def vendor_value(text: object, **where: object) -> tuple[float, str | None]:
    """:func:`parse_vendor_value` of a cell at ``where`` (file, row, well, field), whose
    errors name it."""
    try:
        return parse_vendor_value(text)
    except InputError as exc:
        raise exc.located(**where) from None


def cell_text(value: object, *, non_finite: str = "", datetime_sep: str = "T") -> str:
    """A spreadsheet cell as the text a CSV export of it would hold.

    Readers of workbooks turn cells into text so that CSV and Excel files take one parsing
    path. Integers (and integral floats below 1e15) lose their ``.0``, other floats keep
    their shortest exact ``repr``, booleans become ``true``/``false``, dates ISO 8601;
    ``non_finite`` stands for NaN and infinities (what the vendor writes for no value).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return non_finite
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=datetime_sep)
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value).strip()


def number_text(
    value: object,
    *,
    missing: str = "NaN",
    notation: Literal["shortest", "positional"] = "shortest",
) -> str:
    """A number as vendor software prints it: integers bare, others exactly.

    Integral values below 1e15 lose their ``.0``; other values are the shortest text that
    reads back to the same float: Python's ``repr`` (``notation="shortest"``, which turns to
    exponents below 1e-4 and from 1e16, as Discovery Workbench's exports re-saved by Excel
    hold them), or never an exponent (``"positional"``, as xPONENT prints). ``None``,
    ``pd.NA``, NaN and infinities are ``missing``.

    >>> number_text(3.0), number_text(1e-05), number_text(1e-05, notation="positional")
    ('3', '1e-05', '0.00001')
    """
    if value is None or value is pd.NA:
        return missing
    x = float(value)
    if not math.isfinite(x):
        return missing
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    if notation == "positional":
        return np.format_float_positional(x, unique=True, trim="-")
    return repr(x)


def export_time() -> datetime:
    """The time a writer stamps on a file: now (local, time-zone aware), or
    ``SOURCE_DATE_EPOCH`` in UTC when set (the reproducible-builds convention,
    https://reproducible-builds.org/specs/source-date-epoch/)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now().astimezone()


def floor_at_zero(table: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Signals below zero as 0.0, and the warning that names their wells.

    The measurement schema stores non-negative signals
    (:mod:`cytosafe.schema.measurements`); a plate reader's optical density below zero (an
    instrument that blanked on another well) or a reference-subtracted difference below
    zero (a well absorbing no more than at the reference wavelength) is kept as 0.0, and
    the message, for ``attrs["warnings"]`` (issued by :func:`cytosafe.io.reader.finish`),
    lists the first wells with their analytes and values.

    Parameters
    ----------
    table : pandas.DataFrame
        With ``well``, ``analyte`` and ``signal``.
    source : str
        The file, which opens the message.

    Returns
    -------
    tuple of (pandas.DataFrame, list of str)
        A copy with the negative signals at 0.0 (``table`` itself when there are none),
        and no message or one.
    """
    negative = (table["signal"] < 0).to_numpy()
    if not negative.any():
        return table, []
    shown = table.loc[negative, ["well", "analyte", "signal"]].head(6)
    listed = ", ".join(f"{w} {a} {s:.4g}" for w, a, s in shown.itertuples(index=False))
    n = int(negative.sum())
    message = (
        f"{source}: {n} reading(s) below zero stored as 0.0 (the schema stores "
        f"non-negative signals): {listed}" + (" ..." if n > len(shown) else "")
    )
    out = table.copy()
    out.loc[negative, "signal"] = 0.0
    return out, [message]


def written_unit(
    table: pd.DataFrame, standard_unit: str | None, *, layout: str, file: str | None = None
) -> tuple[str, float]:
    """The unit a writer writes a validated table's concentrations in, and its factor
    (``written = stored / factor``), for a layout that holds one unit for all analytes.

    A table in pg/mL is written in ``standard_unit`` (default pg/mL; any mass unit). A
    table in an arbitrary unit (IU/mL, ...; :mod:`cytosafe.schema.units`) is written in it,
    unconverted: ``standard_unit`` may only name that unit. A table in several units does
    not fit a layout of one (an :class:`~cytosafe.errors.InputError` naming ``layout``).
    """
    units = sorted(set(table["concentration_unit"].dropna().astype(str)) or {CONCENTRATION_UNIT})
    if units == [CONCENTRATION_UNIT]:
        unit = standard_unit or CONCENTRATION_UNIT
        return canonical_unit(unit, file=file, field="standard_unit"), to_pg_per_ml(
            unit, file=file, field="standard_unit"
        )
    if len(units) > 1:
        raise InputError(
            f"the table holds concentrations in several units ({', '.join(units)}); "
            f"{layout} holds one unit for the whole file",
            file=file,
            field="concentration_unit",
            expected="one file per unit",
        )
    (unit,) = units
    if standard_unit is not None and canonical_unit(standard_unit, field="standard_unit") != unit:
        raise UnitError(
            f"the table's concentrations are in {unit}, an arbitrary unit, which does not "
            f"convert to '{standard_unit}'",
            file=file,
            field="standard_unit",
            expected=f"standard_unit='{unit}' or None",
        )
    return unit, 1.0
