"""Laboratory observations: units, and the ways laboratory values reach the observation table.

The laboratory items (IL-6, CRP, ferritin, LDH, platelets, creatinine, IFN-gamma, MCP-1,
sgp130, IL-1RA, fibrinogen, D-dimer) are part of the observation contract
(:data:`cytosafe.schema.observations.LAB_ITEMS`); their canonical units, accepted units with
factors, LOINC codes (each with the catalogue it was read from) and SDTM ``LBTESTCD``
spellings live in ``data/laboratory_items.toml``. A tidy observation CSV carries them like
any other item (``P1, 2024-03-01T08:00, crp, 5.2, mg/dL``).

Three more ways in, each returning observation rows (``patient_id, time, item, value,
unit, source_file, source_row, source_fields``) for
:func:`~cytosafe.schema.observations.validate_observations`, and the rows not used with
the reason (:class:`LabRows`):

* :func:`labs_from_sdtm_lb` - an SDTM LB domain (``LBTESTCD``, ``LBDTC``,
  ``LBSTRESN``/``LBSTRESU``, else ``LBORRES``/``LBORRESU``), as ``pyreadstat.read_xport``
  returns it;
* :func:`labs_from_fhir` - a FHIR R4 Bundle (a parsed JSON dict) of Observations with
  category ``laboratory`` coded by LOINC (or by the CytoSafe-local code system for items
  without a LOINC code);
* :func:`from_quantification` - the plate-to-patient link: the ``samples`` table of
  ``cytosafe quantify`` joined to a sample map (``sample_id, patient_id, time``), so that
  the calibrated concentrations of patient serum feed the predictors.

Examples
--------
>>> from cytosafe.clinical.labs import convert
>>> convert(1.0, "creatinine", "mg/dL", "umol/L")   # doctest: +ELLIPSIS
88.40...
>>> convert(5.0, "crp", "mg/dL", "mg/L")
50.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cytosafe import data
from cytosafe.errors import InputError
from cytosafe.schema.observations import ITEMS, LAB_ITEMS, MAPPED_COLUMNS

__all__ = [
    "LAB_COLUMNS",
    "LabRows",
    "convert",
    "from_quantification",
    "lab_item",
    "labs_from_fhir",
    "labs_from_sdtm_lb",
    "loinc_codes",
]

_FILE = "laboratory_items.toml"
LOINC_SYSTEM = "http://loinc.org"
# The CytoSafe-local code system of cytosafe.io.fhir (items without a LOINC code).
LOCAL_SYSTEM = "https://cytosafe.org/fhir/CodeSystem/observation-item"
LAB_COLUMNS = MAPPED_COLUMNS


@dataclass
class LabRows:
    """Observation rows of laboratory values and the source rows not used.

    Attributes
    ----------
    observations:
        Columns :data:`LAB_COLUMNS`, ready for
        :func:`~cytosafe.schema.observations.validate_observations` (alone or appended to
        the vital signs of the same patients).
    skipped:
        ``source_file, source_row, reason`` of every source row not used.
    """

    observations: pd.DataFrame
    skipped: pd.DataFrame


def _spec() -> dict[str, Any]:
    return data.load(_FILE, schema="cytosafe.laboratory_items")["item"]


def loinc_codes() -> dict[str, str]:
    """LOINC code -> laboratory item, for every code of ``data/laboratory_items.toml``."""
    return {code: name for name, entry in _spec().items() for code in entry["loinc"]}


def lab_item(name: str) -> dict[str, Any]:
    """The entry of one laboratory item (units, LOINC codes and their source)."""
    spec = _spec()
    if name not in spec:
        raise InputError(
            f"'{name}' is not a laboratory item", field="item", expected=", ".join(spec)
        )
    return spec[name]


def convert(value: Any, item: str, from_unit: str, to_unit: str) -> Any:
    """``value`` of laboratory ``item`` in ``from_unit`` expressed in ``to_unit``.

    Both units must be accepted units of the item (``data/laboratory_items.toml``);
    ``value`` may be a number or a NumPy array.
    """
    units = ITEMS[item].units if item in LAB_ITEMS else None
    if units is None:
        lab_item(item)  # raises the error naming the vocabulary
    for unit in (from_unit, to_unit):
        if unit not in units:
            raise InputError(
                f"unit '{unit}' is not a unit of {item}",
                field="unit",
                expected=" | ".join(units),
            )
    return value * units[from_unit][1] / units[to_unit][1]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(LAB_COLUMNS))


def _skipped(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source_file", "source_row", "reason"])


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value).strip()


def labs_from_sdtm_lb(frame: pd.DataFrame, *, source: str = "lb.xpt") -> LabRows:
    """Laboratory observation rows of an SDTM LB domain.

    Parameters
    ----------
    frame:
        The LB domain as ``pyreadstat.read_xport`` returns it (any column case): ``USUBJID``,
        ``LBTESTCD``, ``LBDTC`` and the standard result ``LBSTRESN``/``LBSTRESU`` (else the
        original ``LBORRES``/``LBORRESU``).
    source:
        The file name, for messages and provenance.

    Tests whose ``LBTESTCD`` is not a spelling of a laboratory item (``lbtestcd`` of
    ``data/laboratory_items.toml``) and rows with ``LBSTAT = NOT DONE`` are skipped with
    the reason; a missing required variable is an :class:`~cytosafe.errors.InputError`
    naming the file. Source rows count from 1 (the first record), as
    :mod:`cytosafe.io.sdtm` does.
    """
    lb = frame.copy()
    lb.columns = [str(c).upper() for c in lb.columns]
    missing = [c for c in ("USUBJID", "LBTESTCD", "LBDTC") if c not in lb.columns]
    if missing:
        raise InputError(
            "the LB domain lacks variable(s) " + ", ".join(missing),
            file=source,
            expected="USUBJID, LBTESTCD, LBDTC and LBSTRESN/LBSTRESU or LBORRES/LBORRESU",
        )
    std = "LBSTRESN" in lb.columns and "LBSTRESU" in lb.columns
    value_col, unit_col = ("LBSTRESN", "LBSTRESU") if std else ("LBORRES", "LBORRESU")
    for col in (value_col, unit_col):
        if col not in lb.columns:
            raise InputError(
                f"the LB domain lacks variable {col}",
                file=source,
                expected="LBSTRESN/LBSTRESU or LBORRES/LBORRESU",
            )
    by_code = {
        str(code).upper(): name for name, entry in _spec().items() for code in entry["lbtestcd"]
    }
    fields = f"time=LBDTC;item=LBTESTCD;value={value_col};unit={unit_col}"
    rows, skipped = [], []
    stat = lb["LBSTAT"] if "LBSTAT" in lb.columns else pd.Series("", index=lb.index)
    for n, (pid, code, when, value, unit, status) in enumerate(
        zip(
            lb["USUBJID"],
            lb["LBTESTCD"],
            lb["LBDTC"],
            lb[value_col],
            lb[unit_col],
            stat,
            strict=True,
        ),
        start=1,
    ):
        code_text = _text(code).upper()
        if _text(status).upper() == "NOT DONE":
            skipped.append((source, n, f"LBTESTCD {code_text}: LBSTAT NOT DONE"))
            continue
        item = by_code.get(code_text)
        if item is None:
            skipped.append((source, n, f"LBTESTCD {code_text} is not a laboratory item read"))
            continue
        rows.append((_text(pid), _text(when), item, _text(value), _text(unit), source, n, fields))
    return LabRows(_frame(rows), _skipped(skipped))


def _codings(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(concept, dict):
        return []
    return [
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in concept.get("coding") or []
        if isinstance(c, dict)
    ]


def _is_laboratory(resource: dict) -> bool:
    for cat in resource.get("category") or []:
        for system, code in _codings(cat):
            if code == "laboratory" and system.endswith("observation-category"):
                return True
    return False


def labs_from_fhir(bundle: dict, *, source: str = "bundle.json") -> LabRows:
    """Laboratory observation rows of a FHIR R4 Bundle (the parsed JSON).

    Reads Observations of category ``laboratory``
    (``http://terminology.hl7.org/CodeSystem/observation-category``) whose code is a LOINC
    code of a laboratory item (``data/laboratory_items.toml``) or, for items without one,
    the CytoSafe-local code system with the item name as code; value from
    ``valueQuantity`` (``code``, else ``unit``), time from ``effectiveDateTime`` (or
    ``effectiveInstant``, ``effectivePeriod.start``), patient from ``subject.reference``
    (``Patient/<id>`` gives ``<id>``). Entries with status ``entered-in-error``,
    ``cancelled`` or ``not-done``, other categories and other codes are skipped with the
    reason. Source rows are entry numbers counted from 1, as :mod:`cytosafe.io.fhir`
    counts them.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InputError("not a FHIR Bundle", file=source, field="resourceType", expected="Bundle")
    loinc = loinc_codes()
    fields = (
        "time=Observation.effectiveDateTime;value=Observation.valueQuantity.value;"
        "unit=Observation.valueQuantity.code"
    )
    rows, skipped = [], []
    for n, entry in enumerate(bundle.get("entry") or [], start=1):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "Observation":
            continue  # other resources are the vital-sign reader's business
        status = str(res.get("status") or "")
        if status in ("entered-in-error", "cancelled", "not-done"):
            skipped.append((source, n, f"Observation with status {status}"))
            continue
        if not _is_laboratory(res):
            continue
        item = None
        for system, code in _codings(res.get("code")):
            if system == LOINC_SYSTEM and code in loinc:
                item = loinc[code]
            elif system == LOCAL_SYSTEM and code in LAB_ITEMS:
                item = code
            if item:
                break
        if item is None:
            codes = ", ".join(c for _, c in _codings(res.get("code"))) or "(none)"
            skipped.append((source, n, f"laboratory code {codes} is not a laboratory item read"))
            continue
        ref = str((res.get("subject") or {}).get("reference") or "")
        pid = ref.split("/", 1)[1] if ref.startswith("Patient/") else ref
        when = res.get("effectiveDateTime") or res.get("effectiveInstant")
        if not when:
            when = (res.get("effectivePeriod") or {}).get("start") or ""
        q = res.get("valueQuantity") or {}
        unit = q.get("code") or q.get("unit") or ""
        rows.append((pid, str(when), item, _text(q.get("value")), str(unit), source, n, fields))
    return LabRows(_frame(rows), _skipped(skipped))


def _analyte_items() -> dict[str, str]:
    return {
        str(a).upper(): name for name, entry in _spec().items() for a in entry.get("analytes", [])
    }


def from_quantification(
    samples: pd.DataFrame, sample_map: pd.DataFrame, *, source: str = "samples.csv"
) -> LabRows:
    """Laboratory observations of patient serum quantified on a plate.

    Parameters
    ----------
    samples:
        The ``samples`` table of ``cytosafe quantify`` (``samples.csv``): ``sample_id``,
        ``analyte``, ``concentration`` and ``concentration_unit`` (pg/mL when absent), and
        optionally ``plate_id``, ``sample_type`` and ``flags``.
    sample_map:
        One row per patient sample: ``sample_id, patient_id, time`` (ISO 8601 draw time),
        optionally ``plate_id`` when one sample id is used on several plates.
    source:
        The samples file name, for provenance.

    Returns
    -------
    LabRows
        One observation per patient sample and analyte that is a laboratory item (by its
        name: ``IL-6``, ``IFN-gamma``, ``MCP-1``, ``IL-1RA``, ``sgp130``, ...; see
        ``analytes`` in ``data/laboratory_items.toml``), its concentration in the unit of
        the plate (converted to the item's canonical unit on validation). Skipped, with
        the reason: analytes that are no laboratory item, samples not in the map (standards
        and controls are not patients), and concentrations that are not numbers (below
        the LLOQ, above the ULOQ, failed curves: the plate's flags say which) - a value
        outside the range of the curve is not a measurement to alert on.

    A sample id of the map that is not on the plate, or a map row without patient or
    time, is an :class:`~cytosafe.errors.InputError` naming the row.
    """
    for name, frame, need in (
        ("samples table", samples, ("sample_id", "analyte", "concentration")),
        ("sample map", sample_map, ("sample_id", "patient_id", "time")),
    ):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise InputError(
                f"the {name} lacks column(s) " + ", ".join(missing),
                file=source if name == "samples table" else None,
                expected=", ".join(need),
            )
    smap = sample_map.reset_index(drop=True).copy()
    for col in ("sample_id", "patient_id", "time"):
        smap[col] = smap[col].astype(object).where(smap[col].notna(), "").astype(str).str.strip()
    empty = (smap["patient_id"] == "") | (smap["time"] == "") | (smap["sample_id"] == "")
    if empty.any():
        r = int(np.flatnonzero(empty.to_numpy())[0])
        col = next(c for c in ("sample_id", "patient_id", "time") if smap[c].iat[r] == "")
        raise InputError(
            f"sample map row has no {col}",
            row=r + 2,
            field=col,
            expected="sample_id, patient_id and an ISO 8601 time on every row",
        )
    key = ["plate_id", "sample_id"] if "plate_id" in smap.columns else ["sample_id"]
    dup = smap.duplicated(key)
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(
            f"sample '{smap['sample_id'].iat[r]}' is mapped twice",
            row=r + 2,
            field="sample_id",
            expected="one patient and time per sample"
            + (" and plate" if "plate_id" in smap.columns else ""),
        )
    s = samples.reset_index(drop=True).copy()
    s["sample_id"] = s["sample_id"].astype(object).where(s["sample_id"].notna(), "").astype(str)
    if "plate_id" in key:
        s["plate_id"] = s["plate_id"].astype(str)
        smap["plate_id"] = smap["plate_id"].astype(str)
    on_plate = set(map(tuple, s[key].to_numpy().tolist()))
    absent = [
        i for i, k in enumerate(map(tuple, smap[key].to_numpy().tolist())) if k not in on_plate
    ]
    if absent:
        r = absent[0]
        raise InputError(
            f"sample '{smap['sample_id'].iat[r]}' of the sample map is not on the plate(s)",
            row=r + 2,
            field="sample_id",
            expected="sample ids of the quantified samples table",
        )
    lookup = {tuple(k): i for i, k in enumerate(smap[key].to_numpy().tolist())}
    items = _analyte_items()
    unit = (
        s["concentration_unit"].astype(object).where(s["concentration_unit"].notna(), "")
        if "concentration_unit" in s.columns
        else pd.Series("", index=s.index)
    )
    conc = pd.to_numeric(s["concentration"], errors="coerce").to_numpy(dtype=float)
    flags = s["flags"].astype(str) if "flags" in s.columns else pd.Series("", index=s.index)
    rows, skipped = [], []
    fields = "value=concentration;unit=concentration_unit"
    for i, k in enumerate(map(tuple, s[key].to_numpy().tolist())):
        n = i + 2  # CSV line of samples.csv (header = 1)
        analyte = str(s["analyte"].iat[i]).strip()
        m = lookup.get(k)
        if m is None:
            skipped.append((source, n, f"sample '{k[-1]}' is not in the sample map"))
            continue
        item = items.get(analyte.upper())
        if item is None:
            skipped.append((source, n, f"analyte '{analyte}' is not a laboratory item"))
            continue
        if not np.isfinite(conc[i]):
            why = flags.iat[i] if flags.iat[i] not in ("", "nan") else "no concentration"
            skipped.append((source, n, f"{analyte} of sample '{k[-1]}': {why}"))
            continue
        rows.append(
            (
                smap["patient_id"].iat[m],
                smap["time"].iat[m],
                item,
                f"{conc[i]:.12g}",
                str(unit.iat[i]).strip() or "pg/mL",
                source,
                n,
                fields,
            )
        )
    return LabRows(_frame(rows), _skipped(skipped))
