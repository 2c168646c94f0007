"""Downloads of an analysis: one Excel workbook, the report as PDF, a Prism table.

* **Workbook** (``/analyses/{id}/workbook.xlsx``, ``/api/analyses/{id}/workbook.xlsx``):
  one ``.xlsx`` per analysis, written with openpyxl. The first sheet, *About*, says what
  the workbook is: the study, the analysis (id, version, kind, status), the CytoSafe
  version, every setting, the input files with their SHA-256, the plates, each table's
  SHA-256 as stored, and the signature manifest when the analysis is signed (the
  ``signatures`` table; else the sign-off recorded on the analysis). Then one sheet per
  stored table, named after it (at most 31 characters, unique, as Excel requires), with
  the unit of each column in its header (``concentration (pg/mL)``; :func:`column_unit`).
  Numbers stay numbers, a missing value is an empty cell, times are Excel date-times in
  UTC (the header says so).
* **Report PDF** (``/analyses/{id}/report.pdf``, ``/api/analyses/{id}/report.pdf``): the
  analysis's latest report printed by the report layer's own writer
  (:func:`cytosafe.report.hazard.write_hazard_pdf`, headless Chromium, every figure
  drawn). The PDF is kept per SHA-256 of the report (:class:`PdfCache`), so the second
  request is served at once.
* **Prism table** (``/analyses/{id}/prism.csv``, ``/api/analyses/{id}/prism.csv``, and a
  sheet of the workbook): the concentration-response of every donor, laid out for
  GraphPad Prism (:func:`prism_table`).

``download_links`` (a Jinja global of the pages) lists these for the ``_downloads.html``
block of the analysis page; they are reads, so a signed-off analysis has them all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from cytosafe.store import Analysis, AnalysisTable, Plate, Report, Store, Study, User, decode_table
from cytosafe.store.models import AnalysisPlate, Signature
from cytosafe.web.deps import StoreDep, Viewer, get_analysis, not_found
from cytosafe.web.pages import page, signed_in, templates

__all__ = [
    "PRISM_LAYOUT",
    "PdfCache",
    "analysis_workbook",
    "column_unit",
    "download_links",
    "prism_table",
    "report_pdf",
    "router",
    "sheet_names",
]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The Prism data-table layout :func:`prism_table` fills (Prism's own words).
PRISM_LAYOUT = "XY table, Y: enter replicate values in side-by-side subcolumns (one per donor)"
#: Excel's limits: sheet names (31 characters, none of ``[]:*?/\\``), rows, cell text.
SHEET_NAME_MAX = 31
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_TEXT = 32_767

# --- units ----------------------------------------------------------------------------------

# Columns in the analyte's concentration unit (the table's ``concentration_unit``).
_CONCENTRATION_COLUMNS = {
    "concentration",
    "concentration_in_well",
    "ci_low",
    "ci_high",
    "lloq",
    "uloq",
    "lod",
    "standard_concentration",
    "nominal",
    "back_calculated",
    "min_standard",
    "max_standard",
    "test_concentration",
    "control_concentration",
    "test_lloq",
    "difference",
    "bottom",
    "top",
}
# Columns in the test article's unit (the table's ``treatment_unit``): its concentration
# and the potency estimates on that axis.
_TREATMENT_COLUMNS = {"treatment_concentration", "min_tested", "max_tested", "midpoint"}
_ECX = re.compile(r"^ec\d+(_ci_low|_ci_high)?$")
_PERCENT = {
    "cv",
    "blank_cv",
    "max_standard_cv",
    "median_sample_cv",
    "replicate_cv",
    "recovery",
    "median_recovery",
    "percent",
    "percent_of_positive",
    "median_percent_of_positive",
    "ecx_percent",
    "spo2",
}
_FIXED = {
    "temperature_c": "°C",
    "systolic_bp": "mmHg",
    "oxygen_flow": "L/min",
    "body_weight_kg": "kg",
}


def column_unit(
    column: str, frame: pd.DataFrame, fallback: dict[str, str | None] | None = None
) -> str | None:
    """The unit of ``column`` of a stored table, for its header (None: it has none).

    Concentrations take the table's ``concentration_unit`` and test-article
    concentrations and ECx its ``treatment_unit`` when the table has one value there
    (else the analysis's, ``fallback``; several values: the header points to the unit
    column); hours (``*_h``, ``*_hours``), percentages (CVs, recoveries) and shares
    (``share_*``, ``*_fraction``: 0-1) are named by the column itself.
    """
    fallback = fallback or {}

    def from_column(unit_column: str) -> str | None:
        if unit_column in frame.columns:
            values = {str(v) for v in frame[unit_column].dropna().unique() if str(v)}
            if len(values) == 1:
                return values.pop()
            if len(values) > 1:
                return f"unit: see {unit_column}"
        return fallback.get(unit_column)

    if column in _CONCENTRATION_COLUMNS and (
        "concentration_unit" in frame.columns or column not in ("ci_low", "ci_high", "difference")
    ):
        return from_column("concentration_unit")
    if column in _TREATMENT_COLUMNS or _ECX.match(column):
        return from_column("treatment_unit")
    if column in _FIXED:
        return _FIXED[column]
    if column in _PERCENT:
        return "%"
    if column == "hours" or column.startswith("hours_") or column.endswith(("_h", "_hours")):
        return "h"
    if column.startswith("share_") or column.endswith("fraction"):
        return "fraction 0-1"
    return None


def _header(column: str, series: pd.Series, unit: str | None) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return f"{column} (UTC)"
    return f"{column} ({unit})" if unit else column


# --- cells ----------------------------------------------------------------------------------


def _utc(series: pd.Series) -> pd.Series:
    """Times as naive UTC (Excel has no zones); stored naive times are UTC already."""
    if getattr(series.dt, "tz", None) is not None:
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def _cells(frame: pd.DataFrame) -> list[list[Any]]:
    """The rows of ``frame`` as Python values openpyxl writes as they are: numbers as
    numbers, missing (NaN, NaT, NA) as None, times as datetimes, the rest as text."""
    columns = []
    for name in frame.columns:
        s = frame[name]
        if pd.api.types.is_datetime64_any_dtype(s):
            s = _utc(s)
            values = [None if pd.isna(v) else v.to_pydatetime() for v in s]
        elif pd.api.types.is_bool_dtype(s):
            values = [None if pd.isna(v) else bool(v) for v in s]
        elif pd.api.types.is_integer_dtype(s):
            values = [None if pd.isna(v) else int(v) for v in s]
        elif pd.api.types.is_float_dtype(s):
            values = [None if not math.isfinite(v) else float(v) for v in s.astype(float)]
        else:
            values = [_text(v) for v in s]
        columns.append(values)
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _text(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= EXCEL_MAX_TEXT else text[: EXCEL_MAX_TEXT - 20] + " … (truncated)"


def sheet_names(names: list[str]) -> list[str]:
    """Excel sheet names for ``names``: forbidden characters replaced, at most 31
    characters, unique regardless of case (Excel compares them so)."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = re.sub(r"[\[\]:*?/\\]", "_", str(name)).strip("'") or "table"
        candidate = base[:SHEET_NAME_MAX]
        n = 1
        while candidate.lower() in seen:
            n += 1
            suffix = f" ({n})"
            candidate = base[: SHEET_NAME_MAX - len(suffix)] + suffix
        seen.add(candidate.lower())
        out.append(candidate)
    return out


# --- Prism ----------------------------------------------------------------------------------

_ROLE_ORDER = {
    "negative_control": 0,
    "vehicle": 1,
    "isotype_control": 2,
    "positive_control": 3,
    "test": 4,
}


def _natural(text: Any) -> tuple:
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t.lower())
        for t in re.split(r"(\d+)", str(text))
        if t
    )


def prism_table(samples: pd.DataFrame | None) -> pd.DataFrame | None:
    """The concentration-response of every donor, one column per donor, laid out for
    GraphPad Prism.

    Rows are grouped per analyte (then assay format and incubation), and within a group
    one row per treatment x concentration (controls first, then the test articles, each
    by rising concentration). The columns are ``analyte``, ``assay_format``,
    ``incubation_h``, ``treatment``, ``treatment_role``, ``treatment_concentration
    (<unit>)`` -- the X column -- and one column per donor, ``<donor> (<unit>)``, holding
    the donor's back-calculated cytokine concentration (the ``concentration`` of the
    ``samples`` table: the mean over replicate wells, as stored; a donor measured on
    more than one plate for the same row gets the mean over those plates). A missing
    value is an empty cell. Returns None when there are no sample rows.

    This is Prism's **XY table with replicate Y values in side-by-side subcolumns**
    (:data:`PRISM_LAYOUT`): in Prism, *New Data Table > XY*, X "Numbers", Y "Enter N
    replicate values in side-by-side subcolumns" with N the number of donors. Copy the
    rows of one analyte and test article, from the ``treatment_concentration`` column to
    the last donor column, and paste them into the first X cell; each data set (Y column)
    is then one test article and each subcolumn one donor, so that Prism's nonlinear
    regression fits the donors as replicates (or, with *Fit each replicate separately*,
    each donor on its own). Control rows have no concentration (an empty X): paste them
    into a column table instead, or leave them out.
    """
    if samples is None or samples.empty:
        return None
    s = samples
    if "sample_type" in s.columns:
        s = s[s["sample_type"].astype(str) == "sample"]
    needed = {"analyte", "treatment", "donor_id", "concentration"}
    if s.empty or not needed <= set(s.columns):
        return None
    keys = ["analyte", "assay_format", "incubation_h", "treatment", "treatment_role"]
    keys = [k for k in keys if k in s.columns]
    s = s.assign(
        **{k: s[k].astype(object).where(s[k].notna(), "") for k in keys if k != "incubation_h"},
        treatment_concentration=pd.to_numeric(
            s.get("treatment_concentration", pd.Series(index=s.index, dtype=float)),
            errors="coerce",
        ),
        donor_id=s["donor_id"].astype(object).where(s["donor_id"].notna(), "no donor"),
        concentration=pd.to_numeric(s["concentration"], errors="coerce"),
    )
    index = [*keys, "treatment_concentration"]
    # groupby keeps rows without a concentration (controls) and, unlike pivot_table
    # with dropna=False, does not build every combination of the keys.
    means = s.groupby([*index, "donor_id"], dropna=False, observed=True, sort=False)
    wide = means["concentration"].mean().unstack("donor_id").dropna(how="all")
    donors = sorted(wide.columns, key=_natural)
    wide = wide[donors].reset_index()
    order = sorted(
        range(len(wide)),
        key=lambda i: (
            _natural(wide.at[i, "analyte"]),
            *(
                _natural(wide.at[i, k]) if k != "incubation_h" else (wide.at[i, k],)
                for k in ("assay_format", "incubation_h")
                if k in wide.columns
            ),
            _ROLE_ORDER.get(str(wide.at[i, "treatment_role"]), 9)
            if "treatment_role" in wide.columns
            else 0,
            _natural(wide.at[i, "treatment"]),
            math.inf
            if pd.isna(wide.at[i, "treatment_concentration"])
            else wide.at[i, "treatment_concentration"],
        ),
    )
    wide = wide.iloc[order].reset_index(drop=True)
    treatment_unit = column_unit("treatment_concentration", s)
    conc_unit = column_unit("concentration", s)
    rename = {"treatment_concentration": _header("treatment_concentration", s, treatment_unit)}
    rename |= {d: f"{d} ({conc_unit})" if conc_unit else str(d) for d in donors}
    wide.columns.name = None
    return wide.rename(columns=rename)


# --- workbook -------------------------------------------------------------------------------


def _flatten(settings: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Settings as (dotted key, value) rows; lists of plain values joined, others JSON."""
    if isinstance(settings, dict):
        rows: list[tuple[str, Any]] = []
        for k, v in settings.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(settings, list):
        if all(isinstance(v, str | int | float | bool) or v is None for v in settings):
            return [(prefix, ", ".join("" if v is None else str(v) for v in settings))]
        return [(prefix, json.dumps(settings, default=str, ensure_ascii=False))]
    return [(prefix, settings)]


def _analysis_record(store: Store, analysis_id: int) -> dict:
    """What the About sheet says, read in one session."""
    with store.reader() as session:
        analysis = session.get(Analysis, analysis_id)
        study = session.get(Study, analysis.study_id)

        def username(user_id):
            if user_id is None:
                return None
            u = session.get(User, user_id)
            return None if u is None else (u.display_name or u.username)

        plates = session.execute(
            select(Plate.code, Plate.source_file, Plate.measurements_sha256)
            .join(AnalysisPlate, AnalysisPlate.plate_id == Plate.id)
            .where(AnalysisPlate.analysis_id == analysis_id)
            .order_by(Plate.code)
        ).all()
        tables = session.scalars(
            select(AnalysisTable)
            .where(AnalysisTable.analysis_id == analysis_id)
            .order_by(AnalysisTable.id)
        ).all()
        signatures = session.scalars(
            select(Signature).where(Signature.analysis_id == analysis_id).order_by(Signature.id)
        ).all()
        return {
            "study": study.code,
            "study_title": study.title,
            "id": analysis.id,
            "version": analysis.version,
            "kind": analysis.kind,
            "status": analysis.status,
            "cytosafe_version": analysis.cytosafe_version,
            "created_by": username(analysis.created_by_id),
            "created_at": analysis.created_at,
            "signed_off_by": username(analysis.signed_off_by_id),
            "signed_off_at": analysis.signed_off_at,
            "settings": analysis.settings or {},
            "inputs": list(analysis.inputs or []),
            "plates": [tuple(p) for p in plates],
            "tables": [(t.name, t.n_rows, t.sha256) for t in tables],
            "signatures": [
                {
                    "signed by": username(s.user_id),
                    "meaning": s.meaning,
                    "signed at (UTC)": s.signed_at,
                    "comment": s.comment,
                    "SHA-256 signed": s.signed_sha256,
                }
                for s in signatures
            ],
        }


def _stored_tables(store: Store, analysis_id: int) -> list[tuple[str, pd.DataFrame]]:
    with store.reader() as session:
        rows = session.scalars(
            select(AnalysisTable)
            .where(AnalysisTable.analysis_id == analysis_id)
            .order_by(AnalysisTable.id)
        ).all()
        return [(r.name, decode_table(r.content)) for r in rows]


def _simulated(record: dict) -> bool:
    words = json.dumps(record["settings"], default=str) + str(record["study_title"] or "")
    return "SIMULATED" in words.upper()


class _Workbooks:
    """Workbooks already written, per content of what they hold (at most ``size``): the
    record of the About sheet (status, signatures, each table's SHA-256 ...) as JSON."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._books: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._books.get(key)

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._books[key] = body
            while len(self._books) > self.size:
                self._books.popitem(last=False)


_WORKBOOKS = _Workbooks()


def analysis_workbook(store: Store, analysis_id: int) -> bytes:
    """The analysis's workbook (``.xlsx`` bytes): About, then the Prism table (when the
    analysis has samples), then one sheet per stored table (module notes).

    Writing a hazard study's half a million cells takes openpyxl seconds, so a workbook
    is kept per content (:class:`_Workbooks`): the same record gives the same bytes.
    """
    record = _analysis_record(store, analysis_id)
    key = json.dumps(record, default=str, sort_keys=True)
    body = _WORKBOOKS.get(key)
    if body is None:
        body = _write_workbook(record, _stored_tables(store, analysis_id))
        _WORKBOOKS.put(key, body)
    return body


def _write_workbook(record: dict, tables: list[tuple[str, pd.DataFrame]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    fallback: dict[str, str | None] = {}
    for unit_column in ("concentration_unit", "treatment_unit"):
        values = {
            str(v)
            for _, frame in tables
            if unit_column in frame.columns
            for v in frame[unit_column].dropna().unique()
            if str(v)
        }
        fallback[unit_column] = values.pop() if len(values) == 1 else None
    samples = next((f for n, f in tables if n == "samples"), None)
    prism = prism_table(samples)
    sheets = [("About", None)]
    if prism is not None:
        sheets.append(("Prism conc-response", prism))
    sheets += tables
    names = sheet_names([n for n, _ in sheets])

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    title_font = Font(bold=True, size=14)

    def cell(ws, value, font=None, number_format=None):
        c = WriteOnlyCell(ws, value=value)
        if font is not None:
            c.font = font
        if number_format:
            c.number_format = number_format
        return c

    when = "yyyy-mm-dd hh:mm:ss"
    about = wb.create_sheet(names[0])
    about.column_dimensions["A"].width = 34
    about.column_dimensions["B"].width = 80
    for col in "CDE":
        about.column_dimensions[col].width = 24

    def row(*values, font=None):
        about.append(
            [
                cell(about, _text(v), font, when if isinstance(v, dt.datetime) else None)
                for v in values
            ]
        )

    def naive(value):
        return _text(value) if isinstance(value, dt.datetime) else value

    title = f"CytoSafe {record['kind']} analysis {record['id']} · study {record['study']}"
    if _simulated(record):
        title += " · SIMULATED data"
    row(title, font=title_font)
    row("Study", record["study"])
    row("Study title", record["study_title"])
    row("Analysis id", record["id"])
    row("Version", record["version"])
    row("Kind", record["kind"])
    row("Status", record["status"].replace("_", " "))
    row("CytoSafe version", record["cytosafe_version"])
    row("Created by", record["created_by"])
    row("Created at (UTC)", naive(record["created_at"]))
    row(
        "Units",
        "in each column header, in brackets; times are UTC; an empty cell is a missing value",
    )
    row()
    row("Signatures", font=bold)
    if record["signatures"]:
        row(*record["signatures"][0].keys(), font=bold)
        for s in record["signatures"]:
            row(*(naive(v) for v in s.values()))
    elif record["signed_off_by"]:
        row("signed off by", record["signed_off_by"])
        row("signed off at (UTC)", naive(record["signed_off_at"]))
    else:
        row("not signed")
    row()
    row("Input files", font=bold)
    row("file", "SHA-256", "bytes", font=bold)
    inputs = [i for i in record["inputs"] if isinstance(i, dict)]
    for i in inputs:
        row(i.get("name") or i.get("file") or i.get("path"), i.get("sha256"), i.get("bytes"))
    if not inputs:
        row("none recorded")
    if record["plates"]:
        row()
        row("Plates", font=bold)
        row("plate", "source file", "SHA-256 of its measurements", font=bold)
        for code, source, sha in record["plates"]:
            row(code, source, sha)
    row()
    row("Tables (one sheet each)", font=bold)
    row("table", "SHA-256 as stored (Parquet)", "rows", "sheet", font=bold)
    sheet_of = dict(zip([n for n, _ in sheets], names, strict=True))
    for name, n_rows, sha in record["tables"]:
        row(name, sha, n_rows, sheet_of.get(name))
    if prism is not None:
        row("Prism conc-response", f"{PRISM_LAYOUT}; made from the samples table", len(prism))
    row()
    row("Settings", font=bold)
    for key, value in _flatten(record["settings"]):
        row(key, value)

    for (name, frame), sheet in zip(sheets[1:], names[1:], strict=True):
        ws = wb.create_sheet(sheet)
        ws.freeze_panes = "A2"
        truncated = len(frame) > EXCEL_MAX_ROWS - 1
        if truncated:
            frame = frame.iloc[: EXCEL_MAX_ROWS - 2]
        if name == "Prism conc-response":
            headers = list(frame.columns)
        else:
            headers = [_header(c, frame[c], column_unit(c, frame, fallback)) for c in frame.columns]
        for i, h in enumerate(headers):
            letter = _column_letter(i + 1)
            ws.column_dimensions[letter].width = min(max(len(h) + 2, 10), 40)
        ws.append([cell(ws, h, bold) for h in headers])
        dates = [pd.api.types.is_datetime64_any_dtype(frame[c]) for c in frame.columns]
        for values in _cells(frame):
            ws.append(
                [
                    cell(ws, v, number_format=when) if is_date and v is not None else v
                    for v, is_date in zip(values, dates, strict=True)
                ]
            )
        if truncated:
            ws.append([cell(ws, "… truncated: more rows than Excel holds; see the CSV", bold)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _column_letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)


# --- PDF ------------------------------------------------------------------------------------


class PdfCache:
    """PDFs of reports, kept per key (at most ``size``): the SHA-256 of the report's HTML
    and of its signature manifest (:func:`_pdf_key`).

    The same report with the same signatures gives the same PDF, so the key is the
    content: a new report (a new analysis, a re-render) or a new signature has a new key. One report is printed at a time per key;
    two requests for the same report wait for one print.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._pdfs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._printing: dict[str, threading.Lock] = {}

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            pdf = self._pdfs.get(sha256)
            if pdf is not None:
                self._pdfs.move_to_end(sha256)
            return pdf

    def put(self, sha256: str, pdf: bytes) -> None:
        with self._lock:
            self._pdfs[sha256] = pdf
            self._pdfs.move_to_end(sha256)
            while len(self._pdfs) > self.size:
                self._pdfs.popitem(last=False)

    def printing(self, sha256: str) -> threading.Lock:
        with self._lock:
            return self._printing.setdefault(sha256, threading.Lock())

    def clear(self) -> None:
        with self._lock:
            self._pdfs.clear()


PDFS = PdfCache()


def _pdf_key(report_sha256: str, signatures: list[dict], final: bool) -> str:
    """The cache key of a report's PDF: the report's SHA-256 and what its signature
    manifest prints (each signature's id, signer, time, meaning, comment and signed
    digest, and whether the analysis is final), so a PDF printed before a signature is
    never served after it."""
    import hashlib

    printed = [
        [s["id"], s["username"], s["name"], str(s["signed_at"]), s["meaning"], s["comment"],
         s["signed_sha256"]]
        for s in signatures
    ]  # fmt: skip
    if not printed:
        return report_sha256  # no manifest: the report's bytes are what is printed
    body = json.dumps([report_sha256, final, printed], default=str).encode("utf-8")
    return hashlib.sha256(body).hexdigest()


def report_pdf(store: Store, analysis_id: int, cache: PdfCache = PDFS) -> tuple[bytes, str]:
    """The PDF of the analysis's latest report, with its signature manifest at the top
    as the served report has it (:func:`cytosafe.report.signature.with_manifest`, 21 CFR
    11.50(b)), and its cache key (the report's SHA-256 when it is unsigned; see
    :func:`_pdf_key`). 404 when it has no HTML report; 503 when Chromium cannot be started.
    """
    from cytosafe.report.hazard import write_hazard_pdf
    from cytosafe.report.signature import with_manifest
    from cytosafe.store.signatures import list_signatures

    with store.reader() as session:
        analysis = session.get(Analysis, analysis_id)
        report = session.scalars(
            select(Report).where(Report.analysis_id == analysis_id).order_by(Report.id.desc())
        ).first()
        if analysis is None or report is None or not report.media_type.startswith("text/html"):
            raise not_found(f"report of analysis {analysis_id}")
        signatures = list_signatures(session, analysis_id)
        final = analysis.status == "signed_off"
        key = _pdf_key(report.sha256, signatures, final)
        pdf = cache.get(key)
        html = None if pdf is not None else with_manifest(report.content, signatures, final=final)
    if pdf is not None:
        return pdf, key
    with cache.printing(key):
        pdf = cache.get(key)  # printed by the request we waited for
        if pdf is None:
            with tempfile.TemporaryDirectory(prefix="cytosafe-pdf-") as tmp:
                source = Path(tmp) / "report.html"
                source.write_bytes(html)
                try:
                    write_hazard_pdf(source, Path(tmp) / "report.pdf")
                except RuntimeError as exc:
                    raise HTTPException(503, f"cannot print the report to PDF: {exc}") from None
                pdf = (Path(tmp) / "report.pdf").read_bytes()
            cache.put(key, pdf)
    return pdf, key


# --- what the routes send ---------------------------------------------------------------------


def _check(store: Store, user: User, analysis_id: int) -> Analysis:
    with store.reader() as session:
        analysis, _ = get_analysis(session, user, analysis_id)  # 404 when hidden
        return analysis


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _workbook_response(store: Store, user: User, analysis_id: int) -> Response:
    analysis = _check(store, user, analysis_id)
    if analysis.status not in ("completed", "signed_off"):
        raise HTTPException(409, f"analysis {analysis_id} is {analysis.status}: no tables yet")
    body = analysis_workbook(store, analysis_id)
    return Response(
        body, media_type=XLSX, headers=_attachment(f"analysis-{analysis_id}-tables.xlsx")
    )


def _pdf_response(store: Store, user: User, analysis_id: int, download: bool) -> Response:
    _check(store, user, analysis_id)
    pdf, sha = report_pdf(store, analysis_id)
    name = f"analysis-{analysis_id}-report.pdf"
    disposition = "attachment" if download else "inline"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "ETag": f'"{sha}"',
        },
    )


def _prism_response(store: Store, user: User, analysis_id: int) -> Response:
    _check(store, user, analysis_id)
    with store.reader() as session:
        row = session.scalar(
            select(AnalysisTable).where(
                AnalysisTable.analysis_id == analysis_id, AnalysisTable.name == "samples"
            )
        )
        samples = None if row is None else decode_table(row.content)
    table = prism_table(samples)
    if table is None:
        raise not_found(f"concentration-response samples of analysis {analysis_id}")
    body = table.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return Response(
        body,
        media_type="text/csv",
        headers=_attachment(f"analysis-{analysis_id}-prism-concentration-response.csv"),
    )


def download_links(analysis: Any) -> list[dict[str, str]]:
    """The downloads of an analysis (as :func:`cytosafe.web.services.read_analysis`
    gives it) for the ``_downloads.html`` block: label, address, what it is."""
    if analysis is None or getattr(analysis, "status", None) not in ("completed", "signed_off"):
        return []
    a = analysis.id
    names = [t.name for t in analysis.tables]
    links = []
    if names:
        links.append(
            {
                "label": "Excel workbook",
                "href": f"/analyses/{a}/workbook.xlsx",
                "note": "every table, one sheet each, units in the headers; About sheet",
                "kind": "xlsx",
            }
        )
    if "samples" in names:
        links.append(
            {
                "label": "Prism table",
                "href": f"/analyses/{a}/prism.csv",
                "note": "concentration-response, one column per donor (XY, replicates)",
                "kind": "csv",
            }
        )
    if analysis.reports:
        links.append(
            {
                "label": "Report (HTML)",
                "href": f"/analyses/{a}/report?download=true",
                "note": "self-contained, opens offline",
                "kind": "html",
            }
        )
        links.append(
            {
                "label": "Report (PDF)",
                "href": f"/analyses/{a}/report.pdf",
                "note": "printed with every figure drawn; the first print takes a while",
                "kind": "pdf",
            }
        )
    for n in names:
        links.append(
            {
                "label": n,
                "href": f"/analyses/{a}/tables/{n}.csv",
                "note": "CSV",
                "kind": "table",
            }
        )
    return links


# --- routes ---------------------------------------------------------------------------------

router = APIRouter()


@router.get(
    "/api/analyses/{analysis_id}/workbook.xlsx",
    tags=["analyses"],
    responses={200: {"content": {XLSX: {}}, "description": "Every table, one sheet each."}},
)
def api_workbook(analysis_id: int, user: Viewer, store: StoreDep) -> Response:
    """Every table of an analysis as one Excel workbook: an About sheet (study, analysis,
    settings, input files with SHA-256, signatures), the Prism table, one sheet per table
    with units in the headers."""
    return _workbook_response(store, user, analysis_id)


@router.get(
    "/api/analyses/{analysis_id}/report.pdf",
    tags=["analyses"],
    responses={200: {"content": {"application/pdf": {}}, "description": "The report as PDF."}},
)
def api_report_pdf(analysis_id: int, user: Viewer, store: StoreDep) -> Response:
    """The report of an analysis as PDF (headless Chromium; kept per report SHA-256)."""
    return _pdf_response(store, user, analysis_id, download=True)


@router.get(
    "/api/analyses/{analysis_id}/prism.csv",
    tags=["analyses"],
    responses={200: {"content": {"text/csv": {}}, "description": "The Prism XY table."}},
)
def api_prism(analysis_id: int, user: Viewer, store: StoreDep) -> Response:
    """The concentration-response of every donor as a Prism XY table (one column per
    donor, one row per treatment x concentration, grouped per analyte)."""
    return _prism_response(store, user, analysis_id)


def _page_user(request: Request) -> User:
    return signed_in(request)[0]


# The analysis page's _downloads.html block calls this.
templates.env.globals["download_links"] = download_links


@router.get("/analyses/{analysis_id}/workbook.xlsx", include_in_schema=False)
@page
def workbook_page(request: Request, analysis_id: int):
    return _workbook_response(request.app.state.store, _page_user(request), analysis_id)


@router.get("/analyses/{analysis_id}/report.pdf", include_in_schema=False)
@page
def report_pdf_page(request: Request, analysis_id: int, download: bool = False):
    return _pdf_response(request.app.state.store, _page_user(request), analysis_id, download)


@router.get("/analyses/{analysis_id}/prism.csv", include_in_schema=False)
@page
def prism_page(request: Request, analysis_id: int):
    return _prism_response(request.app.state.store, _page_user(request), analysis_id)
