"""The quantification QC report: one self-contained, reproducible HTML file.

:func:`write_qc_report` turns a :class:`~cytosafe.quantification.QuantificationResult` into a
single HTML page an immunoassay scientist can review and archive with the study:

* **Header** — studies, input files, CytoSafe version, every setting (model and formula,
  weighting, blank handling, covariance, acceptance criteria) and the references behind
  each rule;
* **Plate QC** — pass/fail per plate x analyte with the reasons, LLOQ/ULOQ, LOD, blank
  CV, median sample CV and the share of samples outside the range;
* **Standard curves** — one interactive figure per plate x analyte (standards by
  replicate, the fitted curve, the quantifiable range, the blank level and the samples
  at their back-calculated positions), as small multiples per plate;
* **Standards** — recovery and CV of every standard level against the criteria;
* **Plate maps** — each plate's wells coloured by log10 signal (a menu per analyte) and
  a map of the flags the wells carry;
* **Flags** — counts of each flag per plate x analyte;
* **Potency** — EC50 and ECx with intervals (censored where beyond the tested range) and
  concentration-response figures per treatment x analyte with a line per donor;
* **Methods** — a methods paragraph generated from the settings, with references.

The page needs no network: plotly.js is inlined once and all styles are inline. Figures
are drawn when they scroll into view, so a 10-plate x 8-analyte study stays responsive.
The same result always gives the same bytes (no timestamps unless ``generated`` is
passed; no random element ids), so reports can be diffed and checksummed.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import cytosafe.report.figures as figs
from cytosafe.curves.calibration import ACCEPTANCE_TITLES, FLAGS, acceptance_name, share_text
from cytosafe.curves.models import MODELS
from cytosafe.curves.potency import POTENCY_KEY, censored_response
from cytosafe.report.figures import Figures, esc, num
from cytosafe.report.figures import natural_key as _natural
from cytosafe.report.page import environment, input_files, page_scripts, simulated_reason
from cytosafe.schema.choices import BlankHandling, Covariance, CurveModel, Weighting
from cytosafe.schema.measurements import curve_units
from cytosafe.schema.units import CONCENTRATION_UNIT

if TYPE_CHECKING:
    from cytosafe.quantification import QuantificationResult

__all__ = ["REFERENCES", "Reference", "qc_table", "render_qc_report", "write_qc_report"]


@dataclass(frozen=True)
class Reference:
    """A source cited by the report: a short key, the full citation and what it supports."""

    key: str
    citation: str
    supports: str


#: The sources of the rules applied by calibration and potency (see the docstrings of
#: :mod:`cytosafe.curves.calibration`, :mod:`cytosafe.curves.fit`,
#: :mod:`cytosafe.curves.models` and :mod:`cytosafe.curves.potency`).
REFERENCES: tuple[Reference, ...] = (
    Reference(
        "ICH M10",
        "International Council for Harmonisation. ICH M10: Bioanalytical method validation "
        "and study sample analysis. Adopted 24 May 2022. Ligand-binding assays: sections "
        "4.2.3 (calibration curve and range), 4.2.4 (accuracy and precision) and 4.3.2 "
        "(acceptance criteria for an analytical run).",
        "calibrator accuracy (80-120%, 75-125% at LLOQ/ULOQ), precision and the run's "
        "kit-control rule",
    ),
    Reference(
        "FDA 2018",
        "U.S. Food and Drug Administration. Bioanalytical Method Validation: Guidance for "
        "Industry. May 2018.",
        "calibrator acceptance criteria for ligand-binding assays",
    ),
    Reference(
        "DeSilva 2003",
        "DeSilva B, Smith W, Weiner R, et al. Recommendations for the bioanalytical method "
        "validation of ligand-binding assays to support pharmacokinetic assessments of "
        "macromolecules. Pharm Res. 2003;20(11):1885-1900.",
        "ligand-binding assay calibration and the quantifiable range",
    ),
    Reference(
        "Gottschalk & Dunn 2005",
        "Gottschalk PG, Dunn JR. The five-parameter logistic: a characterization and "
        "comparison with the four-parameter logistic. Anal Biochem. 2005;343(1):54-65.",
        "the 5PL standard-curve model",
    ),
    Reference(
        "Findlay & Dillard 2007",
        "Findlay JWA, Dillard RF. Appropriate calibration curve fitting in ligand binding "
        "assays. AAPS J. 2007;9(2):E260-E267.",
        "weighted curve fitting (1/y, 1/y²)",
    ),
    Reference(
        "Moré 1978",
        "Moré JJ. The Levenberg-Marquardt algorithm: implementation and theory. In: Watson GA, "
        "ed. Numerical Analysis. Lecture Notes in Mathematics, vol 630. Springer; 1978:105-116.",
        "the curve-fitting algorithm",
    ),
    Reference(
        "Ritz 2015",
        "Ritz C, Baty F, Streibig JC, Gerhard D. Dose-response analysis using R. PLoS One. "
        "2015;10(12):e0146021.",
        "log-logistic models, relative ECx and its delta-method interval",
    ),
    Reference(
        "Motulsky & Christopoulos 2004",
        "Motulsky H, Christopoulos A. Fitting Models to Biological Data Using Linear and "
        "Nonlinear Regression. Oxford University Press; 2004. Chapter 22.",
        "the extra-sum-of-squares F-test for a response",
    ),
    Reference(
        "MSD kit inserts",
        "Meso Scale Discovery. V-PLEX / U-PLEX kit product inserts: lower limit of detection "
        "as the concentration 2.5 standard deviations above the blank.",
        "the limit of detection",
    ),
    Reference(
        "Luminex xMAP",
        "Luminex Corporation. xMAP technology and xPONENT acquisition guidance: bead counts "
        "per region (about 50 acquired; below about 35 the median is unreliable).",
        "the minimum bead count",
    ),
)
_REF_NO = {r.key: i + 1 for i, r in enumerate(REFERENCES)}

#: The weightings whose use for immunoassays Findlay & Dillard 2007 discuss (cited with them).
_FINDLAY_DILLARD = (Weighting.Y, Weighting.Y2)


def _cite(*keys: str) -> str:
    return "[" + ", ".join(str(_REF_NO[k]) for k in keys) + "]"


def _pct(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


#: The columns of ``Calibration.wells`` the report reads; selecting them first keeps the
#: many per-plate and per-curve splits cheap.
_WELL_COLUMNS = [
    "study_id", "plate_id", "well", "analyte", "sample_type", "standard_concentration",
    "donor_id", "treatment", "treatment_role", "treatment_concentration", "treatment_unit",
    "assay_format", "incubation_h", "replicate", "signal", "sample_id", "signal_used",
    "concentration_in_well", "concentration", "concentration_unit", "lloq", "uloq", *FLAGS,
    "flags",
]  # fmt: skip


def _units(result: QuantificationResult) -> dict[tuple, str]:
    """The ``concentration_unit`` of each (study, plate, analyte) curve (issue 12, item 9:
    arbitrary units are labelled wherever their values are shown, never as pg/mL)."""
    wells = result.calibration.wells
    memo = getattr(_REPORT, "units", None)
    if memo is not None and memo[0] is wells:  # one report asks five times
        return memo[1]
    table = curve_units(wells)
    units = {
        (s, p, a): str(u)
        for s, p, a, u in table[
            ["study_id", "plate_id", "analyte", "concentration_unit"]
        ].itertuples(index=False)
    }
    if getattr(_REPORT, "rendering", False):  # kept for the rest of this report
        _REPORT.units = (wells, units)
    return units


#: The report this thread is rendering: :func:`render_qc_report` keeps its units there for
#: the length of one report, so that its sections share one computation.
_REPORT = threading.local()


def signal_names(result: QuantificationResult) -> dict[tuple, str]:
    """The reader signal's name of each (study, plate): ECL counts, MFI, FI or OD, from the
    plate's calibration convention (:func:`cytosafe.report.figures.signal_name`)."""
    conv = result.calibration.conventions
    if conv is None or conv.empty or "signal" not in conv.columns:
        return {}
    readers = conv["reader"] if "reader" in conv.columns else [None] * len(conv)
    return {
        (s, p): figs.signal_name(sig, reader)
        for s, p, sig, reader in zip(
            conv["study_id"], conv["plate_id"], conv["signal"], readers, strict=True
        )
    }


def _suffix(unit: str) -> str:
    """`` IU/mL`` after a value in a unit other than pg/mL, which the headers assume."""
    return "" if unit == CONCENTRATION_UNIT else f" {unit}"


def units_note(result: QuantificationResult) -> str:
    """The sentence that says in which unit a report's concentrations are."""
    units = sorted(set(_units(result).values())) or [CONCENTRATION_UNIT]
    if units == [CONCENTRATION_UNIT]:
        return "Concentrations in pg/mL in the well (before the dilution factor)."
    others = ", ".join(u for u in units if u != CONCENTRATION_UNIT)
    return (
        "Concentrations in the well (before the dilution factor), in pg/mL unless a unit "
        f"follows the value: {others} is an arbitrary unit, kept as the export wrote it "
        "(it does not convert to a mass)."
    )


def _slim(wells: pd.DataFrame) -> pd.DataFrame:
    return wells[[c for c in _WELL_COLUMNS if c in wells.columns]]


def _plate_key(study: str, plate: str, many_studies: bool) -> str:
    return f"{study} / {plate}" if many_studies else plate


def _plates(wells: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = wells[["study_id", "plate_id"]].drop_duplicates().itertuples(index=False)
    return sorted(((s, p) for s, p in pairs), key=lambda sp: (_natural(sp[0]), _natural(sp[1])))


def _header(
    result: QuantificationResult, generated: str | None, inputs: list[dict] | None = None
) -> dict:
    from cytosafe import __version__

    wells = result.calibration.wells
    return {
        "studies": sorted(wells["study_id"].unique(), key=_natural),
        "sources": list(result.sources),
        "inputs": input_files(result.sources, inputs=inputs, table=result.measurements),
        "simulated": simulated_reason(sources=result.sources),
        "version": __version__,
        "generated": generated,
        "n_plates": len(_plates(wells)),
        "analytes": sorted(wells["analyte"].unique(), key=_natural),
        "n_wells": int(wells[["study_id", "plate_id", "well"]].drop_duplicates().shape[0]),
    }


def _curve_models(result: QuantificationResult) -> list[tuple[str, int]]:
    """The families the curves were fitted in, commonest first, with their counts."""
    curves = result.calibration.curves
    if "model" not in curves or curves.empty:
        return [(result.calibration.fit.model.name, 0)]
    counts = curves["model"].astype(str).value_counts()
    return [(str(name), int(n)) for name, n in counts.items()]


def _model_text(result: QuantificationResult) -> str:
    """The model row of the settings: one family and its formula, or each family used."""
    used = _curve_models(result)
    if len(used) == 1:
        model = MODELS.get(used[0][0], result.calibration.fit.model)
        return f"{model.name}: {model.formula}"
    parts = [f"{name} × {n}: {MODELS[name].formula}" for name, n in used if name in MODELS]
    asked = str(result.calibration.settings.model)
    head = (
        f"{asked}: {CurveModel(asked).method}; per curve (curves.csv, model_choice): "
        if asked == str(CurveModel.FIVE_PL_AUTO)
        else "per curve, the family each plate's convention names: "
    )
    return head + "; ".join(parts)


def _settings(result: QuantificationResult) -> list[tuple[str, str, str]]:
    s = result.calibration.settings
    p = result.potency_settings
    model = result.calibration.fit.model
    lo, hi = s.recovery_range
    elo, ehi = s.end_recovery_range
    return [
        *_convention_rows(result),
        (
            "Standard curve model",
            _model_text(result),
            _cite("Gottschalk & Dunn 2005" if model.name.startswith("5PL") else "Ritz 2015"),
        ),
        (
            "Weighting",
            Weighting(s.weighting).label,
            _cite("Findlay & Dillard 2007") if s.weighting in _FINDLAY_DILLARD else "",
        ),
        ("Blank handling", f"{s.blank}: {BlankHandling(s.blank).method}", ""),
        ("Parameter covariance", f"{s.covariance}: {Covariance(s.covariance).method}", ""),
        (
            "Calibrator recovery",
            f"{lo:g}-{hi:g}% of nominal; {elo:g}-{ehi:g}% at the LLOQ and ULOQ",
            _cite("ICH M10", "FDA 2018", "DeSilva 2003"),
        ),
        (
            "Calibrator precision",
            f"CV ≤ {s.max_cv:g}%; ≤ {s.end_max_cv:g}% at the LLOQ and ULOQ",
            _cite("ICH M10"),
        ),
        (
            "Acceptance criteria",
            ACCEPTANCE_TITLES.get(acceptance_name(s), "custom (set field by field)"),
            _cite("ICH M10") if acceptance_name(s) == "ich_m10" else "",
        ),
        (
            "Quantifiable range",
            (
                "the longest run of consecutive standard levels, every one within limits"
                if s.min_passing_share >= 1
                else "the longest run of consecutive standard levels whose ends and at least "
                f"{s.min_passing_share:.0%} of whose levels are within limits (a failing "
                "level inside it stays in the fit and is reported)"
            ),
            _cite("ICH M10") if s.min_passing_share < 1 else "",
        ),
        ("Standard levels", f"at least {s.min_levels} within limits in the range", ""),
        (
            "Kit controls",
            f"at least {share_text(s.min_control_share)} within {lo:g}-{hi:g}% of expected"
            + (
                f", and at least {share_text(s.min_control_level_share)} at each level"
                if s.min_control_level_share > 0
                else ""
            )
            + (
                f"; at least {s.min_control_levels} levels"
                if getattr(s, "min_control_levels", 0)
                else ""
            ),
            _cite("ICH M10"),
        ),
        (
            "Limit of detection",
            f"blank mean + {s.lod_sd:g} SD, back-calculated",
            _cite("MSD kit inserts"),
        ),
        ("Bead count", f"flag below {s.min_bead_count:g} beads", _cite("Luminex xMAP")),
        ("Back-calculation interval", f"{100 * s.confidence:g}% (delta method, log scale)", ""),
        (
            "Potency",
            f"{p.model} per donor x treatment x analyte, {Weighting(p.weighting).label}; "
            f"EC50 and EC{p.ecx:g} with {100 * p.confidence:g}% intervals",
            _cite("Ritz 2015"),
        ),
        (
            "Response criteria",
            f"F-test against a flat line at α = {p.alpha:g}; rising curve; span ≥ "
            f"{p.min_fold:g}-fold; at least {p.min_concentrations} tested concentrations",
            _cite("Motulsky & Christopoulos 2004"),
        ),
        (
            "Censored values in potency",
            f"{p.censoring} (below LLOQ at LLOQ/2, above ULOQ at the ULOQ)"
            + (
                "; matched negative control anchors the bottom"
                if p.include_negative_control
                else ""
            ),
            "",
        ),
    ]


def _convention_rows(result: QuantificationResult) -> list[tuple[str, str, str]]:
    """Which calibration each plate got and why (issue 12, items 2 and 8): one row per
    plate convention, one per excluded standard with its reason, and the curves accepted
    although they failed QC (plain text: the template escapes it)."""
    cal = result.calibration
    rows = []
    conv = cal.conventions
    many = conv["study_id"].nunique() > 1 if len(conv) else False
    for r in conv.itertuples(index=False) if len(conv) else ():
        rows.append(
            (
                f"Calibration of plate {_plate_key(r.study_id, r.plate_id, many)}",
                f"{r.model}, weights {r.weighting}, blanks {r.blank}, on {r.signal}",
                str(r.applied),
            )
        )
    std = cal.standards
    units = _units(result)
    if "excluded" in std.columns and std["excluded"].any():
        for r in std[std["excluded"]].itertuples(index=False):
            reason = getattr(r, "exclusion_reason", None)
            unit = units.get((r.study_id, r.plate_id, r.analyte), CONCENTRATION_UNIT)
            rows.append(
                (
                    f"Excluded standard · {r.plate_id} {r.analyte} {num(r.nominal)} {unit}",
                    str(reason) if isinstance(reason, str) else "excluded",
                    "",
                )
            )
    if "accepted" in cal.qc.columns and cal.qc["accepted"].any():
        names = [f"{r.plate_id} {r.analyte}" for r in cal.qc[cal.qc["accepted"]].itertuples()]
        rows.append(
            (
                "Curves accepted despite failing QC",
                ", ".join(names),
                "by the user's explicit option (accept_curves)",
            )
        )
    return rows


#: Above this share of a curve's samples below the LLOQ, the report puts a warning badge
#: beside the curve's QC verdict: "most" in its plain sense (more than half). A reading aid
#: only: the QC verdict (ICH M10 criteria on the standards and kit controls) is unchanged,
#: but a curve that passes while most samples lie below its range quantifies few of them.
MOSTLY_BELOW_LLOQ = 0.5


def _below_lloq(share: float) -> tuple[str, bool]:
    """The share of samples below the LLOQ as a percentage text, and whether it is most."""
    if share is None or not np.isfinite(share):
        return "–", False
    return _pct(100 * share, 0), bool(share > MOSTLY_BELOW_LLOQ)


def qc_table(result: QuantificationResult, many: bool) -> tuple[list[dict], list[dict]]:
    """The plate QC rows and per-plate cards of the report (also the hazard report's).

    ``many``: more than one study, so plates are named with their study.
    """
    qc = result.calibration.qc.copy()
    qc["_key"] = [
        (_natural(s), _natural(p), _natural(a))
        for s, p, a in zip(qc["study_id"], qc["plate_id"], qc["analyte"], strict=True)
    ]
    qc = qc.sort_values("_key", kind="stable")
    units = _units(result)
    rows = []
    for r in qc.itertuples(index=False):
        n_ctl = 0 if pd.isna(r.n_controls) else int(r.n_controls)
        unit = units.get((r.study_id, r.plate_id, r.analyte), CONCENTRATION_UNIT)
        tail = _suffix(unit) if np.isfinite(r.lloq) else ""
        below, mostly_below = _below_lloq(r.share_below_lloq)
        reasons = _reasons(r)
        rows.append(
            {
                "plate": _plate_key(r.study_id, r.plate_id, many),
                "analyte": r.analyte,
                "passed": bool(r.qc_pass),
                "status": str(r.status),
                "levels": f"{_int(r.levels_in_range)} / {int(r.n_levels)}"
                + (
                    f" ({_int(failing)} outside limits)"
                    if (failing := getattr(r, "levels_failing_in_range", 0))
                    and _int(failing) != "0"
                    else ""
                ),
                "lloq": num(r.lloq) + tail,
                "uloq": num(r.uloq) + tail,
                "lod": num(r.lod) + (_suffix(unit) if np.isfinite(r.lod) else ""),
                "unit": unit,
                "blank_cv": _pct(r.blank_cv),
                "sample_cv": _pct(r.median_sample_cv),
                "below": below,
                "mostly_below": mostly_below,
                # Passed, with no remark and most samples in range: left off the printed page.
                "quiet": bool(r.qc_pass) and not reasons and not mostly_below,
                "above": _pct(100 * r.share_above_uloq, 0) if pd.notna(r.share_above_uloq) else "–",
                "controls": f"{_int(r.controls_passing)} / {n_ctl}" if n_ctl else "–",
                "printed": _pct(100 * getattr(r, "vendor_difference", float("nan")), 1),
                "reasons": reasons,
            }
        )
    cards = []
    for (study, plate), g in qc.groupby(["study_id", "plate_id"], sort=False):
        n_pass = int(g["qc_pass"].sum())
        cards.append(
            {
                "plate": _plate_key(study, plate, many),
                "n_pass": n_pass,
                "n": len(g),
                "state": "pass" if n_pass == len(g) else ("fail" if n_pass == 0 else "warn"),
            }
        )
    return rows, cards


def _reasons(row) -> str:
    """A QC row's reasons, and a word when the vendor's printed curve is degenerate."""
    parts = [_text(row.qc_reasons)]
    vendor = getattr(row, "vendor_fit_reason", "")
    if isinstance(vendor, str) and vendor:
        parts.append(f"the vendor's printed curve is itself degenerate ({vendor})")
    note = getattr(row, "vendor_curve_note", "")
    if isinstance(note, str) and note:
        parts.append(f"the vendor's printed curve {note}")
    return "; ".join(p for p in parts if p)


def _int(value: object) -> str:
    return "0" if value is None or pd.isna(value) else str(int(value))


def _records_by(table: pd.DataFrame, key: list[str]) -> dict[tuple, list[dict]]:
    """The rows of ``table`` as records (plain Python values), grouped by ``key`` in order."""
    out: dict[tuple, list[dict]] = {}
    for r in table.to_dict("records"):
        out.setdefault(tuple(r[k] for k in key), []).append(r)
    return out


def _positions(table: pd.DataFrame, key: list[str]) -> dict[tuple, np.ndarray]:
    """The row positions of each group of ``table`` by ``key`` (NaN a key like any other),
    in row order; one factorisation instead of a DataFrame per group."""
    if table.empty:
        return {}
    codes = [pd.factorize(table[k], use_na_sentinel=False) for k in key]
    flat = np.zeros(len(table), dtype=np.int64)
    for c, uniques in codes:
        flat = flat * (len(uniques) + 1) + c
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    groups = sorted(np.split(order, bounds), key=lambda rows: rows[0])
    # In order of first appearance, as ``groupby(sort=False)``.
    return {tuple(uniques[c[rows[0]]] for c, uniques in codes): rows for rows in groups}


class _Row(dict):
    """A record whose fields read as attributes too (``r.nominal``), as ``itertuples``'."""

    __slots__ = ()

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _curves(result: QuantificationResult, figures: Figures, many: bool) -> list[dict]:
    cal = result.calibration
    model = cal.fit.model
    wells = _slim(cal.wells)
    key = ["study_id", "plate_id", "analyte"]
    # Every column the figures draw, as arrays once; each curve takes its rows' slice.
    stype = wells["sample_type"].astype(str).to_numpy(dtype=object)
    std_cols = figs.standard_columns(wells)
    smp_cols = figs.sample_columns(wells)
    is_std = stype == "standard"
    is_smp = (stype == "sample") | (stype == "control")
    rows_by = _positions(wells, key)
    levels_by = _records_by(cal.standards, key)
    qc_by = {tuple(r[k] for k in key): r for r in cal.qc.to_dict("records")}
    curves_by = _records_by(cal.curves, ["study_id", "plate_id"])
    subtracted = cal.settings.blank == BlankHandling.SUBTRACT
    units = _units(result)
    signals = signal_names(result)
    panels = []
    for study, plate in _plates(wells):
        cards = []
        cur = curves_by.get((study, plate), [])
        for c in sorted(cur, key=lambda r: _natural(r["analyte"])):
            k = (study, plate, c["analyte"])
            rows = rows_by[k]
            std_rows, smp_rows = rows[is_std[rows]], rows[is_smp[rows]]
            # Plates calibrated under different conventions: each curve its own model.
            own = MODELS.get(str(c.get("model", model.name)), model)
            params = np.array([c[n] for n in own.names], dtype=float)
            spec = figs.standard_curve_spec(
                title="",  # the card's caption names the analyte
                signal=signals.get((study, plate), figs.signal_name()),
                model=own,
                params=params,
                curve=c,
                standards={name: v[std_rows] for name, v in std_cols.items()},
                levels=levels_by.get(k, []),
                samples={name: v[smp_rows] for name, v in smp_cols.items()},
                blank_subtracted=subtracted,
                unit=units.get(k, CONCENTRATION_UNIT),
            )
            q = qc_by[k]
            below, mostly_below = _below_lloq(q["share_below_lloq"])
            cards.append(
                {
                    "id": figures.add(spec),
                    "analyte": c["analyte"],
                    "passed": bool(q["qc_pass"]),
                    "status": str(c["status"]),
                    "range": f"{num(c['lloq'])}–{num(c['uloq'])} {units.get(k, CONCENTRATION_UNIT)}"
                    if np.isfinite(c["lloq"])
                    else "no quantifiable range",
                    "off_curve": spec["meta"]["off_curve"],
                    "below": below,
                    "mostly_below": mostly_below,
                    "reasons": _text(q["qc_reasons"]),
                }
            )
        panels.append(
            {
                "label": _plate_key(study, plate, many),
                "cards": cards,
                "n_pass": sum(c["passed"] for c in cards),
            }
        )
    return panels


def _standards(result: QuantificationResult, many: bool) -> list[dict]:
    cal = result.calibration
    s = cal.settings
    lo, hi = s.recovery_range
    elo, ehi = s.end_recovery_range
    key = ["study_id", "plate_id", "analyte"]
    curves = {tuple(c[k] for k in key): c for c in cal.curves.to_dict("records")}
    standards = _records_by(cal.standards, ["study_id", "plate_id"])
    units = _units(result)
    groups = []
    for study, plate in _plates(cal.wells):
        t = standards.get((study, plate), [])
        # One unit on the plate heads the column; several are said with each value.
        on_plate = {units.get((study, plate, r["analyte"]), CONCENTRATION_UNIT) for r in t}
        plate_unit = next(iter(on_plate)) if len(on_plate) == 1 else None
        rows = []
        for r in sorted(t, key=lambda r: (_natural(r["analyte"]), r["nominal"])):
            r = _Row(r)
            c = curves[(study, plate, r.analyte)]
            is_end = r.in_range and (
                math.isclose(r.nominal, c["lloq"]) or math.isclose(r.nominal, c["uloq"])
            )
            rec = r.recovery
            if not np.isfinite(rec):
                rec_cls = "bad"
            elif lo <= rec <= hi:
                rec_cls = "ok"
            elif elo <= rec <= ehi:
                rec_cls = "warn"
            else:
                rec_cls = "bad"
            limit = s.end_max_cv if is_end else s.max_cv
            cv_cls = "" if not np.isfinite(r.cv) else ("ok" if r.cv <= limit else "bad")
            reason = getattr(r, "exclusion_reason", None)
            if getattr(r, "excluded", False):
                role = "excluded: " + (reason if isinstance(reason, str) else "by the input")
            elif not r.in_range:
                role = "outside range"
            elif math.isclose(r.nominal, c["lloq"]):
                role = "LLOQ"
            elif math.isclose(r.nominal, c["uloq"]):
                role = "ULOQ"
            else:
                role = "in range"
            verdict = "pass" if r.passes else ("end pass" if r.passes_as_end else "fail")
            unit = units.get((study, plate, r.analyte), CONCENTRATION_UNIT)
            rows.append(
                {
                    "analyte": r.analyte,
                    "nominal": num(r.nominal) + ("" if plate_unit else f" {unit}"),
                    "n": int(r.n_replicates),
                    "signal": num(r.mean_signal, 4),
                    "back": num(r.back_calculated),
                    "recovery": _pct(rec),
                    "rec_cls": rec_cls,
                    "cv": _pct(r.cv),
                    "cv_cls": cv_cls,
                    "verdict": verdict,
                    "role": role,
                    "in_range": bool(r.in_range),
                }
            )
        n_fail = sum(r["verdict"] == "fail" for r in rows)
        groups.append(
            {
                "label": _plate_key(study, plate, many),
                "rows": rows,
                "n_fail": n_fail,
                "unit": plate_unit,
            }
        )
    return groups


def _plate_maps(result: QuantificationResult, figures: Figures, many: bool) -> list[dict]:
    wells = _slim(result.calibration.wells)
    by_plate = {k: g for k, g in wells.groupby(["study_id", "plate_id"], sort=False)}
    signals = signal_names(result)
    out = []
    for study, plate in _plates(wells):
        w = by_plate[(study, plate)]
        described = figs.describe_wells(w)
        signal = signals.get((study, plate), figs.signal_name())
        out.append(
            {
                "label": _plate_key(study, plate, many),
                "signal": figures.add(
                    figs.plate_heatmap_figure(
                        w, title=f"log10 {esc(signal)}", described=described, signal=signal
                    )
                ),
                "flags": figures.add(
                    figs.flag_map_figure(w, FLAGS, title="flags per well", described=described)
                ),
            }
        )
    return out


def _flag_counts(result: QuantificationResult, many: bool) -> tuple[list[dict], dict]:
    wells = result.calibration.wells
    study_wells = wells[wells["sample_type"].isin(["sample", "control"])]
    key = ["study_id", "plate_id", "analyte"]
    counts = study_wells.groupby(key, observed=True)[list(FLAGS)].sum()
    sizes = study_wells.groupby(key, observed=True).size()
    count_of = dict(zip(counts.index, counts.to_numpy().tolist(), strict=True))
    size_of = dict(zip(sizes.index, sizes.to_numpy().tolist(), strict=True))
    rows = []
    order = sorted(counts.index, key=lambda k: tuple(_natural(x) for x in k))
    for k in order:
        n = int(size_of[k])
        cells = []
        for v in count_of[k]:
            v = int(v)
            share = v / n if n else 0.0
            # A light-to-strong amber by the share of wells carrying the flag.
            alpha = 0.0 if v == 0 else round(0.12 + 0.6 * share, 2)
            cells.append({"count": v, "alpha": alpha})
        rows.append(
            {"plate": _plate_key(k[0], k[1], many), "analyte": k[2], "n": n, "cells": cells}
        )
    totals = {f: int(counts[f].sum()) for f in FLAGS}
    return rows, totals


def _potency(result: QuantificationResult, figures: Figures) -> dict:
    pot = result.potency
    ecx = float(result.potency_settings.ecx)
    ecn = f"ec{ecx:g}"
    model = str(result.potency_settings.model)
    if pot is None or pot.empty or "ec50" not in pot.columns:
        return {"rows": [], "panels": [], "ecx": f"EC{ecx:g}", "model": model, "counts": {}}
    pot = pot.copy()
    for col in ("assay_format", "donor_id", "treatment"):
        pot[col] = pot[col].astype(object).where(pot[col].notna(), "")
    pot["_k"] = [
        (_natural(t), _natural(a), _natural(d), _natural(f), float(i) if pd.notna(i) else -1.0)
        for t, a, d, f, i in zip(
            pot["treatment"], pot["analyte"], pot["donor_id"], pot["assay_format"],
            pot["incubation_h"], strict=True,
        )
    ]  # fmt: skip
    pot = pot.sort_values("_k", kind="stable").drop(columns="_k")
    many_formats = pot[["assay_format", "incubation_h"]].drop_duplicates().shape[0] > 1

    def ec_cell(r: pd.Series, name: str) -> dict:
        cens = _text(r.get(f"{name}_censored"))
        if cens:
            bound = r["max_tested"] if cens == ">" else r["min_tested"]
            return {"text": f"{cens} {num(bound)}", "ci": "", "censored": True}
        v = r.get(name, np.nan)
        if not np.isfinite(v):
            return {"text": "–", "ci": "", "censored": False}
        return {
            "text": num(v),
            "ci": f"[{num(r[f'{name}_ci_low'])}, {num(r[f'{name}_ci_high'])}]",
            "censored": False,
        }

    rows = []
    records = pot.to_dict("records")
    for r in records:
        fmt = " · ".join(
            x
            for x in (
                _text(r["assay_format"]),
                f"{r['incubation_h']:g} h" if pd.notna(r["incubation_h"]) else "",
            )
            if x
        )
        rows.append(
            {
                "treatment": r["treatment"],
                "analyte": r["analyte"],
                "donor": r["donor_id"],
                "format": fmt,
                "status": str(r["status"]),
                "ec50": ec_cell(r, "ec50"),
                "ecx": ec_cell(r, ecn) if ecn != "ec50" else None,
                "unit": _text(r.get("treatment_unit")),
                "fold": num(r["fold_change_top"]) if "fold_change_top" in r else "–",
                "n_conc": int(r["n_concentrations"]),
                "reason": _text(r["reason"]),
            }
        )
    counts = pot["status"].value_counts().sort_index().to_dict()

    # Concentration-response data: the same values the potency fit used.
    wells = _slim(result.calibration.wells)
    w = wells[wells["sample_type"] == "sample"].copy()
    w["response"] = censored_response(w)
    w["censored"] = w["below_lloq"].astype(bool) | w["above_uloq"].astype(bool)
    for col in ("assay_format", "donor_id", "treatment"):
        w[col] = w[col].astype(object).where(w[col].notna(), "")
    w["incubation_h"] = w["incubation_h"].fillna(-1.0)
    roles = w["treatment_role"].astype(str)
    in_series = roles.isin(["test", "positive_control"]) & (w["treatment_concentration"] > 0)
    in_series = in_series.to_numpy()
    is_negative = (roles == "negative_control").to_numpy()
    fig_key = [k for k in POTENCY_KEY if k != "donor_id"]
    base_key = [k for k in POTENCY_KEY if k not in ("donor_id", "treatment")]
    pot_f = pot.assign(incubation_h=pot["incubation_h"].fillna(-1.0))
    # Every column the figures draw, as arrays once; each figure takes its rows' slice.
    columns = figs.potency_columns(w)
    columns["where"] = np.array(columns["where"], dtype=object)
    donors = columns["donor"]
    treatment_units = w["treatment_unit"].to_numpy(dtype=object)
    response_units = (
        w["concentration_unit"].to_numpy(dtype=object) if "concentration_unit" in w else None
    )
    # pot_f's records: the table's, incubation as the figures' key writes it.
    fit_records = [
        {**r, "incubation_h": inc}
        for r, inc in zip(records, pot_f["incubation_h"].tolist(), strict=True)
    ]
    fits_by = {k: [fit_records[i] for i in pos] for k, pos in _positions(pot_f, fig_key).items()}
    series_at, negative_at = np.flatnonzero(in_series), np.flatnonzero(is_negative)
    series_by = {k: series_at[p] for k, p in _positions(w.iloc[series_at], fig_key).items()}
    neg_by = {k: negative_at[p] for k, p in _positions(w.iloc[negative_at], base_key).items()}
    none = np.zeros(0, dtype=np.int64)
    # The donors' log means of single_concentration, for every figure in two groupings
    # (the same values in the same order per group as its per-figure grouping).
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(columns["y"].astype(float))
    test_means = _log_means(logs, donors, series_by)
    ctrl_means = _log_means(logs, donors, neg_by)
    panels: dict[str, list[dict]] = {}
    keys = sorted(
        series_by,
        key=lambda k: (_natural(k[3]), _natural(k[4]), _natural(k[0]), _natural(k[1]), k[2]),
    )
    for k in keys:
        study, fmt, inc, treatment, analyte = k
        pts = series_by[k]
        fits = fits_by.get(k, [])
        neg = neg_by.get((study, fmt, inc, analyte), none)
        tested_donors = set(donors[pts])
        neg = neg[np.fromiter((d in tested_donors for d in donors[neg]), bool, neg.size)]
        tu = treatment_units[pts]
        known = pd.notna(tu)
        unit = _text(tu[known][0]) if known.any() else ""
        spec = figs.potency_spec(
            title="",  # the card's caption names the analyte (and format)
            points={name: v[pts] for name, v in columns.items()},
            negatives={name: v[neg] for name, v in columns.items()},
            fits=fits,
            ecx=ecx,
            unit=unit,
            analyte=str(analyte),
            response_unit=_unit_of(response_units, pts),
        )
        n_resp = sum(f["status"] == "response" for f in fits)
        fmt_label = fmt + (f" · {inc:g} h" if inc >= 0 else "") if many_formats else ""
        tested = np.unique(columns["x"][pts][~np.isnan(columns["x"][pts])])
        single = ""
        if tested.size == 1:  # else a series: no words
            mine, theirs = test_means.get(k, {}), ctrl_means.get((study, fmt, inc, analyte), {})
            diff = [mine[d] - theirs[d] for d in sorted(mine) if d in theirs] if neg.size else []
            folds = np.exp(np.array([x for x in diff if np.isfinite(x)], dtype=float))
            single = _single_text(float(tested[0]), unit, folds)
        panels.setdefault(treatment, []).append(
            {
                "id": figures.add(spec),
                "analyte": analyte,
                "format": fmt_label,
                "n_resp": n_resp,
                "n": len(fits),
                "single": single,
            }
        )
    return {
        "rows": rows,
        "panels": [{"label": t, "cards": c} for t, c in panels.items()],
        "ecx": f"EC{ecx:g}",
        "model": model,
        "counts": counts,
    }


def _log_means(
    logs: np.ndarray, donors: np.ndarray, groups: dict[tuple, np.ndarray]
) -> dict[tuple, dict]:
    """Each group's mean log value per donor (pandas' compensated group mean), by group."""
    if not groups:
        return {}
    keys = list(groups)
    rows = np.concatenate([groups[k] for k in keys])
    group = np.repeat(np.arange(len(keys)), [groups[k].size for k in keys])
    # Rows in their table's order within each group, as the per-figure grouping sees them.
    order = np.lexsort((rows, group))
    frame = pd.DataFrame({"g": group[order], "d": donors[rows[order]], "l": logs[rows[order]]})
    means = frame.groupby(["g", "d"], sort=False)["l"].mean()
    out: dict[tuple, dict] = {}
    for (g, d), m in means.items():
        out.setdefault(keys[g], {})[d] = m
    return out


def _unit_of(units: np.ndarray | None, rows: np.ndarray) -> str:
    """:func:`cytosafe.report.figures.concentration_unit_of` of the rows ``rows``."""
    if units is None:
        return CONCENTRATION_UNIT
    known = {str(u) for u in units[rows] if pd.notna(u)}
    return " / ".join(sorted(known)) if known else CONCENTRATION_UNIT


def single_concentration(
    points: pd.DataFrame,
    negatives: pd.DataFrame,
    unit: str,
    *,
    value: str = "response",
    responders: tuple[int, int] | None = None,
) -> str:
    """What a treatment tested at one concentration shows, in words; "" for a series.

    One concentration has no concentration-response (no curve, no EC50), so "0/8 donors
    respond" would misreport a control that may have responded strongly. Instead: the
    concentration and the fold change of each donor's geometric mean over its own negative
    control (median and range over donors), and the responder count when the hazard
    analysis made calls.
    """
    concs = points["treatment_concentration"].dropna().unique()
    if len(concs) != 1:
        return ""
    folds = []
    if len(negatives):
        with np.errstate(divide="ignore", invalid="ignore"):
            test = points.assign(_l=np.log(points[value].astype(float))).groupby("donor_id")["_l"]
            ctrl = negatives.assign(_l=np.log(negatives[value].astype(float))).groupby("donor_id")[
                "_l"
            ]
            diff = (test.mean() - ctrl.mean()).dropna()
        folds = np.exp(diff[np.isfinite(diff)].to_numpy(dtype=float))
    return _single_text(float(concs[0]), unit, folds, responders)


def _single_text(conc: float, unit: str, folds, responders: tuple[int, int] | None = None) -> str:
    """:func:`single_concentration`'s words from the concentration and the donors' folds."""
    head = f"single concentration {num(conc)} {unit}".strip() + ": no curve"
    parts = [head]
    if len(folds):
        parts.append(
            f"fold change over the negative control median {num(float(np.median(folds)))}"
            f" ({num(float(folds.min()))}–{num(float(folds.max()))}, {len(folds)} donors)"
        )
    if responders is not None:
        parts.append(f"{responders[0]}/{responders[1]} donors responders")
    return "; ".join(parts)


def _methods(result: QuantificationResult) -> list[str]:
    s = result.calibration.settings
    p = result.potency_settings
    model = result.calibration.fit.model
    lo, hi = s.recovery_range
    elo, ehi = s.end_recovery_range
    model_name = CurveModel(model.name).method if model.name in CurveModel.values() else model.name
    conf = f"{100 * s.confidence:g}%"
    used = _curve_models(result)
    if len(used) > 1:
        families = ", ".join(f"{name} ({n} curves)" for name, n in used)
        how = (
            "in whichever 5PL form had the smaller AIC, or the 4PL where neither form gave a "
            f"usable fit {_cite('Gottschalk & Dunn 2005')}"
            if str(s.model) == str(CurveModel.FIVE_PL_AUTO)
            else "in the family each plate's export prints"
        )
        fitted = f"with logistic models {how}: {families}, "
    else:
        fitted = (
            f"with a {model_name} ({model.name}) model, {model.formula} "
            f"{_cite('Gottschalk & Dunn 2005') if model.name == '5PL' else _cite('Ritz 2015')}, "
        )
    text = [
        f"Standard curves were fitted separately for each plate and analyte {fitted}"
        f"by {Weighting(s.weighting).method} "
        f"{_cite('Findlay & Dillard 2007') if s.weighting in _FINDLAY_DILLARD else ''} using "
        f"the Levenberg-Marquardt algorithm {_cite('Moré 1978')}; "
        f"{BlankHandling(s.blank).method}. The covariance of the estimates was "
        f"{Covariance(s.covariance).method}.",
        f"Each standard level was back-calculated through its curve. A level was accepted when "
        f"its mean back-calculated concentration was within {lo:g}-{hi:g}% of nominal "
        f"({elo:g}-{ehi:g}% at the ends of the range) and the CV of its replicates at most "
        f"{s.max_cv:g}% ({s.end_max_cv:g}% at the ends) "
        f"{_cite('ICH M10', 'FDA 2018', 'DeSilva 2003')}. The lower and upper "
        f"limits of quantification (LLOQ, ULOQ) are the nominal concentrations of the ends of "
        + (
            "the longest run of consecutive accepted levels; "
            if s.min_passing_share >= 1
            else "the longest run of consecutive levels with accepted ends in which at least "
            f"{s.min_passing_share:.0%} of the levels were accepted (a level that failed inside "
            "it stayed in the fit and is reported) "
            f"{_cite('ICH M10')}; "
        )
        + f"a plate and analyte passed QC when "
        f"the curve converged, at least {s.min_levels} accepted levels lay in the range and at "
        f"least {share_text(s.min_control_share)} of the kit controls"
        + (
            f" (and at least {share_text(s.min_control_level_share)} at each level)"
            if s.min_control_level_share > 0
            else ""
        )
        + f" recovered within {lo:g}-{hi:g}% of "
        f"their expected value after the dilution factor {_cite('ICH M10')}. The acceptance "
        f"criteria were {ACCEPTANCE_TITLES.get(acceptance_name(s), 'set field by field')}. "
        "A curve that "
        f"failed on its fit or its standards gave its wells no concentration (flag "
        f"curve_failed) unless the analyst accepted it, and a net signal below the blank none "
        f"(flag below_blank). A curve whose kit controls failed "
        + (
            "gave its wells no concentration either (control_failure = withhold). "
            if s.control_failure == "withhold"
            else "kept its wells' concentrations with the flag controls_failed "
            "(control_failure = flag). "
        )
        + f"The limit of detection is the blank mean "
        f"plus {s.lod_sd:g} standard deviations, back-calculated {_cite('MSD kit inserts')}.",
        f"Sample concentrations were back-calculated with {conf} intervals from the delta "
        f"method on the inverse prediction (symmetric on the log scale, Student's t on the "
        f"residual degrees of freedom) and multiplied by the dilution factor. Values were "
        f"flagged below the LLOQ, above the ULOQ, outside the curve's asymptotes, extrapolated "
        f"beyond the standards, with a replicate CV above {s.max_cv:g}%, or with fewer than "
        f"{s.min_bead_count:g} beads {_cite('Luminex xMAP')}.",
        f"Concentration-response curves of each donor, treatment and analyte were fitted with "
        f"a {CurveModel(p.model).family} model {_cite('Ritz 2015')} "
        f"by {Weighting(p.weighting).method}"
        + (
            ", with the donor's matched negative control at concentration 0"
            if p.include_negative_control
            else ""
        )
        + f"; values below the LLOQ entered at LLOQ/2 and above the ULOQ at the ULOQ. A "
        f"response required a fit better than a flat line (extra-sum-of-squares F-test, "
        f"α = {p.alpha:g}) {_cite('Motulsky & Christopoulos 2004')}, a rising curve and a span "
        f"of at least {p.min_fold:g}-fold, from at least {p.min_concentrations} tested "
        f"concentrations. EC50 and the relative EC{p.ecx:g} are reported with "
        f"{100 * p.confidence:g}% Wald intervals on the log scale; values beyond the tested "
        f"concentrations are reported as censored, not extrapolated.",
    ]
    conv = result.calibration.conventions
    if len(conv):
        used = conv.drop_duplicates(["model", "weighting", "blank", "applied"])
        text.insert(
            0,
            "Each plate was calibrated the way the software that wrote its export does, "
            "unless an option was set: "
            + "; ".join(
                f"{r.model}, weights {r.weighting}, blanks {r.blank} on {r.signal} ({r.applied})"
                for r in used.itertuples(index=False)
            )
            + ". The settings below describe the first of these.",
        )
    from cytosafe import __version__

    text.append(
        f"Analyses were performed with CytoSafe {__version__} (all settings are listed in the "
        f"header of this report)."
    )
    return [re.sub(r"\s+", " ", t).replace(" ,", ",").replace(" ;", ";").strip() for t in text]


def render_qc_report(
    result: QuantificationResult,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = False,
    inputs: list[dict] | None = None,
) -> str:
    """Render the QC report of a quantification run as one self-contained HTML document.

    Parameters
    ----------
    result:
        The :class:`~cytosafe.quantification.QuantificationResult` of
        :func:`cytosafe.quantification.quantify`.
    title:
        Page title; defaults to "Quantification QC" and the study ids.
    generated:
        Text shown as the generation time (e.g. an ISO timestamp). Left out by default so
        that the same result always renders to the same bytes.
    packed:
        plotly.js and the figures gzip-packed (:func:`cytosafe.report.page.page_scripts`):
        a third of the size, for report files; the plain form (default) is what a server
        with a hash-only content security policy can serve.
    inputs:
        The inputs as a face recorded them (``name``, ``sha256``, optionally ``bytes`` and
        ``note``; the web app's stored plates: ``source_file`` and
        ``measurements_sha256``); by default each file of ``result.sources`` is hashed
        (:func:`cytosafe.report.page.input_files`).

    Returns
    -------
    str
        The HTML document.
    """
    _REPORT.rendering, _REPORT.units = True, None
    try:
        return _render(result, title=title, generated=generated, packed=packed, inputs=inputs)
    finally:
        _REPORT.rendering, _REPORT.units = False, None


def _render(result, *, title, generated, packed, inputs) -> str:
    wells = result.calibration.wells
    many = wells["study_id"].nunique() > 1
    figures = Figures()
    header = _header(result, generated, inputs)
    qc_rows, plate_cards = qc_table(result, many)
    flag_rows, flag_totals = _flag_counts(result, many)
    context = {
        "title": title or "Quantification QC · " + ", ".join(header["studies"]),
        "header": header,
        "settings": _settings(result),
        "qc_rows": qc_rows,
        "units_note": units_note(result),
        "has_printed": any(r["printed"] not in ("–", "") for r in qc_rows),
        "curve_models": ", ".join(f"{name} × {n}" for name, n in _curve_models(result))
        if len(_curve_models(result)) > 1
        else result.calibration.fit.model.name,
        "plate_cards": plate_cards,
        "n_pass": sum(r["passed"] for r in qc_rows),
        "curves": _curves(result, figures, many),
        "standards": _standards(result, many),
        "plate_maps": _plate_maps(result, figures, many),
        "flags": list(FLAGS),
        "flag_rows": flag_rows,
        "flag_totals": flag_totals,
        "potency": _potency(result, figures),
        "methods": _methods(result),
        "references": REFERENCES,
        "model": result.calibration.fit.model,
        "settings_obj": result.calibration.settings,
    }
    context.update(page_scripts(figures, packed=packed))
    return environment().get_template("qc.html").render(**context)


def write_qc_report(
    result: QuantificationResult,
    path: str | Path,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = True,
) -> Path:
    """Write the QC report of a quantification run to ``path`` (one HTML file).

    Parameters
    ----------
    result:
        The result of :func:`cytosafe.quantification.quantify`.
    path:
        Where to write; parent directories must exist. A directory path gets
        ``report.html`` inside it.
    title, generated, packed:
        See :func:`render_qc_report` (a file is packed by default).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> from cytosafe.quantification import quantify  # doctest: +SKIP
    >>> write_qc_report(quantify(["plate_1.csv"]), "qc.html")  # doctest: +SKIP
    PosixPath('qc.html')
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.html"
    text = render_qc_report(result, title=title, generated=generated, packed=packed)
    # newline="\n": the same bytes on every platform.
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path
