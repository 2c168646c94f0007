"""Donor-level responses: each culture against its donor's matched negative control.

For every donor x treatment x concentration x analyte (x format, incubation, plate) the
calibrated concentration is compared with the same donor's negative control of the same
format and incubation **on the same plate**; when the plate has none, with the donor's
control on another plate (recorded in ``control_match``, or not at all with
``require_same_plate``). Reported per response:

* ``fold_change`` = test / control and ``difference`` = test - control, in the
  ``concentration_unit`` of the calibration (pg/mL, or an arbitrary unit such as IU/mL
  kept as the export wrote it; :mod:`cytosafe.schema.units`);
* ``log2_fold_change`` (used by the heatmap and the statistics);
* ``percent_of_positive`` = 100 x (test - control) / (positive control - control), the
  same donor's reference positive control of the same format and analyte;
* ``responder``, ``call`` and ``rule_fired``: the responder call of the rule set and the
  name of the first rule that fired (``reason`` says why none did, why the call is
  indeterminate, or which censored bound decided it).

Values below the LLOQ (``HazardSettings.below_lloq``, a documented choice):

* ``censored`` (default) — the value is only known to lie below the LLOQ (above the
  ULOQ: only known to exceed it). A fold change with a censored control is a *lower*
  bound (``fold_change_bound`` ``>=``), with a censored test value an *upper* bound
  (``<=``), with both censored undefined. Each quantity a rule tests is the interval it is
  known to lie in, and a condition is met, failed or undecided (see :func:`_call`): a bound
  that lies wholly on one side of the threshold decides (a lower bound already at the
  threshold, an upper bound already below it) and says so in ``reason``; one that could
  lie on either side makes the call ``indeterminate`` (``call``), with the censored value,
  its limit, the bound and the threshold in ``reason``. An indeterminate call is neither
  responder nor non-responder (``responder`` is False; the summary counts it apart). For
  the statistics, censored values are set at their limit, i.e. tied at the LLOQ, the
  treatment of one detection limit in rank tests (Helsel 2012).
* ``lloq/2`` or ``lloq`` — substitution: the value is replaced and treated as measured,
  so no call is indeterminate below the LLOQ.

``call`` is ``responder``, ``non-responder`` or ``indeterminate``; ``responder`` is True
for the first only.

Units: a test value is compared only with a control in the same ``concentration_unit``
(a plate in IU/mL is never matched with one in pg/mL). Fold changes and increases in
LLOQs are unit-free; an absolute increase (``min_difference``) is a threshold in pg/mL,
so a value in an arbitrary unit cannot be tested against it: that condition is undecided,
the call ``indeterminate`` with the reason, never decided as if the value were pg/mL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytosafe.errors import InputError
from cytosafe.hazard.design import HazardSettings, StudyDesign
from cytosafe.schema.units import CONCENTRATION_UNIT

__all__ = ["RESPONSE_KEY", "donor_responses", "prepare_values"]

#: What a test culture shares with its matched control (the unit: values in different
#: units are never compared).
CULTURE = ["study_id", "assay_format", "incubation_h", "donor_id", "analyte", "concentration_unit"]
RESPONSE_KEY = [
    "study_id", "assay_format", "incubation_h", "treatment", "treatment_concentration",
    "analyte", "donor_id",
]  # fmt: skip


def prepare_values(samples: pd.DataFrame, settings: HazardSettings) -> pd.DataFrame:
    """The study samples with ``value`` and ``censored`` (``<``, ``>`` or empty).

    ``value`` is the concentration, the LLOQ (censored), LLOQ/2 or the LLOQ (substituted)
    below the range, and the ULOQ above it; ``below_lloq`` keeps the original flag.
    """
    s = samples.copy()
    conc = s["concentration"].to_numpy(dtype=float)
    lloq = s["lloq"].to_numpy(dtype=float)
    uloq = s["uloq"].to_numpy(dtype=float)
    below = s["below_lloq"].to_numpy(dtype=bool) & np.isfinite(lloq)
    above = s["above_uloq"].to_numpy(dtype=bool) & np.isfinite(uloq) & ~below
    factor = {"censored": 1.0, "lloq": 1.0, "lloq/2": 0.5}[settings.below_lloq]
    value = np.where(below, lloq * factor, conc)
    value = np.where(above, uloq, value)
    cens = np.where(below, "<", np.where(above, ">", ""))
    s["value"] = value
    s["censored"] = cens
    return s


def _aggregate(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """One row per ``key``: geometric mean of ``value``; censored only when all are."""
    if not df.duplicated(key).any():
        return df
    g = df.assign(_log=np.log(df["value"])).groupby(key, sort=False, dropna=False)
    first = g.first()
    first["value"] = np.exp(g["_log"].mean())
    cens = g["censored"].agg(lambda c: c.iloc[0] if (c == c.iloc[0]).all() else "")
    first["censored"] = cens
    first["below_lloq"] = g["below_lloq"].all()
    return first.drop(columns="_log").reset_index()


def _bounds(t, tc, c, cc) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fold change, difference and their bound kinds from censoring codes (-1, 0, +1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        fc = t / c
    diff = t - c
    exact = (tc == 0) & (cc == 0)
    lower = (tc >= 0) & (cc <= 0)  # test known or more; control known or less
    upper = (tc <= 0) & (cc >= 0)
    kind = np.where(exact, "=", np.where(lower, ">=", np.where(upper, "<=", "undefined")))
    return fc, diff, kind, kind


def donor_responses(
    samples: pd.DataFrame,
    design: StudyDesign,
    *,
    qc: pd.DataFrame | None = None,
    settings: HazardSettings | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Responses of every donor culture over its matched negative control.

    Parameters
    ----------
    samples:
        Calibrated replicate groups (``Calibration.samples``) or any table with the
        culture columns, ``concentration``, ``lloq``, ``uloq``, ``below_lloq``,
        ``above_uloq`` and ``plate_id``.
    design:
        The :class:`~cytosafe.hazard.design.StudyDesign` (roles and matched controls).
    qc:
        Plate QC (``Calibration.qc``); failed plate x analyte values are left out when
        ``settings.exclude_failed_qc``.

    Returns
    -------
    (responses, warnings)
        One row per donor x format x incubation x treatment x concentration x analyte
        (x plate) for every treatment but the negative controls, and the warnings (in
        words) about what could not be matched or was left out.
    """
    settings = settings or design.settings
    warnings: list[str] = []
    s = samples[samples["sample_type"].astype(str) == "sample"].copy()
    s["treatment"] = s["treatment"].astype(object)
    unknown = sorted(set(s["treatment"].dropna()) - set(design.treatments))
    if unknown:
        warnings.append(
            "treatments in the data but not in the design were left out: " + ", ".join(unknown)
        )
        s = s[~s["treatment"].isin(unknown)]
    s = s[s["treatment"].notna() & s["donor_id"].notna()]
    s["treatment_role"] = s["treatment"].map(lambda t: design.treatments[t].role)
    if "concentration_unit" not in s.columns:  # a table from before units were kept
        s["concentration_unit"] = CONCENTRATION_UNIT
    for col in ("assay_format", "study_id"):
        s[col] = s[col].astype(object).where(s[col].notna(), "")
    s["concentration_unit"] = (
        s["concentration_unit"]
        .astype(object)
        .where(s["concentration_unit"].notna(), CONCENTRATION_UNIT)
    )
    s["incubation_h"] = s["incubation_h"].astype(float).fillna(-1.0)
    s["treatment_concentration"] = s["treatment_concentration"].astype(float).fillna(0.0)
    if qc is not None and settings.exclude_failed_qc and len(qc):
        bad = qc.loc[~qc["qc_pass"].astype(bool), ["study_id", "plate_id", "analyte"]]
        if len(bad):
            tag = bad.assign(_bad=True)
            s = s.merge(tag, on=["study_id", "plate_id", "analyte"], how="left")
            failed = s["_bad"].eq(True).to_numpy()  # True where merged, NaN elsewhere
            n_bad = int(failed.sum())
            s = s[~failed].drop(columns="_bad")
            pairs = ", ".join(
                f"{p} {a}" for p, a in bad[["plate_id", "analyte"]].itertuples(index=False)
            )
            warnings.append(
                f"{n_bad} sample value(s) left out because their plate x analyte failed QC ({pairs})"
            )
            if s.empty:  # nothing left to call a hazard on: say why, not fail further on
                shown = bad.drop_duplicates().head(5)
                more = len(bad.drop_duplicates()) - len(shown)
                named = ", ".join(
                    f"{p} {a}" for p, a in shown[["plate_id", "analyte"]].itertuples(index=False)
                ) + (f" and {more} more" if more > 0 else "")
                raise InputError(
                    f"no sample value is left for the hazard step: every plate x analyte failed "
                    f"QC ({named})",
                    field="qc_pass",
                    expected="curves that pass QC: see the QC report of 'cytosafe quantify' "
                    "(qc.csv, qc_reasons); accept curves explicitly, or set [hazard] "
                    "exclude_failed_qc = false",
                )
    unusable = (
        ~np.isfinite(s["concentration"].to_numpy(dtype=float))
        & ~s["below_lloq"].astype(bool).to_numpy()
    )
    if unusable.any():
        warnings.append(
            f"{int(unusable.sum())} sample value(s) without a concentration (no curve) left out"
        )
        s = s[~unusable]
    s = prepare_values(s, settings)
    key = [*CULTURE, "plate_id", "treatment", "treatment_concentration"]
    s = _aggregate(s, key)

    is_neg = s["treatment_role"] == "negative_control"
    ctrl = s[is_neg][[*CULTURE, "plate_id", "treatment", "value", "censored", "lloq"]].rename(
        columns={
            "treatment": "control_treatment",
            "value": "control_concentration",
            "censored": "control_censored",
            "lloq": "control_lloq",
            "plate_id": "control_plate_id",
        }
    )
    test = s[~is_neg].copy()
    if test.empty:
        return _empty(), [*warnings, "no treatment besides the negative control(s)"]
    test["control_treatment"] = test["treatment"].map(design.matched_control)
    # The matched control may be a vehicle (a treatment of its own): add its rows.
    vehicle_ctrls = set(test["control_treatment"]) - set(design.negative_controls)
    if vehicle_ctrls:
        veh = s[s["treatment"].isin(vehicle_ctrls)][
            [*CULTURE, "plate_id", "treatment", "value", "censored", "lloq"]
        ]
        ctrl = pd.concat([ctrl, veh.rename(columns={
            "treatment": "control_treatment", "value": "control_concentration",
            "censored": "control_censored", "lloq": "control_lloq", "plate_id": "control_plate_id",
        })], ignore_index=True)  # fmt: skip
    same = test.merge(
        ctrl,
        left_on=[*CULTURE, "plate_id", "control_treatment"],
        right_on=[*CULTURE, "control_plate_id", "control_treatment"],
        how="left",
    )
    same["control_match"] = np.where(same["control_concentration"].notna(), "same plate", "")
    missing = same["control_concentration"].isna()
    if missing.any() and not settings.require_same_plate:
        other = _aggregate(
            ctrl.rename(
                columns={"control_concentration": "value", "control_censored": "censored"}
            ).assign(below_lloq=lambda d: d["censored"] == "<"),
            [*CULTURE, "control_treatment"],
        ).rename(columns={"value": "control_concentration", "censored": "control_censored"})
        other = other.drop(columns="below_lloq")
        fill = same.loc[missing, test.columns].merge(
            other, on=[*CULTURE, "control_treatment"], how="left"
        )
        fill["control_match"] = np.where(fill["control_concentration"].notna(), "other plate", "")
        same = pd.concat([same[~missing], fill], ignore_index=True)
    unmatched = same["control_concentration"].isna()
    if unmatched.any():
        lost = same[unmatched]
        examples = ", ".join(
            sorted(
                {
                    f"{d} {t} ({f or 'no format'})"
                    for d, t, f in lost[["donor_id", "treatment", "assay_format"]].itertuples(
                        index=False
                    )
                }
            )[:6]
        )
        warnings.append(
            f"{int(unmatched.sum())} response(s) have no matched negative control"
            f"{' on the same plate' if settings.require_same_plate else ''} and were left out: {examples}"
        )
        same = same[~unmatched]
    r = same.reset_index(drop=True)
    if r.empty:
        return _empty(), warnings

    subst = settings.below_lloq != "censored"
    tc = np.select([r["censored"] == "<", r["censored"] == ">"], [-1, 1], 0)
    cc = np.select([r["control_censored"] == "<", r["control_censored"] == ">"], [-1, 1], 0)
    if subst:
        tc = np.where(tc < 0, 0, tc)
        cc = np.where(cc < 0, 0, cc)
    t = r["value"].to_numpy(dtype=float)
    c = r["control_concentration"].to_numpy(dtype=float)
    fc, diff, kind, _ = _bounds(t, tc, c, cc)
    r["fold_change"] = fc
    r["fold_change_bound"] = kind
    r["difference"] = diff
    r["difference_bound"] = kind
    with np.errstate(divide="ignore", invalid="ignore"):
        r["log2_fold_change"] = np.log2(fc)
    r = _percent_of_positive(r, design, settings)
    r = _call(r, settings, tc, cc).drop(columns="_pos_diff")
    r["incubation_h"] = r["incubation_h"].where(r["incubation_h"] >= 0)
    r = r.rename(
        columns={"value": "test_concentration", "censored": "test_censored", "lloq": "test_lloq"}
    )
    cols = [
        "study_id", "assay_format", "incubation_h", "donor_id", "treatment", "treatment_role",
        "treatment_concentration", "treatment_unit", "analyte", "plate_id", "control_treatment",
        "control_plate_id", "control_match", "concentration_unit", "test_concentration",
        "test_censored", "test_lloq",
        "control_concentration", "control_censored", "fold_change", "fold_change_bound",
        "log2_fold_change", "difference", "difference_bound", "positive_control",
        "percent_of_positive", "responder", "call", "rule_fired", "reason",
    ]  # fmt: skip
    r["control_plate_id"] = (
        r["control_plate_id"].astype(object).where(r["control_plate_id"].notna(), "")
    )
    return r[cols].sort_values(RESPONSE_KEY, kind="stable").reset_index(drop=True), warnings


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[*RESPONSE_KEY, "treatment_role", "responder", "rule_fired", "log2_fold_change"]
    )


def reference_positive_controls(
    r: pd.DataFrame, design: StudyDesign, settings: HazardSettings
) -> dict:
    """The reference positive control of each (study, format, incubation)."""
    pos = r[r["treatment_role"] == "positive_control"]
    out = {}
    for k, g in pos.groupby(["study_id", "assay_format", "incubation_h"], sort=False):
        if settings.reference_positive_control and settings.reference_positive_control in set(
            g["treatment"]
        ):
            out[k] = settings.reference_positive_control
            continue
        med = g.groupby("treatment")["log2_fold_change"].median()
        out[k] = str(med.idxmax()) if med.notna().any() else str(g["treatment"].iloc[0])
    return out


def _percent_of_positive(
    r: pd.DataFrame, design: StudyDesign, settings: HazardSettings
) -> pd.DataFrame:
    refs = reference_positive_controls(r, design, settings)
    fmt_key = list(zip(r["study_id"], r["assay_format"], r["incubation_h"], strict=True))
    r["positive_control"] = [refs.get(k, "") for k in fmt_key]
    pos = r[(r["treatment"] == r["positive_control"]) & (r["positive_control"] != "")]
    # The positive control's increase in the test's own unit (CULTURE holds the unit).
    pos = pos.groupby([*CULTURE, "treatment"], sort=False)[
        "difference"
    ].max()  # a positive control at several concentrations: its strongest
    pos.index = pos.index.set_names("positive_control", level="treatment")
    pos = pos.rename("_pos_diff").reset_index()
    r = r.merge(pos, on=[*CULTURE, "positive_control"], how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100 * r["difference"] / r["_pos_diff"]
    r["percent_of_positive"] = np.where(r["_pos_diff"] > 0, pct, np.nan)
    return r


def _limits(value: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interval a value is known to lie in: (0, LLOQ] below, [ULOQ, inf) above."""
    lo = np.where(code < 0, 0.0, value)
    hi = np.where(code > 0, np.inf, value)
    return lo, hi


def _bound_text(lo: float, hi: float, unit: str = "") -> str:
    """A censored quantity's interval in words ("≥ 1.57", "≤ 3", "between -2 and 30")."""
    u = f" {unit}" if unit else ""
    if np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or unit):
        return f"between {_g(lo)} and {_g(hi)}{u}"
    if np.isfinite(lo) and (lo > 0 or unit):
        return f"≥ {_g(lo)}{u}"
    if np.isfinite(hi):
        return f"≤ {_g(hi)}{u}"
    return "unbounded (any value)"


def _units(r: pd.DataFrame) -> np.ndarray:
    """The concentration unit of each response (pg/mL for a table without one)."""
    if "concentration_unit" not in r.columns:
        return np.full(len(r), CONCENTRATION_UNIT, dtype=object)
    units = r["concentration_unit"].astype(object)
    return units.where(units.notna(), CONCENTRATION_UNIT).to_numpy(dtype=object)


def _g(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _censoring_causes(r: pd.DataFrame, tc: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """Per response, which value was censored and at which limit, in words."""
    out = np.full(len(r), "", dtype=object)
    t = r["value"].to_numpy(dtype=float)
    c = r["control_concentration"].to_numpy(dtype=float)
    ctrl = r["control_treatment"].astype(str).to_numpy()
    unit = _units(r)
    for i in np.flatnonzero((tc != 0) | (cc != 0)):
        parts = []
        if tc[i]:
            side = "below the LLOQ" if tc[i] < 0 else "above the ULOQ"
            parts.append(f"the test value is {side} ({_g(t[i])} {unit[i]})")
        if cc[i]:
            side = "below the LLOQ" if cc[i] < 0 else "above the ULOQ"
            parts.append(f"the {ctrl[i]} control is {side} ({_g(c[i])} {unit[i]})")
        out[i] = " and ".join(parts)
    return out


def _call(
    r: pd.DataFrame, settings: HazardSettings, tc: np.ndarray, cc: np.ndarray
) -> pd.DataFrame:
    """Apply the rule set: a three-valued call, the first rule that fired, and why.

    Every quantity a rule tests (fold change, increase, % of the positive control) is an
    interval: a point for measured values, and for a censored value the range it is known
    to lie in (below the LLOQ: (0, LLOQ]; above the ULOQ: [ULOQ, inf)). A condition
    ``quantity >= threshold`` is *met* when the interval's low end reaches the threshold,
    *failed* when its high end stays below it, and *undecided* otherwise. A rule fires when
    all its conditions are met and fails when one fails; the call is ``responder`` when
    any rule fires, ``non-responder`` when every rule fails, and ``indeterminate`` when
    neither can be decided from what was measured. A value below the LLOQ is a censored
    observation with no number of its own (ICH M10 2022 and FDA 2018: a study sample
    concentration below the LLOQ is reported as below the limit, not as a value), so a
    comparison that would rest on a number put in its place is unknown; Helsel (2012)
    treats censored values as intervals and warns against substituting numbers for them.
    The rule is stated in ``cytosafe/data/hazard_rules.toml`` (``[censoring]``).
    """
    t = r["value"].to_numpy(dtype=float)
    c = r["control_concentration"].to_numpy(dtype=float)
    t_lo, t_hi = _limits(t, tc)
    c_lo, c_hi = _limits(c, cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        fc_lo, fc_hi = t_lo / c_hi, t_hi / c_lo
        fc_lo = np.where(cc > 0, 0.0, fc_lo)  # t / inf
    d_lo, d_hi = t_lo - c_hi, t_hi - c_lo
    pos = r["_pos_diff"].to_numpy(dtype=float) if "_pos_diff" in r else np.full(len(r), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_lo = np.where(pos > 0, 100 * d_lo / pos, np.nan)
        p_hi = np.where(pos > 0, 100 * d_hi / pos, np.nan)
    lloq = r["lloq"].to_numpy(dtype=float)
    test_below = r["below_lloq"].to_numpy(dtype=bool)
    cause = _censoring_causes(r, tc, cc)
    unit = _units(r)
    n = len(r)
    state = np.full(n, -1, dtype=int)  # -1 non-responder, 0 indeterminate, 1 responder
    fired = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    undecided = np.full(n, "", dtype=object)
    decided_by_bound = np.full(n, "", dtype=object)
    for rule in settings.rule_set.rules:
        rs = np.ones(n, dtype=int)
        why = np.full(n, "", dtype=object)
        open_ = np.full(n, "", dtype=object)
        by_bound = np.full(n, "", dtype=object)

        def need(
            lo, hi, thr, name, label, unit="", per_row=False,
            rs=rs, why=why, open_=open_, by_bound=by_bound,
        ) -> None:  # fmt: skip
            thr = np.broadcast_to(np.asarray(thr, dtype=float), (n,))
            units = np.broadcast_to(np.asarray(unit, dtype=object), (n,))  # per row
            met = lo >= thr
            failed = ~met & ~(hi >= thr)  # NaN fails, as an unmeasurable quantity does
            und = ~met & ~failed
            censored = lo != hi

            def u(i: int) -> str:
                return f" {units[i]}" if units[i] else ""

            def at(i: int) -> str:  # a threshold in LLOQs is also said in the value's unit
                return f"{label} ({_g(thr[i])}{u(i)})" if per_row else label

            for i in np.flatnonzero(failed & (rs > -1)):
                extra = (
                    f" (at most {_g(hi[i])}{u(i)}: {cause[i]})"
                    if censored[i] and np.isfinite(hi[i])
                    else ""
                )
                why[i] = f"{name} below {label}{extra}"
            for i in np.flatnonzero(und & (rs == 1)):
                open_[i] = (
                    f"{cause[i]}, so the {name} is only known to be "
                    f"{_bound_text(lo[i], hi[i], units[i])}, which could lie on either side of "
                    f"{at(i)}"
                )
            for i in np.flatnonzero(met & censored & (rs == 1)):
                by_bound[i] = (
                    f"{cause[i]}: the {name} is {_bound_text(lo[i], hi[i], units[i])}, "
                    f"already at least {at(i)}"
                )
            rs[failed] = -1
            rs[und & (rs == 1)] = 0

        if rule.above_lloq:
            rs[test_below] = -1
            why[test_below] = "test value below the LLOQ"
        if rule.min_fold_change is not None:
            need(fc_lo, fc_hi, rule.min_fold_change, "fold change", f"{rule.min_fold_change:g}")
        if rule.min_difference is not None:
            k = rule.min_difference
            # The threshold is in pg/mL: a value in an arbitrary unit is set aside from
            # this condition (undecided, with its reason), never compared as if in pg/mL.
            other = unit != CONCENTRATION_UNIT
            need(
                np.where(other, np.inf, d_lo), np.where(other, np.inf, d_hi), k, "increase",
                f"{k:g} {CONCENTRATION_UNIT}", CONCENTRATION_UNIT,
            )  # fmt: skip
            for i in np.flatnonzero(other & (rs == 1)):
                open_[i] = (
                    f"the values are in {unit[i]}, an arbitrary unit that does not convert to "
                    f"pg/mL, so the increase cannot be compared with the rule's "
                    f"{k:g} {CONCENTRATION_UNIT}"
                )
                rs[i] = 0
        if rule.min_difference_lloq is not None:
            k = rule.min_difference_lloq
            need(d_lo, d_hi, k * lloq, "increase", f"{k:g} × LLOQ", unit, per_row=True)
        if rule.min_percent_of_positive is not None:
            k = rule.min_percent_of_positive
            need(p_lo, p_hi, k, "increase", f"{k:g}% of the positive control", "%")
        new = (rs == 1) & (fired == "")
        fired[new] = rule.name
        decided_by_bound[new] = by_bound[new]
        first_open = (rs == 0) & (undecided == "")
        undecided[first_open] = open_[first_open]
        first_reason = (reason == "") & (rs == -1)
        reason[first_reason] = why[first_reason]
        state = np.maximum(state, rs)
    responder = state == 1
    indeterminate = state == 0
    reason[responder] = decided_by_bound[responder]
    reason[indeterminate] = "indeterminate: " + undecided[indeterminate].astype(object)
    kind = r["fold_change_bound"].to_numpy(dtype=object)
    both = (state == -1) & (kind == "undefined") & (tc == cc) & (tc != 0)
    reason[both] = np.where(
        tc[both] < 0, "test and control both below the LLOQ", "test and control both above the ULOQ"
    )
    r["responder"] = responder
    r["call"] = np.select(
        [responder, indeterminate], ["responder", "indeterminate"], "non-responder"
    ).astype(object)
    r["rule_fired"] = fired
    r["reason"] = reason
    return r
