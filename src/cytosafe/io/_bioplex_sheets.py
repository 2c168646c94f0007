"""The cells and tables of a Bio-Rad Bio-Plex Manager report, shared by its two layouts.

:mod:`cytosafe.io.bioplex` reads the report with one sheet per analyte and
:mod:`cytosafe.io.bioplex_wide` the one with every analyte on one sheet; both build on the
worksheet, cell and table types here, so neither imports the other's internals.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

_HEADER_LINE = re.compile(r"^\s*([^:]{1,60}?)\s*:\s*(.*?)\s*$")


# Header cells of the data table, normalised (lower case, single spaces) -> field name.
_COLUMNS = {
    "analyte": "Analyte",
    "type": "Type",
    "well": "Well",
    "outlier": "Outlier",
    "description": "Description",
    "fi": "FI",
    "fi - bkgd": "FI - Bkgd",
    "std dev": "Std Dev",
    "%cv": "%CV",
    "obs conc": "Obs Conc",
    "exp conc": "Exp Conc",
    "dilution": "Dilution",
    "bead count": "Bead Count",
    "beadcount": "Bead Count",
    "count": "Bead Count",
    "sampling errors": "Sampling Errors",
}


@dataclass
class _Sheet:
    """One worksheet as plain cell values; ``rows[i]`` is sheet row ``i + 1``."""

    name: str
    rows: list[list[object]]


def _text(value: object) -> str:
    """A cell as stripped text; whole numbers without '.0' (Excel stores IDs as floats)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


_SPACES = re.compile(r"\s+")


def _norm(value: object) -> str:
    if value is None:  # most cells of a sheet: no text to normalise
        return ""
    return _SPACES.sub(" ", _text(value)).lower()


def _is_empty(row: list[object]) -> bool:
    return all(v is None or _text(v) == "" for v in row)


@dataclass
class _Block:
    """One data table: its header row, the column of each field, and its data rows."""

    header_row: int
    columns: dict[str, int]
    units: dict[str, str]
    rows: list[tuple[int, list[object]]] = field(default_factory=list)
    #: For a table made from a one-sheet report (:mod:`cytosafe.io.bioplex_wide`): row ->
    #: data type -> the sheet row its value is on (errors name that row).
    field_rows: dict[int, dict[str, int]] = field(default_factory=dict)
    #: Header cells of a per-analyte table the reader does not know: column -> text.
    unread: dict[int, str] = field(default_factory=dict)

    @property
    def is_summary(self) -> bool:
        """A replicate-group table lists several wells in at least one row."""
        col = self.columns["Well"]
        return any(
            len(_split_wells(vals[col] if col < len(vals) else None)) > 1 for _, vals in self.rows
        )


@dataclass
class _AnalyteSheet:
    """A parsed Bio-Plex analyte sheet."""

    name: str
    header: dict[str, tuple[str, int]]  # header-line key (lower case) -> (value, row)
    blocks: list[_Block]
    footer: dict[str, tuple[str, int]]  # "regression type" / "std. curve" / "fitprob"
    #: The analyte's name without its bead region, unless another sheet's analyte of
    #: another region has the same name (set by :func:`_analyte_sheets`).
    analyte: str = ""
    region: float = math.nan

    @property
    def analyte_text(self) -> str:
        if "analyte" in self.header and self.header["analyte"][0]:
            return self.header["analyte"][0]
        for block in self.blocks:
            col = block.columns.get("Analyte")
            for _, vals in block.rows:
                if col is not None and col < len(vals) and _text(vals[col]):
                    return _text(vals[col])
        return self.name


_DASH = re.compile(r"\s*-\s*")


def _where_sheet(path: Path, sheet: str) -> str:
    # InputError has no 'sheet' part; naming it next to the file keeps one location.
    return f"{path} (sheet '{sheet}')"


def _column_letter(index: int) -> str:
    """A 0-based column index as Excel names it: 0 -> 'A', 26 -> 'AA' (openpyxl's)."""
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _split_wells(value: object) -> list[str]:
    return [w for w in re.split(r"[,;\s]+", _text(value)) if w]
