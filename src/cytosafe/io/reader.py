"""The reader contract: what every reader module provides, and the steps every read ends with.

A *reader* is a module (like a grading scale of :mod:`cytosafe.clinical.scales`) with:

``NAME`` : str
    The format's name in :data:`cytosafe.io.READERS` and ``read(path, format=NAME)``.
``DESCRIPTION`` : str
    One line naming the exports it takes (used in error messages and ``--help``).
``sniff(probe) -> bool``
    Whether the file looks like this format, from a :class:`Probe` of it (its first bytes,
    first text lines and, for workbooks, its sheets' first rows). It never raises for a
    file of another format and reads nothing beyond the probe.
``parse(path, *, study_id=None, plate_id=None, standard_unit=None, **options) -> DataFrame``
    The *raw* measurement table: the schema's columns the file holds, with
    ``source_file`` / ``source_row`` where the file has lines, and the reader's extras;
    not yet validated. The three keyword options mean the same for every reader, and
    ``None`` always means "what the file says" (``standard_unit``: the file's own unit,
    pg/mL when it states none). Concentrations are given in their stored unit with
    ``concentration_unit`` naming it (:func:`~cytosafe.schema.units.analyte_unit`: mass
    units in pg/mL, arbitrary units as written). A reader may take further keyword
    options of its own.
    Everything wrong in the file is an :class:`~cytosafe.errors.InputError` naming the
    file, the row (or well) and the field.

and, where the vendor layout has one, a writer beside the reader:

``write(measurements, path, **options) -> Path``
    The measurement table in the vendor's layout; ``parse`` of its output gives back the
    values of the measurement columns.
``SUFFIXES`` : tuple of str, optional
    File name endings of the format, the writer's first (the contract test names the files
    it writes with it).

Optional hooks:

``refuse(probe) -> (message, remedy) | None``
    For a file no reader takes: whether it is a related format of this vendor that the
    reader does not read (e.g. MSD's raw instrument plate file), with why and what to
    export instead, so that :func:`cytosafe.io.read` names it instead of listing every
    format.
``check(table) -> None``
    A reader's own checks of the joined table, with clearer messages than the schema's
    (e.g. xPONENT names its *Standard Expected Concentration* block); run by
    :func:`finish` before validation.

:func:`finish` does the closing steps once for every reader -- provenance, the sample-map
join, the reader's check, validation, then the warnings the reader left in
``attrs["warnings"]`` -- so that :func:`cytosafe.io.read`, the ``read_<vendor>`` functions
and :func:`cytosafe.io.read_plate` end the same way.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.errors import DataWarning, InputError
from cytosafe.io._text import decode_text, short_error
from cytosafe.io.samples import join_sample_map
from cytosafe.schema.measurements import validate_measurements

__all__ = [
    "OLE2_MAGIC",
    "PROBE_BYTES",
    "PROBE_LINES",
    "ZIP_MAGIC",
    "Probe",
    "finish",
    "names_file",
    "prepare",
    "select_plate",
]

#: The signature of a BIFF8 ``.xls`` (and any other OLE2 compound file).
OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
#: The signature of a zip archive, hence of an ``.xlsx`` workbook.
ZIP_MAGIC = b"PK\x03\x04"
#: How much of a file a probe holds: bytes, text lines, rows of each workbook sheet.
PROBE_BYTES = 65536
PROBE_LINES = 80
PROBE_SHEET_ROWS = 40


@dataclass(frozen=True)
class Probe:
    """What readers see of a file to recognise it.

    Attributes
    ----------
    path : Path
        The file.
    head : bytes
        Its first :data:`PROBE_BYTES` bytes.
    lines : tuple of str
        Its first :data:`PROBE_LINES` lines, decoded from its first bytes by
        :func:`cytosafe.io._text.decode_text` (UTF-8 with or without a byte-order mark,
        UTF-16, Windows-1252), without line endings; empty for a workbook.
    """

    path: Path
    head: bytes
    lines: tuple[str, ...]

    @classmethod
    def of(cls, path: str | Path) -> Probe:
        """Probe ``path``; a missing or unreadable file is an :class:`InputError`."""
        path = Path(path)
        if not path.is_file():
            raise InputError("file not found", file=str(path))
        try:
            with path.open("rb") as fh:
                head = fh.read(PROBE_BYTES)
        except OSError as exc:
            raise InputError(f"cannot be read: {exc}", file=str(path)) from None
        lines: tuple[str, ...] = ()
        if not head.startswith((OLE2_MAGIC, ZIP_MAGIC)):
            text = decode_text(head, file=str(path), partial=len(head) == PROBE_BYTES)
            lines = tuple(text.splitlines()[:PROBE_LINES])
        return cls(path, head, lines)

    @property
    def is_ole2(self) -> bool:
        """An OLE2 compound file: a BIFF8 ``.xls`` workbook."""
        return self.head.startswith(OLE2_MAGIC)

    @property
    def is_xlsx(self) -> bool:
        """A zip archive: an ``.xlsx`` workbook."""
        return self.head.startswith(ZIP_MAGIC)

    @property
    def first_line(self) -> str:
        """The first text line, stripped (empty for a workbook or an empty file)."""
        return self.lines[0].strip() if self.lines else ""

    @cached_property
    def sheets(self) -> dict[str, list[tuple[object, ...]]]:
        """For an ``.xlsx`` workbook: sheet name -> its first rows of cell values.

        Read once, on first use (text files and ``.xls`` give ``{}``); a damaged workbook
        is an :class:`InputError`.
        """
        if not self.is_xlsx:
            return {}
        import openpyxl

        book = None
        try:
            book = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
            # Read-only sheets are parsed while their rows are read: a damaged sheet's
            # XML fails here, not in load_workbook.
            return {
                sheet.title: list(sheet.iter_rows(max_row=PROBE_SHEET_ROWS, values_only=True))
                for sheet in book.worksheets
            }
        except Exception as exc:  # zipfile, XML, KeyError, ...: a damaged workbook
            raise InputError(
                f"cannot be opened as an Excel workbook: {short_error(exc)}", file=str(self.path)
            ) from None
        finally:
            if book is not None:
                book.close()


def names_file(parse: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
    """Decorate a reader's ``parse(path, ...)``: an :class:`InputError` that does not name
    its file gets ``path`` (a cell parser deep in a reader knows the row, not the file)."""

    @functools.wraps(parse)
    def wrapper(path, *args, **kwargs):
        try:
            return parse(path, *args, **kwargs)
        except InputError as exc:
            if exc.file is None and isinstance(path, (str, Path)):
                raise exc.located(file=str(path)) from None
            raise

    return wrapper


def _caller_stacklevel() -> int:
    """The stack level of the first frame outside ``cytosafe.io`` (for warnings)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("cytosafe.io"):
        frame = frame.f_back
        level += 1
    return level


def prepare(
    table: pd.DataFrame,
    *,
    source: str | Path,
    sample_map: pd.DataFrame | str | Path | None = None,
    map_source: str | None = None,
    check: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[pd.DataFrame, dict, list[str]]:
    """The steps of :func:`finish` before validation: provenance, sample map, checks.

    For a caller that validates the tables of many files as one
    (:func:`cytosafe.quantification.load_measurements`: validating nine MSD plates one by
    one cost 0.16 s of CPU, all of them at once 0.05 s). Parameters as :func:`finish`.

    Returns
    -------
    tuple
        The table (a copy, without ``attrs``), the reader's ``attrs`` without
        ``"warnings"``, and the messages of ``attrs["warnings"]``, not yet issued.
    """
    source = str(source)
    attrs = dict(table.attrs)
    pending = list(attrs.pop("warnings", ()))
    table = table.copy()
    table.attrs = {}
    # Provenance: every row names its file; a reader without lines leaves rows empty.
    if "source_file" not in table.columns:
        table["source_file"] = source
    else:
        missing = table["source_file"].isna()
        if missing.any():
            table["source_file"] = table["source_file"].astype(object).where(~missing, source)
    if "source_row" not in table.columns:
        table["source_row"] = np.nan
    if sample_map is not None:
        table = join_sample_map(table, sample_map, source=map_source)
    if check is not None:
        check(table)
    return table, attrs, pending


def finish(
    table: pd.DataFrame,
    *,
    source: str | Path,
    sample_map: pd.DataFrame | str | Path | None = None,
    map_source: str | None = None,
    check: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """The closing steps of every read: provenance, sample map, checks, validation, warnings.

    Parameters
    ----------
    table : pandas.DataFrame
        A reader's raw table (``parse``); its ``attrs`` are kept, except ``"warnings"``.
    source : str or Path
        The file read: ``source_file`` of rows that do not name one, and the file of
        error messages.
    sample_map : DataFrame or path, optional
        Culture metadata joined by :func:`cytosafe.io.samples.annotate`'s rules before
        validation, so that a map may also supply what the export lacks (a standard's
        concentration, a sample type).
    map_source : str, optional
        The map's file for its error messages (default: the map's own ``attrs``).
    check : callable, optional
        The reader's own checks of the joined table (its ``check``), before validation.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~cytosafe.schema.measurements.validate_measurements`, with the
        reader's ``attrs``. Then each message of ``attrs["warnings"]`` is issued as a
        :class:`~cytosafe.errors.DataWarning` (only a table that reads gets them).
    """
    table, attrs, pending = prepare(
        table, source=source, sample_map=sample_map, map_source=map_source, check=check
    )
    table = validate_measurements(table, source=str(source))
    table.attrs = attrs
    level = _caller_stacklevel()
    for message in pending:
        warnings.warn(message, DataWarning, stacklevel=level)
    return table


def select_plate(table: pd.DataFrame, plate_id: str | None, *, file: str) -> pd.DataFrame:
    """The ``plate_id`` option of a reader whose files may hold several named plates.

    ``None`` keeps the file's plates. Otherwise a file of one plate has it renamed
    ``plate_id``, and a file of several keeps the plate called ``plate_id`` (the rule of
    the ASM reader); naming none of several is an :class:`InputError` listing them.
    """
    if plate_id is None:
        return table
    if "plate_id" not in table.columns:
        return table.assign(plate_id=plate_id)
    plates = list(dict.fromkeys(table["plate_id"].astype(str)))
    if plate_id in plates:
        return table[table["plate_id"].astype(str) == plate_id].reset_index(drop=True)
    if len(plates) <= 1:
        return table.assign(plate_id=plate_id)
    raise InputError(
        f"the file holds {len(plates)} plates, none called '{plate_id}'",
        file=file,
        field="plate_id",
        expected="one of " + ", ".join(plates),
    )
