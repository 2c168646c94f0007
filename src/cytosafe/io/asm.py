"""Plate-reader ELISA exports through the Allotrope Simple Model (ASM).

The Allotrope Simple Model is the JSON form of the Allotrope Foundation's data standard
(https://www.allotrope.org/asm); Benchling's ``allotropy`` package (MIT,
github.com/Benchling-Open-Source/allotropy, PyPI ``allotropy``) converts the exports of
dozens of instruments into it. This module reads

* **ASM JSON** of the *plate reader* technique (manifests ``plate-reader/REC/2024/06``,
  ``REC/2025/03`` and Benchling's ``BENCHLING/2023/09``), as allotropy, CytoSafe's own
  :func:`write` or any other ASM producer writes it; and
* every instrument file allotropy converts to a plate-reader ASM, recognised from its
  content for **Molecular Devices SoftMax Pro** text exports (``##BLOCKS=`` first line,
  plate blocks ``Plate:`` ... ``~End``, "plate" and "time" formats, UTF-16 or UTF-8) and
  **Agilent BioTek Gen5** text exports (``Software Version`` preamble, ``Procedure
  Details``, a ``Results`` grid with one line per read, labelled ``<read>:<wavelength>``
  right of the grid); any other allotropy parser with ``vendor=`` (its ``Vendor`` name,
  e.g. ``"BMG_MARS"``).

into the tidy measurement table (:mod:`cytosafe.schema.measurements`): one row per plate x
well x analyte, ``signal`` the absorbance (optical density, OD) of the well. The layouts
were studied on allotropy's public test exports (``tests/parsers/moldev_softmax_pro/
testdata``, ``tests/parsers/agilent_gen5/testdata/absorbance``); the tests write their own
files in those layouts.

Reading the ASM
---------------
Every *measurement document* of every *plate reader document* is one reading:

* the well is the sample document's ``well location identifier`` when present (MSD
  exports put the spot in ``location identifier``), else its ``location identifier``
  (``A1`` -> ``A01``); the plate is its ``well plate identifier`` (SoftMax Pro: the plate
  name; Gen5: the barcode in the file name, else ``Plate Number``), else the file stem;
* the signal is the measurement's ``absorbance`` (``luminescence`` and ``fluorescence``
  endpoint readings are read too: MSD electrochemiluminescence through allotropy's MSD
  Workbench parser, for instance); kinetic and spectral data cubes are refused;
* the wavelength is the device control document's ``detector wavelength setting``;
* an *error document* whose feature is the signal (``absorbance``, or Gen5's
  ``<read>:<wavelength>`` label) marks the reading invalid: Gen5 writes ``OVRFLW`` for a
  saturated detector and ``MISSED`` for a well not read (allotropy keeps them as errors
  with the value -0.0). An invalid or missing reading in a well that is used is an
  :class:`~cytosafe.errors.InputError` naming the well and the instrument's word;
* ``sample role type`` gives ``sample_type`` (standard, calibration -> ``standard``;
  blank -> ``blank``; control, quality control, validation -> ``control``; anything
  else, and no role, -> ``sample``), ``mass concentration`` gives
  ``standard_concentration`` in its unit (a mass unit converted to pg/mL, an arbitrary
  unit such as IU/mL kept as written and named in ``concentration_unit``; without a unit,
  ``standard_unit``, else pg/mL), ``sample identifier`` gives
  ``sample_id`` unless it is allotropy's placeholder ``"<plate> <well>"``, and the
  ``dilution factor setting`` that allotropy's MSD parser stores with the sample gives
  ``dilution_factor``. Neither SoftMax Pro nor Gen5 exports carry roles or calibrator
  concentrations in a form allotropy maps there, so their wells read as samples: join
  them with a plate map (:func:`read_asm_plate`).

ASM types ``absorbance`` in ``mAU``; allotropy stores the OD that SoftMax Pro and Gen5
display under that unit unchanged, and so does :func:`write`, so the signal is the OD the
instrument software showed.

Wavelengths and the reference subtraction
-----------------------------------------
A TMB/HRP ELISA is read at 450 nm after the acid stop; a second read at 540-650 nm
measures the optical imperfections of the plate, and the reference reading is subtracted
from the measurement reading well by well. Kit manuals say so in these words: "Measure
absorbance on an ELISA plate reader set at 450nm and 550nm. Subtract 550nm values from
450nm values to correct for optical imperfections in the microplate" (Thermo Fisher,
Human TNF-alpha ELISA Reagent Kit user guide, "Absorbance Measurement"); "using 450 nm as
primary wave length (you can use 620 nm as reference wave length; 610 nm to 650 nm is
acceptable)" (Thermo Fisher, Human IL-18 Antibody Pair Kit user guide).

The options ``wavelength`` and ``reference_wavelength`` say what to do:

* default (neither given): every wavelength in the export is its own analyte, named
  ``OD450``, ``OD570``, ...; nothing is subtracted (the raw readings, as the schema
  wants them);
* ``reference_wavelength=570``: ``signal = OD(wavelength) - OD(570)`` in each well,
  analyte ``OD450-570``; ``wavelength`` may be omitted when one other wavelength remains;
* ``wavelength=450`` alone: only the 450 nm reading, analyte ``OD450``.

``analyte="IL-6"`` names the selected read (ELISA plates measure one cytokine; the export
knows only wavelengths), and the columns ``wavelength_nm`` and ``reference_wavelength_nm``
keep what was read. A wavelength that the export does not hold is an
:class:`~cytosafe.errors.InputError` listing those it holds. A difference below zero (a
well that absorbs no more than at the reference) and a raw OD below zero (an instrument
that blanked on another well) are stored as 0.0 with a
:class:`~cytosafe.errors.DataWarning` naming the wells, because the schema stores
non-negative signals; every other value is kept exactly.

Plate maps
----------
An absorbance reader knows one number per well and wavelength. Which well held a standard
of which concentration, a blank or a donor's supernatant is written in a plate map
(:func:`cytosafe.io.platemap.read_plate_map`). :func:`read_asm_plate` joins a plate map to
a SoftMax Pro, Gen5 or ASM export with the join of reader matrices,
:func:`cytosafe.io.platemap.join_plate_map` (empty wells, wells the map does not describe,
described wells without a reading, plate size, plate choice, ``standard_unit``), with the
options above; :func:`cytosafe.io.read_plate` (``cytosafe quantify --plate-map MAP
--matrix EXPORT --wavelength 450 --reference-wavelength 570``) sends these files here.

Writing
-------
:func:`write` writes a measurement table as plate-reader ASM JSON (manifest
``REC/2025/03``; one plate reader document per well, one measurement document per analyte,
``sample role type`` and ``mass concentration`` from ``sample_type`` and
``standard_concentration``, the remaining CytoSafe columns in custom information
documents). :func:`parse` reads it back to the same table.

What allotropy carries, and what it lacks, for the readers CytoSafe writes by hand
-------------------------------------------------------------------------------------
Checked with allotropy 0.1.150 on the real exports in ``shared/data/real-exports`` (see
``SOURCES.md`` there) and on allotropy's own test files:

* **MSD Discovery Workbench** (:mod:`cytosafe.io.msd`): allotropy's ``MSD_WORKBENCH``
  parser reads only per-plate data tables that open with a ``Plate_<barcode>`` line; the
  real DW 4.0.12 export (``tidy-data-4.csv``: key-value preamble, "Experiment Data
  Table") fails, allotropy finding no plate ID in its first row. Where it reads,
  its ASM carries the ECL signal, the well (``well location identifier``; the spot is the
  ``location identifier``), the assay (custom ``assay identifier``), a role guessed from
  the sample name's first letter (``S...`` standard, ``C...`` control, ``B...`` blank,
  ``U...`` unknown), the calibrator concentration as ``mass concentration`` labelled
  pg/mL whatever the kit's unit, the dilution (converted with ``int()``, so 2.5 becomes
  2) and DW's calculated concentrations, means and CVs as calculated data; other DW
  columns (sample group, excluded) travel as free-form custom fields. It lacks the kit
  unit, non-integer dilutions and the read time (always written as 1970-01-01).
* **Luminex xPONENT** (:mod:`cytosafe.io.xponent`): ``LUMINEX_XPONENT`` reads the
  xPONENT 4.3 FlexMAP 3D file (median FI per analyte as a statistic, bead count per
  analyte and well, ``dilution factor setting``, Net MFI and Test Result as calculated
  data, instrument calibrations) but writes it as the *multi-analyte profiling* technique,
  not a plate-reader ASM, and carries neither sample roles nor the expected standard
  concentrations; the xPONENT 3.1 file (``pone.0187901.s001.csv``) fails on its
  calibration lines, so its ``Result`` (vendor concentration), ``Standard Expected
  Concentration`` and ``Analysis Types`` blocks are not reachable.
* **Bio-Rad Bio-Plex Manager** (:mod:`cytosafe.io.bioplex`): ``BIORAD_BIOPLEX`` reads
  Bio-Plex Manager's XML result files only; the Excel reports (``.xls``) CytoSafe reads,
  with their printed standard curves and ``Obs Conc``, are refused for their extension.
* **SoftMax Pro and Gen5** (this module): allotropy carries what a plate reader measures
  (OD per well and wavelength, errors, plate names, times) and puts the software's own
  tables aside: SoftMax Pro group tables (sample names, ``Concentration`` columns,
  results) become free-form calculated data named after their column headers, Gen5 layout
  ``Conc/Dil`` values a custom ``Conc/Dil`` field with no unit; neither is read here,
  because the column names and units are the user's, not the vendor's. Replicate groups
  exist only as SoftMax Pro group names.

So allotropy cannot replace a hand-written reader of ours today without losing fields
(expected standard concentrations with units, dilution factors, vendor concentrations,
bead counts in a plate-reader form, replicate groups), or without refusing real files;
it is the right adapter for plate readers, whose exports hold nothing but signals.

Requirements: ASM JSON needs nothing beyond CytoSafe; instrument files need
``allotropy >= 0.1.114`` (older releases admit pandas 3, with which their SoftMax Pro and
Gen5 parsers fail: "cannot convert float NaN to integer").
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe._atomic import atomic_write_text
from cytosafe.errors import InputError, UnitError
from cytosafe.io._text import decode_text, utf16_encoding
from cytosafe.io._values import export_time, floor_at_zero
from cytosafe.io.platemap import DEFAULT_STUDY_ID, join_plate_map, read_plate_map
from cytosafe.io.reader import Probe, finish, names_file, select_plate
from cytosafe.schema.measurements import validate_measurements
from cytosafe.schema.units import analyte_unit, canonical_unit
from cytosafe.schema.wells import PLATE_FORMATS, normalize_well, plate_format_for, well_index

__all__ = [
    "DESCRIPTION",
    "MIN_ALLOTROPY",
    "NAME",
    "SUFFIXES",
    "VENDORS",
    "detect_vendor",
    "export_kind",
    "measurements_from_asm",
    "parse",
    "read_asm",
    "read_asm_plate",
    "sniff",
    "to_asm",
    "write",
    "write_asm",
]

NAME = "asm"
DESCRIPTION = (
    "Allotrope Simple Model (plate reader) JSON, or a SoftMax Pro / Gen5 absorbance export "
    "converted with allotropy"
)
SUFFIXES = (".json", ".txt")
#: The oldest allotropy this module is tested with; older releases install beside pandas 3,
#: and their SoftMax Pro and Gen5 parsers fail with it.
MIN_ALLOTROPY = "0.1.114"
#: Instrument exports recognised from their content -> allotropy ``Vendor`` names.
VENDORS = {"softmax_pro": "MOLDEV_SOFTMAX_PRO", "gen5": "AGILENT_GEN5"}
_VENDOR_LABELS = {"softmax_pro": "SoftMax Pro", "gen5": "Gen5", "asm": "ASM"}

#: What :func:`write` puts in the data system document; :func:`parse` trusts the custom
#: information documents of files that name it.
CONVERTER_NAME = "cytosafe"
_MANIFEST = "http://purl.allotrope.org/manifests/plate-reader/REC/2025/03/plate-reader.manifest"
_TECHNIQUE = "plate reader aggregate document"
_SIGNALS = ("absorbance", "luminescence", "fluorescence")
_SIGNAL_UNITS = {"absorbance": "mAU", "luminescence": "RLU", "fluorescence": "RFU"}
_ROLES = {
    "standard sample role": "standard",
    "calibration sample role": "standard",
    "blank role": "blank",
    "control sample role": "control",
    "quality control sample role": "control",
    "validation sample role": "control",
}
_ROLE_OF_TYPE = {
    "standard": "standard sample role",
    "blank": "blank role",
    "control": "control sample role",
    "sample": "unknown sample role",
}
# Table columns :func:`write` stores in the sample document's custom information.
_CUSTOM_SAMPLE_FIELDS = (
    "study_id",
    "donor_id",
    "treatment",
    "treatment_role",
    "treatment_concentration",
    "treatment_unit",
    "assay_format",
    "incubation_h",
    "replicate",
    "dilution_factor",
    "exclude",
    "bead_count",
)
_ERROR_HINTS = {
    "OVRFLW": "Gen5 writes OVRFLW when the reading saturated the detector",
    "MISSED": "Gen5 writes MISSED when a well was not read",
    "RANGE?": "SoftMax Pro writes Range? for a value outside the reader's range",
}
_WELL_IN_TEXT = re.compile(r"\bwell(?: position)? ([A-Pa-p]\d{1,2})\b")
_LINE_IN_TEXT = re.compile(r"\b(?:line|row) (\d+)\b")


# --------------------------------------------------------------------------- recognising


def _decode(raw: bytes, *, file: str = "", partial: bool = True) -> str:
    """Text of an export: UTF-16 (SoftMax Pro), else UTF-8, else Windows-1252 (Gen5 on
    Windows writes the ANSI code page); :func:`cytosafe.io._text.decode_text`."""
    return decode_text(raw, file=file, partial=partial)


def _encoding(raw: bytes) -> str:
    """The encoding to hand allotropy (which otherwise assumes UTF-8)."""
    utf16 = utf16_encoding(raw)
    if utf16 is not None:
        return utf16
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _kind(text: str) -> str | None:
    """``asm``, ``softmax_pro``, ``gen5`` or None, from the first lines of a file."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        return "asm" if ("$asm.manifest" in text or "aggregate document" in text) else None
    if stripped.startswith("##BLOCKS="):
        return "softmax_pro"
    lines = [ln.strip() for ln in text.splitlines()[:120]]
    if any(ln.startswith("Software Version") for ln in lines) and any(
        ln in {"Procedure Details", "Results"} or ln.startswith("Plate Number") for ln in lines
    ):
        return "gen5"
    return None


def _probe_text(probe: Probe | str | Path) -> str:
    """The first part of a file as text: a probe's first bytes (decoded here, because
    SoftMax Pro writes UTF-16), or the first 64 KiB of a path."""
    if isinstance(probe, (str, Path)):
        path = Path(probe)
        if not path.is_file():
            return ""
        with path.open("rb") as fh:
            return _decode(fh.read(65536))
    return _decode(probe.head)


def sniff(probe: Probe) -> bool:
    """Plate-reader ASM JSON, a SoftMax Pro text export or a Gen5 text export.

    From the probe's first bytes: a JSON object naming ``$asm.manifest`` or an
    ``aggregate document``; a first line ``##BLOCKS=``; a ``Software Version`` line with
    ``Procedure Details``, ``Results`` or ``Plate Number`` (Gen5).
    """
    if probe.is_ole2 or probe.is_xlsx:
        return False
    return _kind(_probe_text(probe)) is not None


def export_kind(path: str | Path) -> str | None:
    """``"asm"``, ``"softmax_pro"``, ``"gen5"``, or None for any other (or no) file.

    For callers that route a file to this reader or another one (a plate map's signal
    source may be a reader matrix or an instrument export).
    """
    return _kind(_probe_text(path))


def detect_vendor(path: str | Path) -> str:
    """``"asm"``, ``"softmax_pro"`` or ``"gen5"``, recognised from the file's content.

    Raises
    ------
    InputError
        When the file is missing or is none of them.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    kind = _kind(_probe_text(path))
    if kind is None:
        raise InputError(
            "the file is neither ASM JSON nor a SoftMax Pro or Gen5 text export",
            file=str(path),
            expected="plate-reader ASM JSON, a SoftMax Pro .txt export (first line "
            "'##BLOCKS='), a Gen5 .txt export, or vendor= naming an allotropy parser",
        )
    return kind


# --------------------------------------------------------------------------- allotropy


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3])


def _allotropy(source: str):
    """allotropy's conversion function, its Vendor enum and its error base class."""
    try:
        from allotropy.exceptions import AllotropyError
        from allotropy.parser_factory import Vendor
        from allotropy.to_allotrope import allotrope_from_file
    except ImportError:
        raise InputError(
            "reading instrument exports into ASM needs the allotropy package",
            file=source,
            expected=f"pip install 'allotropy>={MIN_ALLOTROPY}', or the export converted "
            "to ASM JSON",
        ) from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("allotropy")
    except PackageNotFoundError:  # imported from a source tree
        installed = MIN_ALLOTROPY
    if _version_tuple(installed) < _version_tuple(MIN_ALLOTROPY) and _version_tuple(
        pd.__version__
    ) >= (3,):
        raise InputError(
            f"allotropy {installed} does not work with pandas {pd.__version__} (its "
            "parsers fail on pandas 3's missing values)",
            file=source,
            expected=f"allotropy>={MIN_ALLOTROPY}, which installs pandas below 3",
        )
    return allotrope_from_file, Vendor, AllotropyError


def _vendor_name(vendor: str, Vendor, source: str) -> str:
    key = str(vendor).strip()
    if key.lower() in VENDORS:
        return VENDORS[key.lower()]
    names = {v.name: v.name for v in Vendor}
    names.update({str(v.value).upper(): v.name for v in Vendor})
    if key.upper() in names:
        return names[key.upper()]
    raise InputError(
        f"allotropy has no parser '{vendor}'",
        file=source,
        field="vendor",
        expected="softmax_pro | gen5 | asm, or an allotropy Vendor name such as "
        + ", ".join(sorted(names)[:5])
        + ", ...",
    )


def _located(exc: Exception, source: str, label: str, installed: str) -> InputError:
    """An allotropy exception as an InputError: the file, and the well or line it names."""
    message = " ".join(str(exc).split())
    if len(message) > 400:  # decoding errors quote the whole file
        message = message[:400] + " ..."
    well_match = _WELL_IN_TEXT.search(message)
    line_match = _LINE_IN_TEXT.search(message)
    well = None
    if well_match:
        try:
            well = normalize_well(well_match.group(1))
        except InputError:
            well = None
    return InputError(
        f"allotropy {installed} could not read this {label} export: {message}",
        file=source,
        row=int(line_match.group(1)) if line_match else None,
        well=well,
        expected=f"an unmodified {label} export, as the instrument software saved it",
    )


#: Lines a Gen5 export may hold before its first section ('Procedure Details', 'Layout',
#: 'Results'): a real export's header holds a few dozen (software version, file paths,
#: plate number, date, time, reader type and serial number).
GEN5_HEADER_LINES = 200
_GEN5_SECTIONS = {"procedure details", "layout", "results"}


def _check_gen5_header(text: str, source: str) -> None:
    """Refuse a Gen5 export whose header is far longer than Gen5 writes one.

    allotropy (0.1.x) keeps every header line it does not know as custom metadata, with
    work that grows with the square of their number: 1,700 junk lines there took over
    2 s of CPU in the fuzz of issue 14. A header that long is not an unmodified export.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().lower() in _GEN5_SECTIONS:
            return
        if number > GEN5_HEADER_LINES:
            raise InputError(
                f"the header runs past line {GEN5_HEADER_LINES} without a 'Procedure "
                "Details', 'Layout' or 'Results' section",
                file=source,
                row=number,
                expected="an unmodified Gen5 export, whose header holds a few dozen lines",
            )


def to_asm(path: str | Path, *, vendor: str | None = None) -> dict:
    """The ASM document of an export: ASM JSON as it is, instrument files through allotropy.

    Parameters
    ----------
    path:
        ASM JSON, a SoftMax Pro or Gen5 text export, or any file an allotropy parser reads.
    vendor:
        ``"asm"``, ``"softmax_pro"``, ``"gen5"`` or an allotropy ``Vendor`` name
        (``"AGILENT_GEN5"``, ``"BMG_MARS"``, ...); by default recognised from the content.

    Returns
    -------
    dict
        The ASM document.

    Raises
    ------
    InputError
        A missing or unrecognised file, JSON that does not parse (naming the line), an
        allotropy failure (its message, with the well or line it names), or allotropy not
        installed.

    Examples
    --------
    >>> asm = to_asm("plate1_softmax.txt")  # doctest: +SKIP
    >>> asm["$asm.manifest"]  # doctest: +SKIP
    'http://purl.allotrope.org/manifests/plate-reader/REC/2025/03/plate-reader.manifest'
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError("file not found", file=source)
    kind = detect_vendor(path) if vendor is None else str(vendor).strip()
    raw = path.read_bytes()
    if kind.lower() == "asm":
        try:
            document = json.loads(_decode(raw, file=source, partial=False))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON: {exc.msg} (column {exc.colno})",
                file=source,
                row=exc.lineno,
                expected="ASM JSON",
            ) from None
        if not isinstance(document, dict):
            raise InputError("the JSON is not an ASM document", file=source, expected="an object")
        return document
    if kind.lower() == "gen5":
        _check_gen5_header(decode_text(raw, file=source), source)
    convert, Vendor, AllotropyError = _allotropy(source)
    name = _vendor_name(kind, Vendor, source)
    label = _VENDOR_LABELS.get(kind.lower()) or getattr(Vendor[name], "display_name", name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("allotropy")
    except PackageNotFoundError:
        installed = "(unknown version)"
    try:
        return convert(source, Vendor[name], encoding=_encoding(raw))
    except AllotropyError as exc:  # allotropy's word for a file it cannot read
        raise _located(exc, source, label, installed) from None
    except Exception as exc:
        # A parser tripping over an odd file rather than saying so (ValueError, KeyError,
        # IndexError, and re.error from a cell used as a pattern, seen in the fuzz of
        # issue 14): a third party's parser of an untrusted file; still the file to fix.
        raise _located(exc, source, label, installed) from None


# --------------------------------------------------------------------------- the ASM


@dataclass(frozen=True)
class _Reading:
    """One measurement document."""

    plate: str
    well: str  # A01
    feature: str  # absorbance | luminescence | fluorescence
    wavelength: float | None  # nm
    value: float  # NaN: no reading
    error: str | None  # the instrument's word for an invalid reading
    label: str | None  # an analyte the ASM names (CytoSafe's own, MSD's assay)
    fields: dict  # schema columns from the sample document
    plate_wells: int | None  # the aggregate's plate well count


def _number(quantity: object) -> float:
    """The value of an ASM quantity (``{"value": 1.2, "unit": ...}``), NaN when absent."""
    value = quantity.get("value") if isinstance(quantity, Mapping) else quantity
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _custom(document: Mapping) -> dict:
    """A document's custom information: allotropy's flat ``custom information document``,
    or the standard aggregate of ``datum label`` / value items."""
    out: dict = {}
    flat = document.get("custom information document")
    if isinstance(flat, Mapping):
        out.update(flat)
    aggregate = document.get("custom information aggregate document")
    items = aggregate.get("custom information document") if isinstance(aggregate, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and "datum label" in item:
            values = [v for k, v in item.items() if k.startswith("scalar")]
            out[str(item["datum label"])] = values[0] if values else None
    return out


def _first_device_control(md: Mapping) -> Mapping:
    agg = md.get("device control aggregate document")
    docs = agg.get("device control document") if isinstance(agg, Mapping) else None
    return docs[0] if isinstance(docs, list) and docs and isinstance(docs[0], Mapping) else {}


def _invalidating_error(md: Mapping, feature: str, wavelength: float | None) -> str | None:
    """The error text of an error document about the signal itself (not about a
    calculated value such as SoftMax Pro's ``Result``)."""
    agg = md.get("error aggregate document")
    docs = agg.get("error document") if isinstance(agg, Mapping) else None
    for doc in docs if isinstance(docs, list) else []:
        if not isinstance(doc, Mapping):
            continue
        about = str(doc.get("error feature", "")).strip().lower()
        tail = about.rsplit(":", 1)[-1].strip()
        if about == feature or (
            wavelength is not None and _number(tail) == wavelength and tail != ""
        ):
            return str(doc.get("error", "error")).strip() or "error"
    return None


def _sample_fields(sd: Mapping, *, ours: bool, where: dict, standard_unit: str | None) -> dict:
    """Schema columns the sample document gives (``standard_unit``: the unit of a
    concentration the document gives without one; a different unit stated is an error)."""
    fields: dict = {}
    role = sd.get("sample role type")
    if isinstance(role, str) and role.strip():
        fields["sample_type"] = _ROLES.get(role.strip().lower(), "sample")
    mass = sd.get("mass concentration")
    conc = _number(mass)
    if not math.isnan(conc):
        said = mass.get("unit") if isinstance(mass, Mapping) else None
        try:
            if said and standard_unit and canonical_unit(said) != canonical_unit(standard_unit):
                raise InputError(
                    f"the ASM gives the concentration in '{said}' but standard_unit="
                    f"'{standard_unit}' was given",
                    field="standard_unit",
                    expected=f"standard_unit='{said}' or None",
                    **where,
                )
            unit, factor = analyte_unit(said or standard_unit)
        except UnitError as exc:
            raise exc.located(field="mass concentration", **where) from None
        fields["standard_concentration"] = conc * factor
        fields["concentration_unit"] = unit
    custom = _custom(sd)
    dilution = _number(custom.get("dilution factor setting"))
    if dilution > 0:
        fields["dilution_factor"] = dilution
    if ours:
        for name in _CUSTOM_SAMPLE_FIELDS:
            if name in custom and custom[name] is not None:
                fields[name] = custom[name]
    return fields


def _readings(asm: Mapping, source: str, standard_unit: str | None = None) -> list[_Reading]:
    """Every endpoint reading of a plate-reader ASM document."""
    if not isinstance(asm, Mapping) or _TECHNIQUE not in asm:
        manifest = asm.get("$asm.manifest") if isinstance(asm, Mapping) else None
        techniques = [k for k in asm if str(k).endswith("aggregate document")] if asm else []
        found = f" (it holds {', '.join(techniques)})" if techniques else ""
        raise InputError(
            "not a plate-reader ASM document"
            + found
            + (f", manifest {manifest}" if manifest else ""),
            file=source,
            field=_TECHNIQUE,
            expected="ASM of the plate reader technique (SoftMax Pro, Gen5, ... through "
            "allotropy); multi-analyte profiling (Luminex) exports are read by their own readers",
        )
    agg = asm[_TECHNIQUE]
    system = agg.get("data system document") if isinstance(agg, Mapping) else None
    ours = isinstance(system, Mapping) and system.get("ASM converter name") == CONVERTER_NAME
    docs = agg.get("plate reader document") if isinstance(agg, Mapping) else None
    if not isinstance(docs, list) or not docs:
        raise InputError(
            "the ASM holds no plate reader document",
            file=source,
            field="plate reader document",
            expected="one document per well",
        )
    stem = Path(source).stem
    out: list[_Reading] = []
    for i, doc in enumerate(docs):
        mad = doc.get("measurement aggregate document") if isinstance(doc, Mapping) else None
        mds = mad.get("measurement document") if isinstance(mad, Mapping) else None
        if not isinstance(mds, list):
            raise InputError(
                f"plate reader document {i + 1} has no measurement documents",
                file=source,
                field="measurement document",
            )
        count = _number(mad.get("plate well count"))
        plate_wells = int(count) if not math.isnan(count) else None
        for j, md in enumerate(mds):
            here = f"plate reader document {i + 1}, measurement document {j + 1}"
            sd = md.get("sample document") if isinstance(md, Mapping) else None
            if not isinstance(sd, Mapping):
                raise InputError(
                    f"{here} has no sample document", file=source, field="sample document"
                )
            location = sd.get("well location identifier") or sd.get("location identifier")
            if location is None:
                raise InputError(
                    f"{here} names no well",
                    file=source,
                    field="location identifier",
                    expected="a well such as A1",
                )
            try:
                well = normalize_well(location)
            except InputError as exc:
                raise InputError(
                    f"{here}: {exc.message}",
                    file=source,
                    field="location identifier",
                    expected=exc.expected,
                ) from None
            plate = str(sd.get("well plate identifier") or "").strip() or stem
            feature = next((f for f in _SIGNALS if f in md), None)
            if feature is None:
                found = ", ".join(k for k in md if "data cube" in k or "spectrum" in k)
                raise InputError(
                    f"{here} holds no endpoint absorbance"
                    + (f" ({found}: kinetic and spectral reads are not read)" if found else ""),
                    file=source,
                    well=well,
                    field="absorbance",
                    expected="endpoint absorbance (or luminescence, fluorescence) readings",
                )
            dc = _first_device_control(md)
            wl = _number(
                dc.get("detector wavelength setting", md.get("detector wavelength setting"))
            )
            wavelength = None if math.isnan(wl) else wl
            custom = _custom(md)
            label = custom.get("analyte") if ours else custom.get("assay identifier")
            out.append(
                _Reading(
                    plate=plate,
                    well=well,
                    feature=feature,
                    wavelength=wavelength,
                    value=_number(md[feature]),
                    error=_invalidating_error(md, feature, wavelength),
                    label=str(label).strip() if label not in (None, "") else None,
                    fields=_sample_fields(
                        sd,
                        ours=ours,
                        where={"file": source, "well": well},
                        standard_unit=standard_unit,
                    )
                    | _sample_id(sd, plate, str(location)),
                    plate_wells=plate_wells,
                )
            )
    if not out:
        raise InputError("the ASM holds no readings", file=source, field="measurement document")
    return out


def _sample_id(sd: Mapping, plate: str, location: str) -> dict:
    """``sample_id``, unless it is allotropy's ``"<plate> <well>"`` placeholder."""
    name = sd.get("sample identifier")
    if not isinstance(name, str) or not name.strip():
        return {}
    name = name.strip()
    return {} if name == f"{plate} {location}".strip() else {"sample_id": name}


def _nm(x: float) -> str:
    return f"{x:g}"


def _choose_wavelengths(
    readings: list[_Reading],
    wavelength: float | None,
    reference_wavelength: float | None,
    source: str,
) -> tuple[float | None, float | None]:
    held = sorted({r.wavelength for r in readings if r.feature == "absorbance" and r.wavelength})
    listed = ", ".join(f"{_nm(w)} nm" for w in held) or "none"
    for name, asked in (("wavelength", wavelength), ("reference_wavelength", reference_wavelength)):
        if asked is None:
            continue
        nm = _number(asked) if not isinstance(asked, str) else _number(asked.strip())
        if isinstance(asked, bool) or math.isnan(nm) or nm <= 0:
            raise InputError(
                f"{name} {asked!r} is not a wavelength",
                file=source,
                field=name,
                expected="a wavelength in nm, e.g. 450",
            )
        if nm not in held:
            raise InputError(
                f"the export holds no absorbance reading at {_nm(nm)} nm (it holds {listed})",
                file=source,
                field=name,
                expected="one of " + listed,
            )
    main = None if wavelength is None else _number(wavelength)
    ref = None if reference_wavelength is None else _number(reference_wavelength)
    if ref is not None and main is None:
        others = [w for w in held if w != ref]
        if len(others) != 1:
            raise InputError(
                f"with reference_wavelength={_nm(ref)}, the export holds "
                + (
                    f"several other wavelengths ({', '.join(map(_nm, others))} nm)"
                    if others
                    else "no other wavelength"
                ),
                file=source,
                field="wavelength",
                expected="wavelength= naming the measurement wavelength",
            )
        main = others[0]
    if ref is not None and main == ref:
        raise InputError(
            f"wavelength and reference_wavelength are both {_nm(ref)} nm",
            file=source,
            field="reference_wavelength",
            expected="a reference wavelength other than the measurement wavelength",
        )
    return main, ref


def _reference_for(
    reading: _Reading, candidates: list[_Reading], ref: float, source: str
) -> _Reading | None:
    """The reference reading of a well: the only one, or the one of the same analyte."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    same = [c for c in candidates if c.label == reading.label]
    if len(same) == 1:
        return same[0]
    raise InputError(
        f"{len(candidates)} readings at the reference wavelength {_nm(ref)} nm",
        file=source,
        well=reading.well,
        field="reference_wavelength",
        expected="one reference reading per well (or one per analyte)",
    )


def _signal_table(
    readings: list[_Reading],
    *,
    source: str,
    analyte: str | None,
    wavelength: float | None,
    reference_wavelength: float | None,
) -> pd.DataFrame:
    """One row per plate x well x analyte, before any well is refused: ``signal`` NaN with
    a ``problem`` where the reading is missing or invalid."""
    main, ref = _choose_wavelengths(readings, wavelength, reference_wavelength, source)
    if main is not None:
        chosen = [r for r in readings if r.feature == "absorbance" and r.wavelength == main]
    else:
        chosen = list(readings)
    refs: dict[tuple[str, str], list[_Reading]] = {}
    if ref is not None:
        for r in readings:
            if r.feature == "absorbance" and r.wavelength == ref:
                refs.setdefault((r.plate, r.well), []).append(r)

    rows = []
    seen: dict[tuple[str, str, str], str] = {}
    for r in chosen:
        if analyte is not None:
            name = str(analyte).strip()
        elif r.label:
            name = r.label
        elif r.feature == "absorbance" and r.wavelength is not None:
            name = f"OD{_nm(r.wavelength)}" + (f"-{_nm(ref)}" if ref is not None else "")
        else:
            name = r.feature + (f" {_nm(r.wavelength)}" if r.wavelength else "")
        what = f"{r.feature} at {_nm(r.wavelength)} nm" if r.wavelength else r.feature
        key = (r.plate, r.well, name)
        if key in seen:
            hint = (
                "wavelength= (and reference_wavelength=) choosing one read"
                if analyte is not None
                else "one reading per well and analyte"
            )
            raise InputError(
                f"plate '{r.plate}' has two readings for analyte '{name}' in this well "
                f"({seen[key]}; {what})",
                file=source,
                well=r.well,
                field="analyte",
                expected=hint,
            )
        seen[key] = what
        value, problem = r.value, None
        if r.error is not None:
            hint = _ERROR_HINTS.get(r.error.upper())
            problem = f"the reader reported '{r.error}' for the {what}" + (
                f" ({hint})" if hint else ""
            )
        elif math.isnan(value):
            problem = f"no reading of the {what}"
        if ref is not None and problem is None:
            partner = _reference_for(r, refs.get((r.plate, r.well), []), ref, source)
            if partner is None:
                problem = f"no reading at the reference wavelength {_nm(ref)} nm"
            elif partner.error is not None or math.isnan(partner.value):
                word = partner.error or "no value"
                hint = _ERROR_HINTS.get(word.upper())
                problem = f"the reference reading at {_nm(ref)} nm is '{word}'" + (
                    f" ({hint})" if hint else ""
                )
            else:
                value = value - partner.value
        rows.append(
            {
                "plate_id": r.plate,
                "well": r.well,
                "analyte": name,
                "signal": math.nan if problem else value,
                "problem": problem,
                "wavelength_nm": r.wavelength if r.wavelength is not None else math.nan,
                "reference_wavelength_nm": ref if ref is not None else math.nan,
                "plate_wells": r.plate_wells,
                **r.fields,
            }
        )
    table = pd.DataFrame(rows)
    table["source_file"] = source
    return table


def _refuse(table: pd.DataFrame, source: str) -> None:
    """An InputError for the first row whose reading is missing or invalid."""
    bad = table["problem"].notna().to_numpy()
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    more = int(bad.sum()) - 1
    row = table.iloc[first]
    raise InputError(
        f"{row['problem']} (analyte {row['analyte']}, plate '{row['plate_id']}')"
        + (f"; {more} more wells like it" if more else ""),
        file=source,
        well=row["well"],
        field="signal",
        expected="a reading in every used well (a plate map can mark unused wells empty)",
    )


def measurements_from_asm(
    asm: Mapping,
    *,
    source: str = "<ASM>",
    study_id: str | None = None,
    plate_id: str | None = None,
    analyte: str | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    standard_unit: str | None = None,
) -> pd.DataFrame:
    """The raw tidy table of a plate-reader ASM document (as :func:`parse`, without a file).

    Parameters are those of :func:`parse`; ``source`` names the document in errors and in
    ``source_file``.
    """
    table = _signal_table(
        _readings(asm, source, standard_unit),
        source=source,
        analyte=analyte,
        wavelength=wavelength,
        reference_wavelength=reference_wavelength,
    )
    table = select_plate(table, None if plate_id is None else str(plate_id), file=source)
    _refuse(table, source)
    table, pending = floor_at_zero(table, source)
    if study_id is not None or "study_id" not in table.columns:
        table["study_id"] = DEFAULT_STUDY_ID if study_id is None else study_id
    else:
        table["study_id"] = table["study_id"].fillna(DEFAULT_STUDY_ID)
    if "sample_type" not in table.columns:
        table["sample_type"] = "sample"
    table["sample_type"] = table["sample_type"].fillna("sample")
    table["source_row"] = pd.array([pd.NA] * len(table), dtype="Int64")
    front = ["study_id", "plate_id", "well", "analyte", "sample_type", "signal"]
    back = ["wavelength_nm", "reference_wavelength_nm"]
    middle = [c for c in table.columns if c not in (*front, *back, "problem", "plate_wells")]
    out = table[front + middle + back].reset_index(drop=True)
    out.attrs["warnings"] = pending
    return out


@names_file
def parse(
    path: str | Path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    standard_unit: str | None = None,
    analyte: str | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    vendor: str | None = None,
) -> pd.DataFrame:
    """Read ASM JSON, or a SoftMax Pro / Gen5 export through allotropy, into the raw tidy table.

    Parameters
    ----------
    path:
        The export (see the module documentation for the layouts).
    study_id:
        The study; default the one a CytoSafe-written ASM names, else ``"unassigned"``.
    plate_id:
        The plate: selects it from a multi-plate export, or names the plate of a
        one-plate export; default the export's plate names.
    standard_unit:
        Unit of a ``mass concentration`` the ASM gives without one (default pg/mL); a
        unit the ASM states wins, and a different ``standard_unit`` is an error. Mass
        units are converted to pg/mL, arbitrary units (IU/mL, ...) kept as written.
    analyte:
        Name of the selected read (e.g. ``"IL-6"``); default ``OD450``,
        ``OD450-570``, or the analyte the ASM names.
    wavelength, reference_wavelength:
        The measurement and reference wavelengths in nm (module documentation); default
        every wavelength, nothing subtracted.
    vendor:
        As for :func:`to_asm`; default recognised from the content.

    Returns
    -------
    pandas.DataFrame
        ``study_id, plate_id, well, analyte, sample_type, signal``, what the ASM's sample
        documents give (``standard_concentration``, ``sample_id``, ...), ``source_file``,
        ``source_row`` (empty: ASM has no lines), and the extras ``wavelength_nm`` and
        ``reference_wavelength_nm``. Not yet validated (:func:`cytosafe.io.read` does).

    Raises
    ------
    InputError
        Naming the file (and well, line, field where known): everything :func:`to_asm`
        refuses, a wavelength the export does not hold, an invalid or missing reading
        (``OVRFLW``), two readings for one well and analyte, an ASM of another technique.

    Examples
    --------
    >>> table = parse("elisa_gen5.txt", wavelength=450, reference_wavelength=570,
    ...               analyte="IL-6")  # doctest: +SKIP
    """
    source = str(path)
    if standard_unit is not None:
        analyte_unit(standard_unit, file=source, field="standard_unit")
    return measurements_from_asm(
        to_asm(path, vendor=vendor),
        source=source,
        standard_unit=standard_unit,
        study_id=study_id,
        plate_id=plate_id,
        analyte=analyte,
        wavelength=wavelength,
        reference_wavelength=reference_wavelength,
    )


def read_asm(
    path: str | Path,
    *,
    study_id: str | None = None,
    plate_id: str | None = None,
    sample_map=None,
    standard_unit: str | None = None,
    **options,
) -> pd.DataFrame:
    """:func:`parse`, then the closing steps of every reader (sample map, validation,
    warnings: :func:`~cytosafe.io.reader.finish`).

    ``options`` are :func:`parse`'s (``analyte``, ``wavelength``, ``reference_wavelength``,
    ``vendor``). Without a plate map every well is a ``sample``: a ``sample_map`` keyed by
    ``well`` may say which are standards (with their concentrations) and blanks, or use
    :func:`read_asm_plate`.

    Examples
    --------
    >>> table = read_asm("elisa.json", sample_map="plate_roles.csv")  # doctest: +SKIP
    """
    table = parse(
        path, study_id=study_id, plate_id=plate_id, standard_unit=standard_unit, **options
    )
    return finish(table, source=path, sample_map=sample_map)


# --------------------------------------------------------------------------- plate maps


def _plate_format(rows: pd.DataFrame) -> int | None:
    """The plate size the export states (its ``plate well count``), or None."""
    counts = {int(c) for c in rows["plate_wells"].dropna()}
    if len(counts) == 1 and (n := counts.pop()) in PLATE_FORMATS:
        return n
    return None  # join_plate_map takes the smallest plate holding the wells


def read_asm_plate(
    plate_map: str | Path | pd.DataFrame,
    export: str | Path,
    *,
    study_id: str | None,
    plate_id: str | None = None,
    analyte: str | None = None,
    wavelength: float | None = None,
    reference_wavelength: float | None = None,
    standard_unit: str | None = None,
    vendor: str | None = None,
) -> pd.DataFrame:
    """Join a plate map and a SoftMax Pro, Gen5 or ASM export into the validated table.

    The export's readings are joined to the map by
    :func:`cytosafe.io.platemap.join_plate_map`, the join of
    :func:`cytosafe.io.platemap.read_plate` (the export in place of the reader matrix):
    the map says what each well holds (``sample_type``, ``standard_concentration`` in
    ``concentration_unit`` or ``standard_unit``, donor, treatment, dilution, ...), the
    export gives the signals. An OD (or a reference-subtracted difference) below zero in
    a described well is stored as 0.0 with a warning naming the wells (module notes).
    :func:`cytosafe.io.read_plate` sends SoftMax Pro, Gen5 and ASM files here.

    Parameters
    ----------
    plate_map:
        Path of a plate map (long form or ``plater`` grid), the table
        :func:`~cytosafe.io.platemap.read_plate_map` returns, or any long-form table.
    export:
        ASM JSON, or a SoftMax Pro / Gen5 text export.
    study_id:
        The study; ``None`` gives ``"unassigned"``.
    plate_id:
        The plate: by default the one the map names (when it names one), else the one
        plate of the export (several: the one the map names).
    analyte, wavelength, reference_wavelength, vendor:
        As for :func:`parse`.
    standard_unit:
        Unit of ``standard_concentration`` for map wells without a ``concentration_unit``
        (default pg/mL).

    Returns
    -------
    pandas.DataFrame
        The validated measurement table: one row per described well x analyte,
        ``source_file`` the export, the extras ``plate_map_file`` / ``plate_map_row``
        locating each well in the map, ``wavelength_nm``, ``reference_wavelength_nm``.

    Raises
    ------
    InputError
        Everything :func:`parse` and :func:`~cytosafe.io.platemap.read_plate_map`
        refuse, and: a map well outside the export's plate, a grid map of another plate
        size, a described well without a valid reading (naming the reader's word, e.g.
        ``OVRFLW``), a reading in a well the map neither describes nor marks empty
        (:func:`~cytosafe.io.platemap.join_plate_map`).

    Examples
    --------
    >>> table = read_asm_plate("plate_map.csv", "il6_gen5.txt", study_id="CRA-01",
    ...                        analyte="IL-6", reference_wavelength=570)  # doctest: +SKIP
    """
    export = Path(export)
    source = str(export)
    analyte_unit(standard_unit, field="standard_unit")  # before reading
    pmap = plate_map if isinstance(plate_map, pd.DataFrame) else read_plate_map(plate_map)
    signals = _signal_table(
        _readings(to_asm(export, vendor=vendor), source),
        source=source,
        analyte=analyte,
        wavelength=wavelength,
        reference_wavelength=reference_wavelength,
    )
    extras = [c for c in ("sample_id",) if c in signals.columns]  # Gen5 layout names
    readings = signals[
        ["plate_id", "well", "analyte", "signal", "problem", "source_file", *extras]
    ].assign(
        source_row=pd.array([pd.NA] * len(signals), dtype="Int64"),  # ASM has no lines
        wavelength_nm=signals["wavelength_nm"],
        reference_wavelength_nm=signals["reference_wavelength_nm"],
    )
    return join_plate_map(
        readings,
        pmap,
        study_id=study_id,
        plate_id=plate_id,
        standard_unit=standard_unit,
        plate_format=_plate_format(signals),
        below_zero="zero",
        what="export",
    )


# --------------------------------------------------------------------------- writing


_OD_NAME = re.compile(r"^OD\s*(\d+(?:\.\d+)?)$", re.IGNORECASE)
_OD_DIFFERENCE = re.compile(r"^OD\s*\d+(?:\.\d+)?\s*-\s*\d+(?:\.\d+)?$", re.IGNORECASE)


def _json_value(value: object) -> object:
    """A table cell as a JSON scalar (None when missing)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _location(well: str) -> str:
    r, c = well_index(well)
    return f"{chr(ord('A') + r)}{c + 1}"


def _write_wavelength(analyte: str, table: pd.DataFrame, rows: Iterable[int], default: float):
    """The detector wavelength of a written reading: ``wavelength_nm`` when the table has
    it, else the number in an ``OD450`` analyte, else ``default``."""
    if _OD_DIFFERENCE.match(analyte):
        raise InputError(
            f"analyte '{analyte}' is a reference-subtracted OD; ASM stores the raw "
            "absorbance of each wavelength",
            field="analyte",
            expected="a table read without reference_wavelength, or an analyte name",
        )
    if "wavelength_nm" in table.columns:
        values = pd.to_numeric(table.loc[list(rows), "wavelength_nm"], errors="coerce")
        if values.notna().all() and values.nunique() == 1:
            return float(values.iloc[0])
    match = _OD_NAME.match(analyte)
    return float(match.group(1)) if match else float(default)


def write(
    measurements: pd.DataFrame,
    path: str | Path,
    *,
    wavelength: float = 450.0,
    measurement_time: str | datetime | None = None,
) -> Path:
    """Write a measurement table as plate-reader ASM JSON (manifest ``REC/2025/03``).

    Parameters
    ----------
    measurements:
        A measurement table (validated first); absorbance readings, one per well and
        analyte.
    path:
        Output file; replaced whole or not at all.
    wavelength:
        Detector wavelength (nm) of analytes that do not state one (``IL-6``); an analyte
        ``OD450``, or a ``wavelength_nm`` column, states its own.
    measurement_time:
        When the plate was read (ISO 8601); the table does not say, so by default the time
        of writing (:func:`~cytosafe.io._values.export_time`: ``SOURCE_DATE_EPOCH`` when
        set, for reproducible files).

    Returns
    -------
    pathlib.Path
        ``path``; :func:`parse` reads the same table back (signals exactly, and every
        schema column).

    Raises
    ------
    InputError
        A table the schema refuses, or a reference-subtracted OD (``OD450-570``), which
        ASM cannot hold as an absorbance.

    Examples
    --------
    >>> write(elisa, "elisa_plate.json")  # doctest: +SKIP
    """
    table = validate_measurements(measurements)
    from cytosafe import __version__

    when = measurement_time or export_time()
    when_text = when.isoformat() if isinstance(when, datetime) else str(when)
    documents = []
    for (plate, well), group in table.groupby(["plate_id", "well"], sort=True):
        fmt = plate_format_for(list(table.loc[table["plate_id"] == plate, "well"].unique()))
        mds = []
        for pos in group.index:
            row = table.loc[pos]
            analyte = str(row["analyte"])
            wl = _write_wavelength(analyte, table, [pos], wavelength)
            sample: dict = {
                "location identifier": _location(well),
                "sample identifier": _json_value(row["sample_id"]) or f"{plate} {_location(well)}",
                "well plate identifier": str(plate),
                "sample role type": _ROLE_OF_TYPE[str(row["sample_type"])],
            }
            if pd.notna(row["standard_concentration"]):
                sample["mass concentration"] = {
                    "value": float(row["standard_concentration"]),
                    "unit": str(row["concentration_unit"]),  # pg/mL, or as stored
                }
            custom = {
                name: _json_value(row[name])
                for name in _CUSTOM_SAMPLE_FIELDS
                if _json_value(row[name]) is not None
            }
            sample["custom information document"] = custom
            key = f"cytosafe:{row['study_id']}:{plate}:{well}:{analyte}"
            mds.append(
                {
                    "measurement identifier": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                    "device control aggregate document": {
                        "device control document": [
                            {
                                "device type": "plate reader",
                                "detection type": "Absorbance",
                                "detector wavelength setting": {"value": wl, "unit": "nm"},
                            }
                        ]
                    },
                    "sample document": sample,
                    "absorbance": {"value": float(row["signal"]), "unit": "mAU"},
                    # The analyte only when it is not the wavelength's default name.
                    **(
                        {}
                        if analyte == f"OD{_nm(wl)}"
                        else {"custom information document": {"analyte": analyte}}
                    ),
                }
            )
        documents.append(
            {
                "measurement aggregate document": {
                    "measurement time": when_text,
                    "plate well count": {"value": fmt, "unit": "#"},
                    "container type": "well plate",
                    "measurement document": mds,
                }
            }
        )
    document = {
        "$asm.manifest": _MANIFEST,
        _TECHNIQUE: {
            "data system document": {
                "ASM file identifier": Path(path).name,
                "data system instance identifier": "N/A",
                "ASM converter name": CONVERTER_NAME,
                "ASM converter version": __version__,
                "software name": "CytoSafe",
                "file name": Path(path).name,
                "UNC path": str(path),
            },
            "device system document": {"device identifier": "N/A", "model number": "N/A"},
            "plate reader document": documents,
        },
    }
    return atomic_write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


write_asm = write
