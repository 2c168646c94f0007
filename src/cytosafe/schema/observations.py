"""The observation table: the contract every clinical reader returns and grading reads.

It lives on the bottom layer beside the measurement table, so that the readers of clinical
data (:mod:`cytosafe.io.sdtm`, :mod:`cytosafe.io.fhir`) and grading
(:mod:`cytosafe.clinical`) share it without importing each other. The plausible ranges and
the assumed dosing weight come from the grading criteria file
(``data/clinical_scales.toml``, sections ``[plausible]`` and ``[common]``).

Long format, one row per observation:

| column | meaning |
|---|---|
| ``patient_id`` | the patient (a string; SDTM ``USUBJID``, FHIR ``Patient`` id) |
| ``time`` | ISO 8601 date-time (an offset is converted to UTC; none means UTC, see below) |
| ``item`` | what was observed, from :data:`ITEMS` |
| ``value`` | the value: a number, or a word for categorical items |
| ``unit`` | the unit of a numeric value (see :data:`ITEMS`) |

Optional: ``source_file``, ``source_row`` (provenance kept for error messages).

Items (the controlled vocabulary):

* ``infusion`` - value: the product; its time is hour 0 of the patient. ``death`` - value:
  the cause (``CRS`` or ``cytokine release syndrome`` grades 5).
* ``temperature`` (C or F, stored as C), ``systolic_bp`` (mmHg), ``spo2`` (%),
  ``weight`` (kg or lb; the first weight is the dosing weight for ug/kg/min rates).
* ``oxygen_device`` (one of :data:`DEVICES`), ``oxygen_flow`` (L/min), ``fio2`` (%).
* vasopressors ``norepinephrine, epinephrine, phenylephrine`` (ug/min or ug/kg/min;
  stored as ug/min), ``dopamine`` (ug/kg/min or ug/min; stored as ug/kg/min),
  ``vasopressin`` (U/min or U/h; stored as U/min): the current infusion rate, 0 when
  stopped. ``fluid_bolus`` (mL).
* treatments ``antipyretic, tocilizumab, corticosteroid, anakinra, siltuximab`` (value:
  the dose, any unit, may be empty): events at their time.
* ICANS: ``ice_score`` (0-10), ``consciousness`` (:data:`CONSCIOUSNESS`), ``seizure``
  (``none, rapidly_resolving, prolonged``), ``motor_findings`` (``none,
  deep_focal_weakness``), ``raised_icp`` (``none, focal_edema, diffuse_edema``).
* laboratory (:data:`LAB_ITEMS`; units, conversions, LOINC codes and plausible ranges in
  ``data/laboratory_items.toml``): ``il6``, ``ifng``, ``mcp1``, ``il1ra`` (pg/mL; ng/mL,
  ng/L), ``sgp130`` (ng/mL; pg/mL, ug/mL), ``crp`` (mg/L; mg/dL x 10), ``ferritin`` (ng/mL =
  ug/L), ``ldh`` (U/L; ukat/L x 60), ``platelets`` (10^9/L = 10^3/uL; /uL x 0.001),
  ``creatinine`` (mg/dL; umol/L / 88.40), ``fibrinogen`` (g/L; mg/dL x 0.01), ``d_dimer``
  (mg/L FEU; a unit that does not say FEU is refused: D-dimer units are not FEU). A
  laboratory value is a measurement at its time; grading ignores it (it neither holds
  nor adds a row to the graded timeline); the predictors of
  :mod:`cytosafe.clinical.predict` read it.

**Time zones.** A time with a UTC offset (``2024-03-01T14:30:00+01:00``, ``...Z``) is
converted to UTC. A time without one is read as UTC, or, given ``timezone`` (an IANA name
such as ``Europe/Berlin``; ``cytosafe grade --timezone``), as local time there, daylight
saving included. Without ``timezone``, a patient whose times mix both kinds is an
:class:`~cytosafe.errors.InputError` naming the rows: an hour's shift between the two
would otherwise move observations silently. A local time that a daylight-saving change
makes ambiguous or skips is an error naming its row.

**Baseline.** Observations before the patient's infusion are the baseline: kept, shown,
never graded (see :mod:`cytosafe.clinical.states`).

**States hold.** An oxygen device, flow, FiO2, vasopressor rate, temperature, blood
pressure, SpO2 and ICANS finding holds from its time until the next observation of the
same item for the same patient (a vasopressor stops only at an observed rate of 0, and
room air only when ``room_air`` is charted). Events (infusion, treatments, fluid
boluses, death) happen at their time only.

Bad rows (unknown items or units, impossible values such as 60 C or SpO2 140 %, a
temperature in F labelled C that falls outside the plausible range, duplicate
observations of one item at one time, a second infusion, observations after death)
raise :class:`~cytosafe.errors.InputError` naming file, row and field, or with
``errors="quarantine"`` are set aside with a reason in
:attr:`Observations.quarantine`; they are never used silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from cytosafe import data
from cytosafe.errors import InputError, SchemaError

__all__ = [
    "CONSCIOUSNESS",
    "DEVICES",
    "EVENT_ITEMS",
    "ITEMS",
    "LAB_ITEMS",
    "MAPPED_COLUMNS",
    "OBSERVATION_COLUMNS",
    "TREATMENTS",
    "VASOPRESSORS",
    "Observations",
    "read_observation_table",
    "read_observations",
    "validate_observations",
]

OBSERVATION_COLUMNS = ("patient_id", "time", "item", "value", "unit")
#: An observation table mapped from another standard (SDTM, FHIR, a quantified plate):
#: the observation columns and where each row came from.
MAPPED_COLUMNS = (*OBSERVATION_COLUMNS, "source_file", "source_row", "source_fields")

# The grading criteria file, source of the plausible ranges (cytosafe.clinical.criteria
# reads the same file for the scales).
_CRITERIA = "clinical_scales.toml"

# A clock time followed by "Z" or a +hh, +hhmm or +hh:mm offset (a date alone, 2024-03-01,
# ends in "-01" and is no offset).
_OFFSET = re.compile(r"[T ]\d{1,2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")

#: Oxygen devices, in the order of their codes in the state table.
DEVICES = (
    "room_air",
    "nasal_cannula",
    "blow_by",
    "high_flow_nasal_cannula",
    "simple_face_mask",
    "venturi_mask",
    "non_rebreather_mask",
    "cpap",
    "bipap",
    "mechanical_ventilation",
)
CONSCIOUSNESS = (
    "awake",
    "awakens_spontaneously",
    "awakens_to_voice",
    "awakens_to_tactile",
    "unarousable",
)
SEIZURE = ("none", "rapidly_resolving", "prolonged")
MOTOR = ("none", "deep_focal_weakness")
RAISED_ICP = ("none", "focal_edema", "diffuse_edema")
VASOPRESSORS = ("norepinephrine", "epinephrine", "dopamine", "phenylephrine", "vasopressin")
TREATMENTS = ("antipyretic", "tocilizumab", "corticosteroid", "anakinra", "siltuximab")
EVENT_ITEMS = ("infusion", "death", "fluid_bolus", *TREATMENTS)

#: The laboratory vocabulary file (units, LOINC codes, plausible ranges).
_LABS = "laboratory_items.toml"

_UG_MIN = {"ug/min": ("rate", 1.0), "mcg/min": ("rate", 1.0), "ug/kg/min": ("per_kg", 1.0),
           "mcg/kg/min": ("per_kg", 1.0)}  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One item of the vocabulary: its kind and accepted units (unit -> factor to canonical)."""

    name: str
    kind: str  # "number", "category", "text", "dose"
    units: dict[str, tuple[str, float]] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    canonical: str = ""


def _vaso(name: str, canonical: str) -> Item:
    return Item(name, "number", dict(_UG_MIN), canonical=canonical)


#: The controlled vocabulary. ``units`` maps each accepted spelling to (kind, factor):
#: kind ``"rate"`` multiplies by factor; ``"per_kg"`` also needs the weight; the two
#: temperature scales are special-cased.
ITEMS: dict[str, Item] = {
    i.name: i
    for i in (
        Item("infusion", "text"),
        Item("death", "text"),
        Item(
            "temperature",
            "number",
            {u: ("C", 1.0) for u in ("C", "°C", "degC", "Cel", "celsius")}
            | {u: ("F", 1.0) for u in ("F", "°F", "degF", "[degF]", "fahrenheit")},
            canonical="C",
        ),
        Item("systolic_bp", "number", {"mmHg": ("rate", 1.0), "mm[Hg]": ("rate", 1.0)}, canonical="mmHg"),
        Item("spo2", "number", {"%": ("rate", 1.0)}, canonical="%"),
        Item("weight", "number", {"kg": ("rate", 1.0), "lb": ("rate", 0.45359237), "[lb_av]": ("rate", 0.45359237)}, canonical="kg"),
        Item("oxygen_device", "category", categories=DEVICES),
        Item("oxygen_flow", "number", {"L/min": ("rate", 1.0), "l/min": ("rate", 1.0), "LPM": ("rate", 1.0)}, canonical="L/min"),
        Item("fio2", "number", {"%": ("rate", 1.0)}, canonical="%"),
        _vaso("norepinephrine", "ug/min"),
        _vaso("epinephrine", "ug/min"),
        _vaso("phenylephrine", "ug/min"),
        _vaso("dopamine", "ug/kg/min"),
        Item("vasopressin", "number", {"U/min": ("rate", 1.0), "U/h": ("rate", 1 / 60), "units/min": ("rate", 1.0), "U/hr": ("rate", 1 / 60)}, canonical="U/min"),
        Item("fluid_bolus", "number", {"mL": ("rate", 1.0), "ml": ("rate", 1.0), "L": ("rate", 1000.0)}, canonical="mL"),
        *(Item(t, "dose") for t in TREATMENTS),
        Item("ice_score", "number", {"": ("rate", 1.0), "score": ("rate", 1.0), "{score}": ("rate", 1.0)}, canonical=""),
        Item("consciousness", "category", categories=CONSCIOUSNESS),
        Item("seizure", "category", categories=SEIZURE),
        Item("motor_findings", "category", categories=MOTOR),
        Item("raised_icp", "category", categories=RAISED_ICP),
    )
}  # fmt: skip


def _lab_items() -> tuple[Item, ...]:
    spec = data.load(_LABS, schema="cytosafe.laboratory_items")["item"]
    return tuple(
        Item(
            name,
            "number",
            {str(u): ("rate", float(f)) for u, f in entry["units"].items()},
            canonical=str(entry["canonical"]),
        )
        for name, entry in spec.items()
    )


#: Laboratory items (``data/laboratory_items.toml``), in the order of that file.
LAB_ITEMS: tuple[str, ...] = tuple(i.name for i in _lab_items())
ITEMS.update({i.name: i for i in _lab_items()})


def _lab_limits() -> dict[str, tuple[float, float]]:
    spec = data.load(_LABS, schema="cytosafe.laboratory_items")["item"]
    return {name: tuple(entry["plausible"]) for name, entry in spec.items()}


_PLAUSIBLE_KEY = {"temperature": "temperature_c"}


@dataclass
class Observations:
    """A validated observation table and the rows set aside.

    Attributes
    ----------
    table:
        ``patient_id, time, item, value, unit, value_num, source_file, source_row``: times
        as UTC datetimes, ``value_num`` in the canonical unit of the item (categories as
        their code in the item's category tuple, events as their dose or 1), ``unit``
        canonical, ``value`` the value as written.
    quarantine:
        Rows not used, with the original columns, ``source_row`` and ``reason``.
    estimates:
        Per patient, the estimates made while validating (``weight_assumed``).
    """

    table: pd.DataFrame
    quarantine: pd.DataFrame
    weight_assumed: set[str] = field(default_factory=set)


def _text(series: pd.Series) -> pd.Series:
    s = series.astype(object).where(series.notna(), "")
    return s.astype(str).str.strip()


class _Problems:
    """Collects row problems: raises on the first, or quarantines them all."""

    def __init__(self, df: pd.DataFrame, source: str | None, errors: str) -> None:
        self.df = df
        self.source = source
        self.errors = errors
        self.bad = np.zeros(len(df), dtype=bool)
        self.reason = np.full(len(df), "", dtype=object)

    def _field(self, p: int, field_name: str) -> str:
        # Readers of other formats say which of their fields became each column
        # ("value=VSSTRESN;unit=VSSTRESU"), so that errors name the field of the file.
        if "source_fields" not in self.df.columns:
            return field_name
        spec = self.df["source_fields"].iat[p]
        for part in str(spec).split(";"):
            key, _, name = part.partition("=")
            if key == field_name and name:
                return name
        return field_name

    def flag(self, mask: np.ndarray, field_name: str, message: str, expected: str) -> None:
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if not mask.any():
            return
        pos = np.flatnonzero(mask)
        if self.errors == "raise":
            p = int(pos[0])
            more = f" ({pos.size - 1} more rows like it)" if pos.size > 1 else ""
            file = self.df["source_file"].iat[p] or self.source
            value = self.df["value"].iat[p] if "{value}" in message else None
            text = message.format(
                value=value, item=self.df["item"].iat[p], unit=self.df["unit"].iat[p]
            )
            raise SchemaError(
                text + more,
                file=file or None,
                row=int(self.df["source_row"].iat[p]),
                field=self._field(p, field_name),
                expected=expected,
            )
        self.bad[pos] = True
        items, units, values = self.df["item"], self.df["unit"], self.df["value"]
        for p in pos:
            self.reason[p] = f"{self._field(p, field_name)}: " + message.format(
                value=values.iat[p], item=items.iat[p], unit=units.iat[p]
            )


def _rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f" and {rows.size - 5} more" if rows.size > 5 else "")


def _parse_times(
    text: pd.Series, out: pd.DataFrame, probs: _Problems, source: str | None, timezone
) -> pd.Series:
    """UTC times (naive) of the ``time`` texts; see "Time zones" in the module docstring."""
    zone = None
    if timezone is not None:
        try:
            zone = ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"unknown time zone '{timezone}'",
                field="timezone",
                expected="an IANA time-zone name such as Europe/Berlin or America/New_York",
            ) from None
    empty = (text == "").to_numpy()
    # many observations share a time: look at each distinct text once
    codes, distinct = pd.factorize(text)
    offset = (
        pd.Series(distinct, dtype=object)
        .str.contains(_OFFSET, regex=True)
        .to_numpy(dtype=bool)[codes]
        & ~empty
    )
    naive = ~offset & ~empty
    times = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if offset.any():
        times[offset] = pd.to_datetime(text[offset], errors="coerce", utc=True, format="ISO8601")
    if naive.any():
        local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
        if local.dt.tz is not None:  # an offset form the pattern missed: parse as such
            local = pd.to_datetime(text[naive], errors="coerce", utc=True, format="ISO8601")
            times[naive] = local
        elif zone is None:
            times[naive] = local.dt.tz_localize("UTC")
        else:
            local_ok = local.notna()
            here = local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            gap = np.zeros(len(text), dtype=bool)
            gap[np.flatnonzero(naive)[(local_ok & here.isna()).to_numpy()]] = True
            probs.flag(
                gap,
                "time",
                f"this local time is ambiguous or does not exist in {timezone} "
                "(a daylight-saving change)",
                "a time with a UTC offset for the hour of a daylight-saving change",
            )
            times[naive] = here.dt.tz_convert("UTC")
    probs.flag(
        times.isna().to_numpy(),
        "time",
        "the time of this {item} is missing or not an ISO 8601 date-time",
        "an ISO 8601 date-time such as 2024-03-01T14:30:00",
    )
    if zone is None and offset.any() and naive.any():
        usable = ~probs.bad
        pid = out["patient_id"].to_numpy()
        with_offset = set(pid[offset & usable])
        mixed = [p for p in dict.fromkeys(pid[naive & usable]) if p in with_offset]
        if mixed:
            p = mixed[0]
            rows = out["source_row"].to_numpy()
            o_rows = rows[(pid == p) & offset & usable]
            n_rows = rows[(pid == p) & naive & usable]
            first = int(np.flatnonzero((pid == p) & naive & usable)[0])
            file = out["source_file"].iat[first] or source
            more = f" ({len(mixed) - 1} more patients like it)" if len(mixed) > 1 else ""
            raise SchemaError(
                f"patient '{p}' mixes times with a UTC offset (rows {_rows(o_rows)}) and "
                f"without one (rows {_rows(n_rows)}){more}",
                file=file or None,
                row=int(rows[first]),
                field=probs._field(first, "time"),
                expected="all times of a patient with an offset, or all without one; or a "
                "time zone for the times without one (cytosafe grade --timezone, "
                "timezone=)",
            )
    return times.dt.tz_localize(None)


def validate_observations(
    df: pd.DataFrame,
    *,
    source: str | None = None,
    errors: str = "raise",
    assumed_weight_kg: float | None = None,
    timezone: str | None = None,
) -> Observations:
    """Check an observation table against the contract and return it normalised.

    Parameters
    ----------
    df:
        Columns ``patient_id, time, item, value, unit`` (and optionally ``source_file``,
        ``source_row``); other columns are ignored.
    source:
        File name for messages when the table has no ``source_file`` column.
    errors:
        ``"raise"`` (default): the first bad row raises :class:`InputError` naming file,
        row (``source_row``, else the CSV line: header = 1) and field. ``"quarantine"``:
        bad rows are set aside with a reason and the rest is used. Missing columns and
        an empty table always raise.
    assumed_weight_kg:
        Dosing weight for ``ug/kg/min`` conversions of patients with no ``weight``
        (default from the criteria file); each such patient is listed in
        :attr:`Observations.weight_assumed`.
    timezone:
        IANA time-zone name in which times without a UTC offset are read (default: they
        are UTC, and a patient mixing times with and without an offset is an error).

    Returns
    -------
    Observations
    """
    if errors not in ("raise", "quarantine"):
        raise InputError(
            f"unknown errors mode '{errors}'", field="errors", expected="raise | quarantine"
        )
    if not isinstance(df, pd.DataFrame):
        raise SchemaError("an observation table must be a pandas DataFrame", file=source)
    missing = [c for c in OBSERVATION_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(
            "missing required column(s): " + ", ".join(missing),
            file=source,
            expected="columns " + ", ".join(OBSERVATION_COLUMNS),
        )
    if df.empty:
        raise SchemaError("the observation table has no rows", file=source)
    criteria = data.load(_CRITERIA)  # the cached file: read only, never changed here
    limits = dict(criteria["plausible"]) | _lab_limits()
    if assumed_weight_kg is None:
        assumed_weight_kg = float(criteria["common"]["assumed_weight_kg"]["value"])

    raw = df.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "patient_id": _text(raw["patient_id"]),
            "item": _text(raw["item"]).str.lower(),
            "value": _text(raw["value"]),
            "unit": _text(raw["unit"]),
        }
    )
    out["source_file"] = (
        _text(raw["source_file"]) if "source_file" in raw.columns else (source or "")
    )
    if "source_fields" in raw.columns:
        out["source_fields"] = _text(raw["source_fields"])
    if "source_row" in raw.columns:
        out["source_row"] = pd.to_numeric(raw["source_row"], errors="coerce")
        out["source_row"] = out["source_row"].fillna(pd.Series(np.arange(len(raw)) + 2))
    else:
        out["source_row"] = np.arange(len(raw)) + 2
    out["source_row"] = out["source_row"].astype(np.int64)
    probs = _Problems(out, source, errors)

    probs.flag(
        (out["patient_id"] == "").to_numpy(),
        "patient_id",
        "patient_id is empty",
        "a patient identifier",
    )
    known = out["item"].isin(list(ITEMS)).to_numpy()
    probs.flag(~known, "item", "unknown item '{item}'", "one of " + ", ".join(ITEMS))

    out["time"] = _parse_times(_text(raw["time"]), out, probs, source, timezone)

    value_num = pd.to_numeric(out["value"].replace("", None), errors="coerce").to_numpy(dtype=float)
    num = np.full(len(out), np.nan)
    item_arr = out["item"].to_numpy()
    unit_arr = out["unit"].to_numpy()
    per_kg = np.zeros(len(out), dtype=bool)
    canon_unit = np.full(len(out), "", dtype=object)
    for name, spec in ITEMS.items():
        rows = item_arr == name
        if not rows.any():
            continue
        if spec.kind == "category":
            vals = out["value"].str.lower().to_numpy()
            codes = pd.Index(list(spec.categories)).get_indexer(vals[rows])
            ok = codes >= 0
            mask = rows.copy()
            mask[rows] = ~ok
            probs.flag(mask, "value", "unknown " + name + " '{value}'", " | ".join(spec.categories))
            num[rows] = np.where(ok, codes, np.nan)
            continue
        if spec.kind in ("text", "dose"):
            num[rows] = np.where(np.isfinite(value_num[rows]), value_num[rows], 1.0)
            canon_unit[rows] = unit_arr[rows]
            if spec.kind == "dose":
                bad = rows & (value_num < 0)
                probs.flag(
                    bad, "value", "a dose of {value} is negative", "a non-negative dose or empty"
                )
            continue
        # numbers
        probs.flag(
            rows & ~np.isfinite(value_num),
            "value",
            f"{name} '{{value}}' is not a number",
            "a number",
        )
        known_unit = np.isin(unit_arr, list(spec.units))
        probs.flag(
            rows & ~known_unit,
            "unit",
            f"unit '{{unit}}' is not a unit of {name}",
            " | ".join(u or "(empty)" for u in spec.units),
        )
        vals = value_num.copy()
        for unit, (kind, factor) in spec.units.items():
            sel = rows & (unit_arr == unit)
            if kind == "F":
                vals[sel] = (vals[sel] - 32.0) * 5.0 / 9.0
            elif kind == "per_kg":
                per_kg[sel] = True
            else:
                vals[sel] = vals[sel] * factor
        num[rows] = vals[rows]
        canon_unit[rows] = spec.canonical
        key = _PLAUSIBLE_KEY.get(name, name)
        if key in limits:
            lo, hi = limits[key]
            probs.flag(
                rows & np.isfinite(vals) & ((vals < lo) | (vals > hi)),
                "value",
                f"impossible {name} {{value}} {{unit}}",
                f"{lo:g} to {hi:g} {spec.canonical}".strip(),
            )
        if name in VASOPRESSORS or name == "fluid_bolus":
            probs.flag(
                rows & (vals < 0),
                "value",
                f"{name} {{value}} is negative",
                "a rate >= 0 (0 when stopped)",
            )
    out["value_num"] = num

    # Duplicates: one value per patient x time x item (a chart that says two things at once).
    key = ["patient_id", "time", "item"]
    usable = ~probs.bad
    dup = np.zeros(len(out), dtype=bool)
    dup[usable] = out.loc[usable].duplicated(key, keep="first").to_numpy()
    probs.flag(
        dup,
        "item",
        "duplicate observation: this patient already has a {item} at this time",
        "one value per patient, time and item",
    )
    usable = ~probs.bad
    inf = usable & (item_arr == "infusion")
    dup_inf = np.zeros(len(out), dtype=bool)
    dup_inf[inf] = out.loc[inf].duplicated("patient_id", keep="first").to_numpy()
    probs.flag(
        dup_inf, "item", "a second infusion for this patient", "one infusion (hour 0) per patient"
    )

    # Nothing after death.
    usable = ~probs.bad
    deaths = out.loc[usable & (item_arr == "death")].groupby("patient_id")["time"].min()
    if len(deaths):
        death_time = out["patient_id"].map(deaths)
        after = usable & (death_time.notna() & (out["time"] > death_time)).to_numpy()
        probs.flag(
            after,
            "time",
            "observation of {item} after the patient's death",
            "no observations after death",
        )

    # ug/kg/min <-> ug/min with the dosing weight (first weight of the patient).
    usable = ~probs.bad
    weights = (
        out.loc[usable & (item_arr == "weight")]
        .sort_values("time")
        .groupby("patient_id")["value_num"]
        .first()
    )
    w = out["patient_id"].map(weights).to_numpy(dtype=float)
    needs_weight = usable & (
        (per_kg & np.isin(item_arr, ["norepinephrine", "epinephrine", "phenylephrine"]))
        | (~per_kg & (item_arr == "dopamine"))
    )
    assumed = needs_weight & ~np.isfinite(w)
    w = np.where(np.isfinite(w), w, assumed_weight_kg)
    weight_assumed = set(out.loc[assumed, "patient_id"])
    to_rate = per_kg & np.isin(item_arr, ["norepinephrine", "epinephrine", "phenylephrine"])
    out.loc[to_rate, "value_num"] = out.loc[to_rate, "value_num"] * w[to_rate]
    dop = (item_arr == "dopamine") & ~per_kg
    out.loc[dop, "value_num"] = out.loc[dop, "value_num"] / w[dop]
    out["unit"] = np.where(canon_unit != "", canon_unit, out["unit"])

    good = (
        out.loc[~probs.bad]
        .sort_values(["patient_id", "time"], kind="stable")
        .reset_index(drop=True)
    )
    q = raw.loc[probs.bad].copy()
    q["source_row"] = out.loc[probs.bad, "source_row"].to_numpy()
    q["reason"] = probs.reason[probs.bad]
    if good.empty:
        raise SchemaError("every row of the observation table was quarantined", file=source)
    cols = ["patient_id", "time", "item", "value", "unit", "value_num", "source_file", "source_row"]
    good = good[cols]
    # the controlled vocabulary and the patients as categoricals: grading works on codes
    good["item"] = pd.Categorical(good["item"], categories=list(ITEMS))
    good["patient_id"] = pd.Categorical(
        good["patient_id"], categories=sorted(set(good["patient_id"]))
    )
    return Observations(good, q.reset_index(drop=True), weight_assumed)


def read_observations(
    path: str | Path, *, errors: str = "raise", timezone: str | None = None
) -> Observations:
    """Read an observation table from CSV (or XLSX) and validate it.

    Parameters
    ----------
    path:
        A CSV or XLSX file with the columns of :data:`OBSERVATION_COLUMNS`.
    errors, timezone:
        See :func:`validate_observations`.
    """
    return validate_observations(
        read_observation_table(path), source=str(path), errors=errors, timezone=timezone
    )


def read_observation_table(path: str | Path) -> pd.DataFrame:
    """An observation table from CSV (or XLSX) as text, unvalidated, with its
    ``source_file`` and ``source_row`` (the file's line number: the header is line 1);
    an :class:`InputError` naming the file when it is missing or does not read."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            df = pd.read_excel(path, dtype=str)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the table: {exc}", file=str(path)) from None
    df["source_file"] = str(path)
    df["source_row"] = np.arange(len(df)) + 2
    return df
