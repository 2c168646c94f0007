"""Plate wells: parsing, normalising and checking well names for 96- and 384-well plates.

Wells are written as a row letter and a 1-based column number. Instruments disagree on
padding (``A1``, ``A01``, ``A001``) and some wrap the well in a location string
(xPONENT's ``1(1,A1)``); CytoSafe stores the zero-padded two-digit form, ``A01``.
"""

from __future__ import annotations

import re

from cytosafe.errors import InputError

__all__ = ["PLATE_FORMATS", "normalize_well", "plate_format_for", "well_index", "well_name"]

#: Plate geometry: wells -> (rows, columns). ANSI/SLAS 4-2004 microplate well positions.
PLATE_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24)}

_WELL = re.compile(r"^\s*([A-Pa-p])\s*0*([0-9]{1,2})\s*$")


def normalize_well(value: object, *, plate_format: int | None = None, **where: object) -> str:
    """Return the well as ``A01``; raise :class:`InputError` naming ``where`` if invalid.

    >>> normalize_well("b7")
    'B07'
    """
    text = "" if value is None else str(value)
    match = _WELL.match(text)
    if not match:
        raise InputError(
            f"'{text}' is not a well name",
            field="well",
            expected="a row letter A-P and a column 1-24, e.g. A01",
            **where,
        )
    row, col = match.group(1).upper(), int(match.group(2))
    n_rows, n_cols = PLATE_FORMATS[plate_format or 384]
    if col < 1 or col > n_cols or (ord(row) - ord("A")) >= n_rows:
        raise InputError(
            f"well '{text}' does not exist on a {plate_format or 384}-well plate",
            field="well",
            expected=f"rows A-{chr(ord('A') + n_rows - 1)}, columns 1-{n_cols}",
            **where,
        )
    return f"{row}{col:02d}"


def well_index(well: str) -> tuple[int, int]:
    """Zero-based (row, column) of a normalised well name."""
    return ord(well[0]) - ord("A"), int(well[1:]) - 1


def well_name(row: int, col: int) -> str:
    """Well name of a zero-based (row, column)."""
    return f"{chr(ord('A') + row)}{col + 1:02d}"


def plate_format_for(wells: list[str] | tuple[str, ...]) -> int:
    """The smallest standard plate (96 or 384) on which all ``wells`` exist."""
    for fmt, (n_rows, n_cols) in sorted(PLATE_FORMATS.items()):
        if all(well_index(w)[0] < n_rows and well_index(w)[1] < n_cols for w in wells):
            return fmt
    return 384
