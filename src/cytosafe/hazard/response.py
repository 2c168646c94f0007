"""Donor-level responses: each culture against its donor's matched negative control.

For every donor x treatment x concentration x analyte (x format, incubation, plate) the
calibrated concentration is compared with the same donor's negative control of the same
format and incubation **on the same plate**; when the plate has none, with the donor's
control on another plate (recorded in ``control_match``, or not at all with
``require_same_plate``). Reported per response:

* ``fold_change`` = test / control and ``difference`` = test - control (pg/mL);
* ``log2_fold_change`` (used by the heatmap and the statistics);
* ``percent_of_positive`` = 100 x (test - control) / (positive control - control), the
  same donor's reference positive control of the same format and analyte;
* ``responder`` and ``rule_fired``: the responder call of the rule set and the name of
  the first rule that fired (``reason`` says why none did).

Values below the LLOQ (``HazardSettings.below_lloq``, a documented choice):

* ``censored`` (default) — the value is only known to lie below the LLOQ. A fold change
  with a censored control is a *lower* bound (``fold_change_bound`` ``>=``), with a
  censored test value an *upper* bound (``<=``), with both censored undefined; a bound
  proves a responder condition only when it points the right way, so a response is never
  called from values that cannot show it. Values above the ULOQ are bounds the other way.
  For the statistics, censored values are set at their limit, i.e. tied at the LLOQ, the
  treatment of one detection limit in rank tests (Helsel 2012).
* ``lloq/2`` or ``lloq`` — substitution: the value is replaced and treated as measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytosafe.hazard.design import HazardSettings, StudyDesign

__all__ = ["RESPONSE_KEY", "donor_responses", "prepare_values"]

CULTURE = ["study_id", "assay_format", "incubation_h", "donor_id", "analyte"]
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
    for col in ("assay_format", "study_id"):
        s[col] = s[col].astype(object).where(s[col].notna(), "")
    s["incubation_h"] = s["incubation_h"].astype(float).fillna(-1.0)
    s["treatment_concentration"] = s["treatment_concentration"].astype(float).fillna(0.0)
    if qc is not None and settings.exclude_failed_qc and len(qc):
        bad = qc.loc[~qc["qc_pass"].astype(bool), ["study_id", "plate_id", "analyte"]]
        if len(bad):
            tag = bad.assign(_bad=True)
            s = s.merge(tag, on=["study_id", "plate_id", "analyte"], how="left")
            n_bad = int(s["_bad"].fillna(False).astype(bool).sum())
            s = s[~s["_bad"].fillna(False).astype(bool)].drop(columns="_bad")
            pairs = ", ".join(
                f"{p} {a}" for p, a in bad[["plate_id", "analyte"]].itertuples(index=False)
            )
            warnings.append(
                f"{n_bad} sample value(s) left out because their plate x analyte failed QC ({pairs})"
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
    r = _call(r, settings)
    r["incubation_h"] = r["incubation_h"].where(r["incubation_h"] >= 0)
    r = r.rename(
        columns={"value": "test_concentration", "censored": "test_censored", "lloq": "test_lloq"}
    )
    cols = [
        "study_id", "assay_format", "incubation_h", "donor_id", "treatment", "treatment_role",
        "treatment_concentration", "treatment_unit", "analyte", "plate_id", "control_treatment",
        "control_plate_id", "control_match", "test_concentration", "test_censored", "test_lloq",
        "control_concentration", "control_censored", "fold_change", "fold_change_bound",
        "log2_fold_change", "difference", "difference_bound", "positive_control",
        "percent_of_positive", "responder", "rule_fired", "reason",
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
    pos = pos.groupby(
        ["study_id", "assay_format", "incubation_h", "donor_id", "analyte", "treatment"], sort=False
    )["difference"].max()  # a positive control at several concentrations: its strongest
    pos.index = pos.index.set_names("positive_control", level="treatment")
    pos = pos.rename("_pos_diff").reset_index()
    r = r.merge(
        pos,
        on=["study_id", "assay_format", "incubation_h", "donor_id", "analyte", "positive_control"],
        how="left",
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100 * r["difference"] / r["_pos_diff"]
    r["percent_of_positive"] = np.where(r["_pos_diff"] > 0, pct, np.nan)
    return r.drop(columns="_pos_diff")


def _call(r: pd.DataFrame, settings: HazardSettings) -> pd.DataFrame:
    """Apply the rule set: responder, the first rule that fired, and why none did."""
    fc = r["fold_change"].to_numpy(dtype=float)
    diff = r["difference"].to_numpy(dtype=float)
    kind = r["fold_change_bound"].to_numpy(dtype=object)
    proven_lo = np.isin(kind, ["=", ">="])
    lloq = r["lloq"].to_numpy(dtype=float)
    test_below = r["below_lloq"].to_numpy(dtype=bool)
    pct = r["percent_of_positive"].to_numpy(dtype=float)
    n = len(r)
    fired = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    for rule in settings.rule_set.rules:
        ok = np.ones(n, dtype=bool)
        why = np.full(n, "", dtype=object)

        def need(cond: np.ndarray, text: str, ok=ok, why=why) -> None:
            fail = ok & ~cond
            why[fail] = text
            ok &= cond

        if rule.above_lloq:
            need(~test_below, "test value below the LLOQ")
        if rule.min_fold_change is not None:
            need(
                proven_lo & (fc >= rule.min_fold_change),
                f"fold change below {rule.min_fold_change:g}",
            )
        if rule.min_difference is not None:
            need(
                proven_lo & (diff >= rule.min_difference),
                f"increase below {rule.min_difference:g} pg/mL",
            )
        if rule.min_difference_lloq is not None:
            need(
                proven_lo & (diff >= rule.min_difference_lloq * lloq),
                f"increase below {rule.min_difference_lloq:g} × LLOQ",
            )
        if rule.min_percent_of_positive is not None:
            need(
                proven_lo & (np.nan_to_num(pct, nan=-np.inf) >= rule.min_percent_of_positive),
                f"increase below {rule.min_percent_of_positive:g}% of the positive control",
            )
        new = ok & (fired == "")
        fired[new] = rule.name
        first_reason = (reason == "") & ~ok
        reason[first_reason] = why[first_reason]
    responder = fired != ""
    reason[responder] = ""
    undefined = ~responder & (kind == "undefined")
    reason[undefined] = np.where(
        r["censored"].to_numpy(dtype=object)[undefined] == "<",
        "test and control both below the LLOQ",
        "test and control both above the ULOQ",
    )
    r["responder"] = responder
    r["rule_fired"] = fired
    r["reason"] = reason
    return r
