"""CDISC SDTM domains (SAS transport .xpt) mapped onto the clinical observation table.

Reads the DM, EX, VS, CM, PR and AE domains with ``pyreadstat.read_xport`` and returns the
observation table of :mod:`cytosafe.schema.observations` (validated, with every row
keeping its file, record number and the SDTM variables it came from, so that a bad value
is reported as e.g. ``vs.xpt, row 12, field 'VSSTRESU'``).

Mapping (SDTM IG 3.x variable names):

| domain | rows used | observation item | time | value / unit |
|---|---|---|---|---|
| DM | one per ``USUBJID`` (a duplicate is an error) | ``death`` when ``DTHFL = "Y"`` and a fatal CRS is in AE | ``DTHDTC`` | cause from AE (``CRS``) |
| EX | the product's administrations (``EXTRT`` = ``product``; all when there is one treatment) | ``infusion`` (the first) | ``EXSTDTC`` | ``EXTRT`` |
| VS | ``VSTESTCD`` in :data:`VS_TESTS` | ``TEMP`` temperature, ``SYSBP`` systolic_bp, ``OXYSAT`` spo2, ``WEIGHT`` weight, ``FIO2`` fio2 (sponsor-defined), ``O2FLOW`` oxygen_flow (sponsor-defined) | ``VSDTC`` | ``VSSTRESN``/``VSSTRESU`` (standard result), else ``VSORRES``/``VSORRESU`` |
| CM | ``CMDECOD`` (else ``CMTRT``) in :data:`CM_TREATMENTS` | treatments at ``CMSTDTC``; vasopressors: rate ``CMDOSE``/``CMDOSU`` at ``CMSTDTC`` and 0 at ``CMENDTC`` | | |
| PR | ``PRDECOD`` (else ``PRTRT``) in :data:`PR_DEVICES` / ``FLUID BOLUS`` | ``oxygen_device`` at ``PRSTDTC``, ``room_air`` at ``PRENDTC``; flow from ``PRDOSE`` (L/min); ``fluid_bolus`` (mL) | | |
| AE | ``AEDECOD`` = Cytokine release syndrome | a fatal outcome (``AEOUT = "FATAL"``) gives ``death`` with cause CRS at ``DTHDTC`` (else ``AEENDTC``); the site's ``AETOXGR`` is kept in :attr:`SDTMData.reported_grades` for comparison | | |

VS rows whose ``VSTESTCD`` grading does not use (``PULSE``, ``DIABP``, ``RESP``, ...) and
CM/PR rows of other treatments are not errors: they are listed in
:attr:`SDTMData.skipped` with the reason, never used. Date-times must carry a time of day
(``2024-05-01T14:30``): a date alone cannot place an observation within the day and is an
error (or quarantined).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.errors import InputError
from cytosafe.schema.observations import MAPPED_COLUMNS, Observations, validate_observations

__all__ = ["CM_TREATMENTS", "PR_DEVICES", "VS_TESTS", "SDTMData", "read_domain", "read_sdtm"]

#: VSTESTCD -> observation item.
VS_TESTS = {
    "TEMP": "temperature",
    "SYSBP": "systolic_bp",
    "OXYSAT": "spo2",
    "WEIGHT": "weight",
    "FIO2": "fio2",
    "O2FLOW": "oxygen_flow",
}
#: SDTM unit spellings (CDISC controlled terminology) -> observation units.
_UNITS = {"C": "C", "F": "F", "mmHg": "mmHg", "%": "%", "kg": "kg", "LB": "lb", "L/min": "L/min",
          "ug/min": "ug/min", "ug/kg/min": "ug/kg/min", "U/min": "U/min", "U/h": "U/h",
          "mL": "mL", "mg": "mg", "mg/kg": "mg/kg", "g": "g"}  # fmt: skip
#: Upper-case CMDECOD/CMTRT -> observation item.
CM_TREATMENTS = {
    "TOCILIZUMAB": "tocilizumab",
    "SILTUXIMAB": "siltuximab",
    "ANAKINRA": "anakinra",
    "DEXAMETHASONE": "corticosteroid",
    "METHYLPREDNISOLONE": "corticosteroid",
    "PREDNISONE": "corticosteroid",
    "PREDNISOLONE": "corticosteroid",
    "HYDROCORTISONE": "corticosteroid",
    "PARACETAMOL": "antipyretic",
    "ACETAMINOPHEN": "antipyretic",
    "IBUPROFEN": "antipyretic",
    "METAMIZOLE": "antipyretic",
    "NOREPINEPHRINE": "norepinephrine",
    "NORADRENALINE": "norepinephrine",
    "EPINEPHRINE": "epinephrine",
    "ADRENALINE": "epinephrine",
    "DOPAMINE": "dopamine",
    "PHENYLEPHRINE": "phenylephrine",
    "VASOPRESSIN": "vasopressin",
}
_VASOPRESSORS = {"norepinephrine", "epinephrine", "dopamine", "phenylephrine", "vasopressin"}
#: Upper-case PRDECOD/PRTRT -> oxygen device.
PR_DEVICES = {
    "NASAL CANNULA": "nasal_cannula",
    "LOW FLOW NASAL CANNULA": "nasal_cannula",
    "BLOW-BY OXYGEN": "blow_by",
    "HIGH FLOW NASAL CANNULA": "high_flow_nasal_cannula",
    "SIMPLE FACE MASK": "simple_face_mask",
    "FACE MASK": "simple_face_mask",
    "VENTURI MASK": "venturi_mask",
    "NON-REBREATHER MASK": "non_rebreather_mask",
    "CONTINUOUS POSITIVE AIRWAY PRESSURE": "cpap",
    "CPAP": "cpap",
    "BILEVEL POSITIVE AIRWAY PRESSURE": "bipap",
    "BIPAP": "bipap",
    "MECHANICAL VENTILATION": "mechanical_ventilation",
    "INVASIVE MECHANICAL VENTILATION": "mechanical_ventilation",
}
_CRS_TERMS = {"CYTOKINE RELEASE SYNDROME", "CRS"}


@dataclass
class SDTMData:
    """What :func:`read_sdtm` returns.

    Attributes
    ----------
    observations:
        The validated observation table (:class:`~cytosafe.schema.observations.Observations`).
    skipped:
        SDTM rows not used for grading, with ``source_file, source_row, reason``.
    reported_grades:
        The site's CRS adverse events: ``patient_id, start, end, reported_grade, outcome``.
    """

    observations: Observations
    skipped: pd.DataFrame
    reported_grades: pd.DataFrame


def _read(path: Path, domain: str) -> pd.DataFrame:
    import pyreadstat

    if not path.exists():
        raise InputError(f"no such {domain} file", file=str(path))
    try:
        df, _ = pyreadstat.read_xport(str(path))
    except Exception as exc:  # pyreadstat raises its own ReadstatError and OSError
        raise InputError(f"cannot read the SAS transport file: {exc}", file=str(path)) from None
    df.columns = [str(c).upper() for c in df.columns]
    df["_row"] = np.arange(len(df)) + 1
    return df


def read_domain(path: str | Path, domain: str) -> pd.DataFrame:
    """One SDTM domain as a DataFrame: upper-case variable names and ``_row``, the record
    number counted from 1 (for messages); a file that cannot be read is an
    :class:`~cytosafe.errors.InputError` naming it. Used for domains mapped elsewhere
    (LB: :func:`cytosafe.clinical.labs.labs_from_sdtm_lb`)."""
    return _read(Path(path), domain)


def _need(df: pd.DataFrame, cols: list[str], path: Path, domain: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(
            f"the {domain} domain lacks variable(s) " + ", ".join(missing),
            file=str(path),
            expected=", ".join(cols),
        )


def _str(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series([""] * len(df), index=df.index, dtype=object)
    s = df[col].astype(object).where(df[col].notna(), "")
    return s.map(lambda v: (f"{v:.12g}" if isinstance(v, float) else str(v)).strip())


def _check_times(
    df: pd.DataFrame, col: str, path: Path, errors: str, skipped: list
) -> pd.DataFrame:
    """Rows whose --DTC lacks a time of day are errors (or quarantined into ``skipped``)."""
    text = _str(df, col)
    bad = (text != "") & (text.str.len() < 16)
    if bad.any():
        first = df.loc[bad].iloc[0]
        if errors == "raise":
            raise InputError(
                f"'{text[bad].iloc[0]}' has no time of day",
                file=str(path),
                row=int(first["_row"]),
                field=col,
                expected="an ISO 8601 date-time such as 2024-05-01T14:30",
            )
        for r in df.loc[bad, "_row"]:
            skipped.append((str(path), int(r), f"{col}: no time of day"))
    return df.loc[~bad]


def _obs(path, rows, patient, time, item, value, unit, fields) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": patient.to_numpy(),
            "time": time.to_numpy(),
            "item": item if isinstance(item, str) else item.to_numpy(),
            "value": value if isinstance(value, str) else value.to_numpy(),
            "unit": unit if isinstance(unit, str) else unit.to_numpy(),
            "source_file": str(path),
            "source_row": rows.to_numpy(),
            "source_fields": fields,
        }
    )


def read_sdtm(
    dm: str | Path,
    vs: str | Path,
    *,
    ex: str | Path | None = None,
    cm: str | Path | None = None,
    pr: str | Path | None = None,
    ae: str | Path | None = None,
    product: str | None = None,
    errors: str = "raise",
    extra: pd.DataFrame | None = None,
    extra_skipped: pd.DataFrame | None = None,
) -> SDTMData:
    """Read SDTM domains from .xpt files into one validated observation table.

    Parameters
    ----------
    dm, vs:
        Demographics and vital signs (required).
    ex, cm, pr, ae:
        Exposure (the infusion, hour 0), concomitant medications (treatments and
        vasopressors), procedures (oxygen devices, fluid boluses) and adverse events
        (fatal CRS, the site's grades).
    product:
        ``EXTRT`` of the cell product when EX holds several treatments (e.g. the
        lymphodepleting chemotherapy as well).
    errors:
        ``"raise"`` or ``"quarantine"`` (see
        :func:`cytosafe.schema.observations.validate_observations`).
    extra:
        Observation rows already mapped from another domain, validated with the rest
        (columns :data:`~cytosafe.schema.observations.MAPPED_COLUMNS`): the laboratory
        results of LB (:func:`cytosafe.clinical.labs.labs_from_sdtm_lb`, with
        :func:`read_domain`), so that predictors read them beside the vital signs. Their
        subjects must be in DM.
    extra_skipped:
        The rows of that domain not used (``source_file, source_row, reason``), listed in
        :attr:`SDTMData.skipped`.

    Returns
    -------
    SDTMData
    """
    skipped: list[tuple[str, int, str]] = []
    parts: list[pd.DataFrame] = []

    dm_path = Path(dm)
    d = _read(dm_path, "DM")
    _need(d, ["USUBJID"], dm_path, "DM")
    dup = d["USUBJID"].duplicated()
    if dup.any():
        r = d.loc[dup].iloc[0]
        raise InputError(
            f"duplicate subject '{r['USUBJID']}' in DM",
            file=str(dm_path),
            row=int(r["_row"]),
            field="USUBJID",
            expected="one DM record per subject",
        )
    subjects = set(_str(d, "USUBJID"))

    def known(df: pd.DataFrame, path: Path) -> pd.DataFrame:
        ids = _str(df, "USUBJID")
        bad = ~ids.isin(subjects)
        if bad.any():
            r = df.loc[bad].iloc[0]
            raise InputError(
                f"subject '{r['USUBJID']}' is not in DM",
                file=str(path),
                row=int(r["_row"]),
                field="USUBJID",
                expected="subjects listed in the DM domain",
            )
        return df

    if ex is not None:
        p = Path(ex)
        e = known(_read(p, "EX"), p)
        _need(e, ["USUBJID", "EXTRT", "EXSTDTC"], p, "EX")
        treatments = sorted(set(_str(e, "EXTRT")))
        if product is None and len(treatments) > 1:
            raise InputError(
                "EX holds several treatments: " + ", ".join(treatments),
                file=str(p),
                field="EXTRT",
                expected="product= naming the cell product",
            )
        if product is not None:
            e = e[_str(e, "EXTRT").str.upper() == product.upper()]
        e = _check_times(e, "EXSTDTC", p, errors, skipped)
        e = e.assign(_t=_str(e, "EXSTDTC")).sort_values(["USUBJID", "_t"])
        first = e.drop_duplicates("USUBJID")
        parts.append(_obs(p, first["_row"], _str(first, "USUBJID"), first["_t"], "infusion",
                          _str(first, "EXTRT"), "", "time=EXSTDTC;value=EXTRT"))  # fmt: skip

    vs_path = Path(vs)
    v = known(_read(vs_path, "VS"), vs_path)
    _need(v, ["USUBJID", "VSTESTCD", "VSDTC"], vs_path, "VS")
    code = _str(v, "VSTESTCD").str.upper()
    use = code.isin(list(VS_TESTS))
    for r, c in zip(v.loc[~use, "_row"], code[~use], strict=True):
        skipped.append((str(vs_path), int(r), f"VSTESTCD {c} is not used for grading"))
    v = _check_times(v.loc[use], "VSDTC", vs_path, errors, skipped)
    std = "VSSTRESN" in v.columns and "VSSTRESU" in v.columns
    value = _str(v, "VSSTRESN" if std else "VSORRES")
    unit = _str(v, "VSSTRESU" if std else "VSORRESU")
    fields = f"time=VSDTC;item=VSTESTCD;value={'VSSTRESN' if std else 'VSORRES'};unit={'VSSTRESU' if std else 'VSORRESU'}"
    parts.append(_obs(vs_path, v["_row"], _str(v, "USUBJID"), _str(v, "VSDTC"),
                      _str(v, "VSTESTCD").str.upper().map(VS_TESTS), value,
                      unit.map(lambda u: _UNITS.get(u, u)), fields))  # fmt: skip

    if cm is not None:
        p = Path(cm)
        c = known(_read(p, "CM"), p)
        _need(c, ["USUBJID", "CMSTDTC"], p, "CM")
        name = _str(c, "CMDECOD").where(_str(c, "CMDECOD") != "", _str(c, "CMTRT")).str.upper()
        item = name.map(CM_TREATMENTS)
        for r, n in zip(c.loc[item.isna(), "_row"], name[item.isna()], strict=True):
            skipped.append((str(p), int(r), f"CM treatment {n} is not used for grading"))
        c = _check_times(c.loc[item.notna()], "CMSTDTC", p, errors, skipped)
        item = item.loc[c.index]
        unit = _str(c, "CMDOSU").map(lambda u: _UNITS.get(u, u))
        fields = "time=CMSTDTC;item=CMDECOD;value=CMDOSE;unit=CMDOSU"
        parts.append(_obs(p, c["_row"], _str(c, "USUBJID"), _str(c, "CMSTDTC"), item,
                          _str(c, "CMDOSE"), unit, fields))  # fmt: skip
        vaso = item.isin(list(_VASOPRESSORS)) & (_str(c, "CMENDTC") != "")
        if vaso.any():
            cv = _check_times(c.loc[vaso], "CMENDTC", p, errors, skipped)
            parts.append(_obs(p, cv["_row"], _str(cv, "USUBJID"), _str(cv, "CMENDTC"),
                              item.loc[cv.index], "0", unit.loc[cv.index],
                              "time=CMENDTC;item=CMDECOD;unit=CMDOSU"))  # fmt: skip

    if pr is not None:
        p = Path(pr)
        q = known(_read(p, "PR"), p)
        _need(q, ["USUBJID", "PRSTDTC"], p, "PR")
        name = _str(q, "PRDECOD").where(_str(q, "PRDECOD") != "", _str(q, "PRTRT")).str.upper()
        device = name.map(PR_DEVICES)
        bolus = name == "FLUID BOLUS"
        other = device.isna() & ~bolus
        for r, n in zip(q.loc[other, "_row"], name[other], strict=True):
            skipped.append((str(p), int(r), f"PR procedure {n} is not used for grading"))
        q = _check_times(q.loc[~other], "PRSTDTC", p, errors, skipped)
        device, bolus = device.loc[q.index], bolus.loc[q.index]
        dq = q.loc[device.notna()]
        parts.append(_obs(p, dq["_row"], _str(dq, "USUBJID"), _str(dq, "PRSTDTC"),
                          "oxygen_device", device.loc[dq.index], "", "time=PRSTDTC;value=PRDECOD"))  # fmt: skip
        flow = dq.loc[_str(dq, "PRDOSE") != ""]
        if len(flow):
            parts.append(_obs(p, flow["_row"], _str(flow, "USUBJID"), _str(flow, "PRSTDTC"),
                              "oxygen_flow", _str(flow, "PRDOSE"),
                              _str(flow, "PRDOSU").map(lambda u: _UNITS.get(u, u)),
                              "time=PRSTDTC;value=PRDOSE;unit=PRDOSU"))  # fmt: skip
        ended = dq.loc[_str(dq, "PRENDTC") != ""]
        if len(ended):
            ended = _check_times(ended, "PRENDTC", p, errors, skipped)
            parts.append(_obs(p, ended["_row"], _str(ended, "USUBJID"), _str(ended, "PRENDTC"),
                              "oxygen_device", "room_air", "", "time=PRENDTC"))  # fmt: skip
        bq = q.loc[bolus]
        if len(bq):
            parts.append(_obs(p, bq["_row"], _str(bq, "USUBJID"), _str(bq, "PRSTDTC"),
                              "fluid_bolus", _str(bq, "PRDOSE"),
                              _str(bq, "PRDOSU").map(lambda u: _UNITS.get(u, u)),
                              "time=PRSTDTC;value=PRDOSE;unit=PRDOSU"))  # fmt: skip

    reported = pd.DataFrame(columns=["patient_id", "start", "end", "reported_grade", "outcome"])
    if ae is not None:
        p = Path(ae)
        a = known(_read(p, "AE"), p)
        _need(a, ["USUBJID", "AEDECOD"], p, "AE")
        crs = a[_str(a, "AEDECOD").str.upper().isin(_CRS_TERMS)]
        reported = pd.DataFrame(
            {
                "patient_id": _str(crs, "USUBJID").to_numpy(),
                "start": _str(crs, "AESTDTC").to_numpy(),
                "end": _str(crs, "AEENDTC").to_numpy(),
                "reported_grade": pd.to_numeric(_str(crs, "AETOXGR"), errors="coerce").to_numpy(),
                "outcome": _str(crs, "AEOUT").to_numpy(),
            }
        )
        fatal = crs[_str(crs, "AEOUT").str.upper() == "FATAL"]
        if len(fatal):
            dth = d.set_index(_str(d, "USUBJID"))
            dthdtc = _str(dth, "DTHDTC") if "DTHDTC" in dth.columns else None
            ids = _str(fatal, "USUBJID")
            when = ids.map(dthdtc) if dthdtc is not None else pd.Series("", index=ids.index)
            when = when.where(when.fillna("") != "", _str(fatal, "AEENDTC"))
            f = fatal.assign(_t=when)
            f = _check_times(f, "_t", p, errors, skipped)
            parts.append(_obs(p, f["_row"], _str(f, "USUBJID"), f["_t"], "death", "CRS", "",
                              "time=DTHDTC;value=AEDECOD"))  # fmt: skip

    if extra is not None and len(extra):
        unknown = ~extra["patient_id"].astype(str).isin(subjects)
        if unknown.any():
            r = extra.loc[unknown].iloc[0]
            raise InputError(
                f"subject '{r['patient_id']}' is not in DM",
                file=str(r["source_file"]),
                row=int(r["source_row"]),
                field="USUBJID",
                expected="subjects listed in the DM domain",
            )
        parts.append(extra[list(MAPPED_COLUMNS)])
    if extra_skipped is not None and len(extra_skipped):
        skipped.extend(
            (str(f), int(r), str(w))
            for f, r, w in zip(
                extra_skipped["source_file"],
                extra_skipped["source_row"],
                extra_skipped["reason"],
                strict=True,
            )
        )
    table = pd.concat(parts, ignore_index=True)
    source = ", ".join(str(x) for x in (dm, vs, ex, cm, pr, ae) if x is not None)
    obs = validate_observations(table, source=source, errors=errors)
    skip = pd.DataFrame(skipped, columns=["source_file", "source_row", "reason"])
    if len(obs.quarantine):
        q = obs.quarantine[["source_file", "source_row", "reason"]]
        skip = pd.concat([skip, q], ignore_index=True)
    return SDTMData(obs, skip, reported)
