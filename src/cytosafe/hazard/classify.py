"""Positive-control acceptance, benchmarking against controls and drugs, hazard classes.

* **Positive-control acceptance** per format: a positive control passes when at least
  ``positive_control_min_fraction`` of donors respond in at least one analyte. Every
  positive control expected to respond in a format (all formats unless the design's
  ``expect_response_in`` says otherwise: a CD28 superagonist is only expected after
  high-density pre-culture, Römer et al. 2011) must pass; otherwise the format is
  **invalid for hazard calling** and its test articles get the class ``invalid`` with
  the reason, never a silent ``negative``.
* **Benchmarking**: per analyte, the concentration of each treatment with the most
  responders (ties: the larger geometric mean ratio); the response as the median
  percentage of the donors' reference positive control; each treatment ranked against the
  benchmarks of the same study and format (positive, isotype and vehicle controls and any
  treatment marked ``benchmark``) by the median log2 fold change, per analyte and
  overall (mean over analytes of the median log2 fold change, increases only). Like is
  compared with like: where a treatment's best concentration differs from a benchmark's,
  the ranking says so with the concentration ratio ("100-fold higher concentration"),
  and where both were tested at a common concentration they are also compared there
  (matched concentration, the highest they share). A ranking across unmatched
  concentrations mixes potency with dose, which is why the ratio is stated.
* **Hazard classes** (:class:`~cytosafe.hazard.rules.Classification`): tried in order,
  first that fires wins; ``negative`` when none does. The reason says which cytokines,
  how many donors and compared with which benchmark.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cytosafe.hazard.design import HazardSettings, StudyDesign
from cytosafe.hazard.rules import ClassRule

__all__ = ["benchmark", "best_concentration", "classify", "positive_control_acceptance"]

FORMAT_KEY = ["study_id", "assay_format", "incubation_h"]


def natural_key(text: object) -> tuple:
    """Sort key ordering embedded numbers by value (D9 before D10)."""
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t
    )


def _fmt_name(fmt: str, inc: float) -> str:
    text = (fmt or "no format").replace("_", " ")
    return text + (f" {inc:g} h" if pd.notna(inc) and inc >= 0 else "")


def _num(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _key_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["incubation_h"] = out["incubation_h"].astype(float).fillna(-1.0)
    return out


def positive_control_acceptance(
    responses: pd.DataFrame, design: StudyDesign, settings: HazardSettings
) -> pd.DataFrame:
    """One row per format x positive control: donors responding in any analyte, verdict."""
    cols = [
        *FORMAT_KEY,
        "treatment",
        "n_donors",
        "n_responding_donors",
        "fraction",
        "expected",
        "passed",
        "non_responding_donors",
        "reason",
    ]
    r = _key_frame(responses)
    r = r[r["treatment_role"] == "positive_control"]
    rows = []
    for (study, fmt, inc, treatment), g in r.groupby([*FORMAT_KEY, "treatment"], sort=False):
        donors = g.groupby("donor_id")["responder"].any()
        n, k = len(donors), int(donors.sum())
        frac = k / n if n else 0.0
        t = design.treatments.get(treatment)
        expected = t is None or t.expect_response_in is None or fmt in t.expect_response_in
        passed = frac >= settings.positive_control_min_fraction
        need = f"{100 * settings.positive_control_min_fraction:g}%"
        if passed:
            reason = f"{k}/{n} donors respond in at least one analyte (≥ {need} required)"
        elif expected:
            reason = f"FAILED: only {k}/{n} donors respond in any analyte (≥ {need} required)"
        else:
            reason = f"{k}/{n} donors respond; not expected to respond in this format"
        silent = " ".join(sorted(map(str, donors.index[~donors.to_numpy()]), key=natural_key))
        rows.append((study, fmt, inc, treatment, n, k, frac, expected, passed, silent, reason))
    out = pd.DataFrame(rows, columns=cols)
    out["incubation_h"] = out["incubation_h"].where(out["incubation_h"] >= 0)
    return out


def best_concentration(summary: pd.DataFrame) -> pd.DataFrame:
    """Per format x treatment x analyte, the concentration with the most responders."""
    s = _key_frame(summary)
    s = s.assign(_g=s["gmr"].fillna(-np.inf), _c=s["treatment_concentration"])
    s = s.sort_values(["n_responders", "_g", "_c"], ascending=[False, False, False], kind="stable")
    best = s.drop_duplicates([*FORMAT_KEY, "treatment", "analyte"]).drop(columns=["_g", "_c"])
    return best.reset_index(drop=True)


def _ratio_text(ratio: float) -> str:
    """``100-fold higher`` / ``10-fold lower`` (3 significant figures)."""
    if ratio >= 1:
        return f"{_num(ratio)}-fold higher"
    return f"{_num(1 / ratio)}-fold lower"


def _compare(
    me: str,
    other: str,
    conc: tuple[float, float],
    unit: tuple[str, str],
    levels: dict[str, dict[float, float]],
    what: str,
) -> tuple[str | None, str | None]:
    """One treatment against one benchmark: the concentration ratio when they differ
    (``None`` when matched) and the comparison at the highest concentration both were
    tested at (``levels``: treatment -> concentration -> value of ``what``)."""
    where = f"{me} at {_num(conc[0])} {unit[0]}".rstrip()
    there = f"{other} at {_num(conc[1])} {unit[1]}".rstrip()
    if unit[0] != unit[1]:
        return f"{where} vs {there}: units differ, concentrations not comparable", None
    if conc[0] == conc[1]:
        return None, None
    ratio = f"{where} vs {there}: {_ratio_text(conc[0] / conc[1])} concentration"
    common = sorted(
        c for c in set(levels.get(me, {})) & set(levels.get(other, {})) if np.isfinite(c) and c > 0
    )
    if not common:
        return ratio, f"{me} and {other} share no tested concentration"
    c = common[-1]
    a, b = levels[me][c], levels[other][c]
    order = "above" if a > b else "below" if a < b else "level with"
    verdict = f" ({me} {order} {other})" if np.isfinite(a) and np.isfinite(b) else ""
    at = f"at matched {_num(c)} {unit[0]}".rstrip()
    return ratio, f"{at}: {me} {what} {_num(a)} vs {other} {_num(b)}{verdict}"


def _comparisons(
    names: list[str],
    conc: np.ndarray,
    unit: np.ndarray,
    bench: np.ndarray,
    levels: dict[str, dict[float, float]],
    what: str,
) -> tuple[list[str], list[bool], list[str]]:
    """For each treatment: its concentration against each benchmark's (ratio text), whether
    all of them are matched, and the comparisons at matched concentrations. Treatments and
    benchmarks without a concentration (vehicle, medium: 0 or none) are not compared."""
    texts, matched, at_matched = [], [], []
    for i, me in enumerate(names):
        parts, pairs = [], []
        for j, other in enumerate(names):
            if j == i or not bench[j]:
                continue
            if not (np.isfinite(conc[i]) and conc[i] > 0 and np.isfinite(conc[j]) and conc[j] > 0):
                continue
            ratio, pair = _compare(me, other, (conc[i], conc[j]), (unit[i], unit[j]), levels, what)
            if ratio:
                parts.append(ratio)
            if pair:
                pairs.append(pair)
        texts.append("; ".join(parts))
        matched.append(not parts)
        at_matched.append("; ".join(pairs))
    return texts, matched, at_matched


def _units(frame: pd.DataFrame) -> np.ndarray:
    if "treatment_unit" not in frame:
        return np.full(len(frame), "", dtype=object)
    return frame["treatment_unit"].fillna("").astype(str).to_numpy()


def _per_analyte_comparisons(
    g: pd.DataFrame, tested: pd.DataFrame
) -> tuple[list[str], list[bool], list[str]]:
    """:func:`_comparisons` for one format x analyte (``g``: each treatment at its best
    concentration; ``tested``: every concentration tested, with its median log2 FC)."""
    levels = {
        t: dict(zip(h["treatment_concentration"], h["median_log2_fold_change"], strict=True))
        for t, h in tested.groupby("treatment", sort=False)
    }
    return _comparisons(
        g["treatment"].tolist(),
        g["treatment_concentration"].to_numpy(dtype=float),
        _units(g),
        g["is_benchmark"].to_numpy(),
        levels,
        "median log2 fold change",
    )


def _overall_comparisons(
    g: pd.DataFrame, best: pd.DataFrame, tested: pd.DataFrame
) -> tuple[list[str], list[bool], list[str]]:
    """:func:`_comparisons` for one format over all analytes (``g``: the overall ranking).

    A treatment's concentration is the one most of its analytes are ranked at (the
    highest on a tie); at a matched concentration the two are compared by the overall
    score (mean over analytes of the median log2 fold change, increases only)."""
    conc, unit = {}, {}
    for t, h in best.groupby("treatment", sort=False):
        counts = h["treatment_concentration"].value_counts()
        conc[t] = float(max(counts.index[counts == counts.max()]))
        unit[t] = _units(h)[0] if len(h) else ""
    score = tested.assign(_inc=tested["median_log2_fold_change"].fillna(0.0).clip(lower=0))
    levels: dict[str, dict[float, float]] = {}
    for (t, c), h in score.groupby(["treatment", "treatment_concentration"], sort=False):
        levels.setdefault(t, {})[c] = float(h["_inc"].mean())
    names = g["treatment"].tolist()
    return _comparisons(
        names,
        np.array([conc.get(t, np.nan) for t in names], dtype=float),
        np.array([unit.get(t, "") for t in names], dtype=object),
        g["is_benchmark"].to_numpy(),
        levels,
        "mean log2 fold change over analytes",
    )


def benchmark(summary: pd.DataFrame, design: StudyDesign) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank every treatment against the others, per analyte and overall, per format.

    Returns ``(per_analyte, overall)``: ``per_analyte`` has one row per format x analyte
    x treatment (its best concentration) with ``rank`` (1 = strongest median log2 fold
    change), ``n_ranked``, ``median_percent_of_positive``, ``above`` and ``below`` (the
    benchmarks ranked above and below it); ``overall`` one row per format x treatment with
    ``score`` (mean over analytes of the median log2 fold change, increases only),
    ``rank``, ``above``, ``below``.

    Both tables also say whether the comparison is like with like:
    ``concentration_comparison`` (each benchmark tested at another concentration, with
    the ratio, e.g. ``TA-1 at 100 ug/mL vs anti-CD3 at 1 ug/mL: 100-fold higher
    concentration``), ``concentration_matched`` (``False`` when any benchmark was ranked
    at another concentration) and ``matched_comparison`` (the two at the highest
    concentration both were tested at, or that they share none).
    """
    best = best_concentration(summary)
    if best.empty:
        return best, best
    benches = set(design.benchmarks)
    best["is_benchmark"] = best["treatment"].isin(benches)
    best["_score"] = best["median_log2_fold_change"].fillna(0.0)
    tested_all = _key_frame(summary)
    tested_groups = dict(list(tested_all.groupby([*FORMAT_KEY, "analyte"], sort=False)))
    per = []
    for key, g in best.groupby([*FORMAT_KEY, "analyte"], sort=False):
        g = g.sort_values("_score", ascending=False, kind="stable").copy()
        texts, matched, at_matched = _per_analyte_comparisons(g, tested_groups[key])
        g["concentration_comparison"] = texts
        g["concentration_matched"] = matched
        g["matched_comparison"] = at_matched
        g["rank"] = np.arange(1, len(g) + 1)
        g["n_ranked"] = len(g)
        names, scores = g["treatment"].tolist(), g["_score"].to_numpy()
        flags = g["is_benchmark"].to_numpy()
        g["above"] = [
            " ".join(
                n
                for n, f, sc in zip(names, flags, scores, strict=True)
                if f and sc > s0 and n != me
            )
            for me, s0 in zip(names, scores, strict=True)
        ]
        g["below"] = [
            " ".join(
                n
                for n, f, sc in zip(names, flags, scores, strict=True)
                if f and sc <= s0 and n != me
            )
            for me, s0 in zip(names, scores, strict=True)
        ]
        per.append(g)
    per_analyte = pd.concat(per, ignore_index=True).drop(columns="_score")
    ov = (
        best.assign(_inc=best["_score"].clip(lower=0))
        .groupby([*FORMAT_KEY, "treatment"], sort=False)
        .agg(
            treatment_role=("treatment_role", "first"),
            is_benchmark=("is_benchmark", "first"),
            score=("_inc", "mean"),
            median_percent_of_positive=("median_percent_of_positive", "median"),
            n_analytes=("analyte", "nunique"),
        )
        .reset_index()
    )
    best_groups = dict(list(best.groupby(FORMAT_KEY, sort=False)))
    tested_formats = dict(list(tested_all.groupby(FORMAT_KEY, sort=False)))
    parts = []
    for key, g in ov.groupby(FORMAT_KEY, sort=False):
        g = g.sort_values("score", ascending=False, kind="stable").copy()
        g["rank"] = np.arange(1, len(g) + 1)
        g["n_ranked"] = len(g)
        texts, matched, at_matched = _overall_comparisons(g, best_groups[key], tested_formats[key])
        g["concentration_comparison"] = texts
        g["concentration_matched"] = matched
        g["matched_comparison"] = at_matched
        names, scores, flags = (
            g["treatment"].tolist(),
            g["score"].to_numpy(),
            g["is_benchmark"].to_numpy(),
        )
        g["above"] = [
            " ".join(
                n
                for n, f, sc in zip(names, flags, scores, strict=True)
                if f and sc > s0 and n != me
            )
            for me, s0 in zip(names, scores, strict=True)
        ]
        g["below"] = [
            " ".join(
                n
                for n, f, sc in zip(names, flags, scores, strict=True)
                if f and sc <= s0 and n != me
            )
            for me, s0 in zip(names, scores, strict=True)
        ]
        parts.append(g)
    overall = pd.concat(parts, ignore_index=True)
    for t in (per_analyte, overall):
        t["incubation_h"] = t["incubation_h"].where(t["incubation_h"] >= 0)
    return per_analyte, overall


def _resolved(rows: pd.DataFrame, how: str) -> pd.DataFrame:
    """The rows with their indeterminate calls taken as ``responder`` or ``non-responder``.

    ``determinate`` leaves them out of the fraction (the class's own basis).
    """
    rows = rows.copy()
    n_ind = (
        rows["n_indeterminate"].fillna(0).astype(int)
        if "n_indeterminate" in rows
        else pd.Series(0, index=rows.index)
    )
    n, k = rows["n_donors"].astype(float), rows["n_responders"].astype(float)
    if how == "responder":
        rows["n_responders"] = k + n_ind
        rows["responder_fraction"] = (k + n_ind) / n
    elif how == "non-responder":
        rows["responder_fraction"] = k / n
    else:
        det = n - n_ind
        rows["responder_fraction"] = k / det.where(det > 0)
    return rows


def _first_class(
    g: pd.DataFrame, settings: HazardSettings
) -> tuple[ClassRule | None, pd.DataFrame]:
    """The first class whose conditions enough analytes meet, with those analytes."""
    for rule in settings.classification.classes:
        q = g[_qualifies(g, rule)]
        if len(q) >= rule.min_analytes:
            return rule, q
    return None, g.iloc[:0]


def _qualifies(rows: pd.DataFrame, rule: ClassRule) -> np.ndarray:
    ok = np.ones(len(rows), dtype=bool)
    if rule.min_responder_fraction is not None:
        frac = np.nan_to_num(rows["responder_fraction"].to_numpy(dtype=float), nan=-np.inf)
        ok &= frac >= rule.min_responder_fraction
    if rule.min_donors is not None:
        ok &= rows["n_responders"].to_numpy(dtype=float) >= rule.min_donors
    if rule.require_significant:
        ok &= rows["significant"].to_numpy(dtype=bool)
    if rule.min_percent_of_positive is not None:
        pct = np.nan_to_num(rows["median_percent_of_positive"].to_numpy(dtype=float), nan=-np.inf)
        ok &= pct >= rule.min_percent_of_positive
    return ok


def classify(
    summary: pd.DataFrame,
    overall: pd.DataFrame,
    acceptance: pd.DataFrame,
    design: StudyDesign,
    settings: HazardSettings,
) -> pd.DataFrame:
    """Hazard class per test article x format with the reason in words.

    Columns: ``study_id, assay_format, incubation_h, treatment, hazard_class, valid,
    class_rule`` (the condition that fired), ``analytes`` (those that qualified),
    ``n_donors``, ``max_responders``, ``reason``, ``rank``, ``benchmarks_above``,
    ``benchmarks_below``.
    """
    cols = [*FORMAT_KEY, "treatment", "hazard_class", "valid", "class_rule", "analytes", "n_donors",
            "max_responders", "reason", "rank", "n_ranked", "benchmarks_above", "benchmarks_below",
            "n_indeterminate", "indeterminate_by_analyte", "class_could_be"]  # fmt: skip
    best = best_concentration(summary)
    best = best[best["treatment_role"] == "test"]
    if best.empty:
        return pd.DataFrame(columns=cols)
    acc = _key_frame(acceptance) if len(acceptance) else acceptance
    ov = _key_frame(overall) if len(overall) else overall
    rows = []
    for (study, fmt, inc, treatment), g in best.groupby([*FORMAT_KEY, "treatment"], sort=False):
        g = g.sort_values(["n_responders", "gmr"], ascending=False, kind="stable")
        g = _resolved(g, "determinate")
        fired, qual = _first_class(g, settings)
        n_ind, ind_text, could_be, ind_note = _indeterminate(summary, g, fired, settings)
        n_donors = int(g["n_donors"].max())
        max_resp = int(g["n_responders"].max())
        where = _fmt_name(fmt, inc)
        unit = (
            str(g["treatment_unit"].dropna().iloc[0]) if g["treatment_unit"].notna().any() else ""
        )
        o = (
            ov[
                (ov["study_id"] == study)
                & (ov["assay_format"] == fmt)
                & (ov["incubation_h"] == inc)
                & (ov["treatment"] == treatment)
            ]
            if len(ov)
            else ov
        )
        rank = int(o["rank"].iloc[0]) if len(o) else np.nan
        n_ranked = int(o["n_ranked"].iloc[0]) if len(o) else np.nan
        above = o["above"].iloc[0] if len(o) else ""
        below = o["below"].iloc[0] if len(o) else ""
        pcs = (
            acc[
                (acc["study_id"] == study)
                & (acc["assay_format"] == fmt)
                & (acc["incubation_h"] == inc)
            ]
            if len(acc)
            else acc
        )
        failed = pcs[pcs["expected"] & ~pcs["passed"]] if len(pcs) else pcs
        bench_text = ""
        if len(o):
            bench_text = (
                f" Ranks {rank} of {n_ranked} treatments in {where}"
                + (f", below {', '.join(above.split())}" if above else "")
                + (f", above {', '.join(below.split())}" if below else "")
                + "."
            )
            if "concentration_matched" in o and not bool(o["concentration_matched"].iloc[0]):
                bench_text += (
                    " Not at matched concentrations: "
                    + str(o["concentration_comparison"].iloc[0])
                    + "."
                    + (
                        f" Compared where both were tested: {o['matched_comparison'].iloc[0]}."
                        if o["matched_comparison"].iloc[0]
                        else ""
                    )
                )
        if len(failed):
            names = ", ".join(failed["treatment"])
            rows.append((study, fmt, inc, treatment, "invalid", False, "positive control failed", "",
                         n_donors, max_resp,
                         f"Not called: the positive control {names} failed in {where} "
                         f"({'; '.join(failed['reason'])}); the assay could not have shown a release.",
                         rank, n_ranked, above, below, n_ind, ind_text, ""))  # fmt: skip
            continue
        if fired is None:
            cls = "negative"
            top = g.iloc[0]
            detail = (
                f"no class condition met; at most {max_resp}/{n_donors} donors respond in any analyte"
                + (f" (most: {top['analyte']}, GMR {_num(top['gmr'])})" if max_resp else "")
            )
            rule_text = "none fired"
            analytes = ""
        else:
            cls = fired.name
            rule_text = fired.describe()
            analytes = " ".join(qual["analyte"])
            bits = []
            for r in qual.head(6).itertuples(index=False):
                pct = (
                    f", {_num(r.median_percent_of_positive)}% of {r.positive_control}"
                    if np.isfinite(r.median_percent_of_positive) and r.positive_control
                    else ""
                )
                bits.append(
                    f"{r.analyte} in {r.n_responders}/{r.n_donors} donors at "
                    f"{_num(r.treatment_concentration)} {unit} (GMR {_num(r.gmr)}"
                    f"{pct})"
                )
            more = f" and {len(qual) - 6} more" if len(qual) > 6 else ""
            detail = f"{len(qual)} analyte(s) meet '{rule_text}': " + "; ".join(bits) + more
        if n_donors < 2:
            detail += " WARNING: one donor only; no across-donor statistics."
        rows.append((study, fmt, inc, treatment, cls, True, rule_text, analytes, n_donors, max_resp,
                     f"{cls.capitalize()} in {where}: {detail}.{ind_note}{bench_text}", rank, n_ranked, above, below,
                     n_ind, ind_text, could_be))  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    out["incubation_h"] = out["incubation_h"].where(out["incubation_h"] >= 0)
    return out


def _indeterminate(
    summary: pd.DataFrame, g: pd.DataFrame, fired: ClassRule | None, settings: HazardSettings
) -> tuple[int, str, str, str]:
    """Indeterminate calls of one treatment x format and what they could change.

    Returns the number of indeterminate donor calls over all its concentrations and
    analytes, the count per analyte (``"IL-2: 2, IL-8: 1"``), the classes the treatment
    would get were every indeterminate call a responder or a non-responder (``""`` when neither changes the class), and a sentence
    for the reason.
    """
    first = g.iloc[0]
    if "n_indeterminate" not in summary:
        return 0, "", "", ""
    s = _key_frame(summary)
    s = s[
        (s["study_id"] == first["study_id"])
        & (s["assay_format"] == first["assay_format"])
        & (s["incubation_h"] == first["incubation_h"])
        & (s["treatment"] == first["treatment"])
    ]
    per = s.groupby("analyte", sort=False)["n_indeterminate"].sum()
    per = per[per > 0]
    n_ind = int(per.sum())
    if not n_ind:
        return 0, "", "", ""
    text = ", ".join(
        f"{a}: {int(k)}" for a, k in sorted(per.items(), key=lambda x: natural_key(x[0]))
    )
    cls = fired.name if fired else "negative"
    alt = {}
    for how in ("responder", "non-responder"):
        # Resolved at every concentration: another concentration may then become the best.
        rule, _ = _first_class(best_concentration(_resolved(s, how)), settings)
        alt[how] = rule.name if rule else "negative"
    reachable = {cls, *alt.values()}
    could_be = " ".join(sorted(reachable, key=_severity)) if len(reachable) > 1 else ""
    note = (
        f" {n_ind} donor call(s) are indeterminate ({text}): a censored value gives a bound "
        "that could lie on either side of the responder rule; they count as neither responder "
        "nor non-responder and the class rests on the determinate donors"
    )
    if could_be:
        note += (
            f"; were they responders the class would be {alt['responder']}, were they "
            f"non-responders {alt['non-responder']}, so it could change."
        )
    else:
        note += ", and resolving them either way would not change it."
    return n_ind, text, could_be, note


def _severity(name: str) -> int:
    order = ("negative", "low", "moderate", "high")
    return order.index(name) if name in order else len(order)
