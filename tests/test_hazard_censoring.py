"""Censored values in responder calls: a bound decides only when it lies on one side.

Issue 12 item 7. Every side of every bound is built by hand (a lower bound above and
below the threshold, an upper bound above and below it, both values censored), for the
fold change, the increase and the % of the positive control; then the summary and
hazard class counts, and the shipped example's plate MSD-04, where one IL-2 standard
raised the LLOQ to 39 pg/mL and censored the medium control.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe import analyze
from cytosafe.hazard import across_donors, donor_responses, get_rule_set
from cytosafe.hazard.design import HazardSettings, design_from_table
from cytosafe.hazard.rules import Rule, RuleSet, censoring, references

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cra-study"
BASE = {"study_id": "S", "plate_id": "P1", "analyte": "IL-6", "sample_type": "sample",
        "assay_format": "wb", "incubation_h": 24.0, "treatment_unit": "ug/mL"}  # fmt: skip


def _row(treatment, role, value, code="", *, lloq=10.0, uloq=1000.0, donor="D1", conc=1.0):
    """One calibrated value; ``code`` "<" (below the LLOQ, value = LLOQ) or ">" (above the ULOQ)."""
    return {
        **BASE,
        "donor_id": donor,
        "treatment": treatment,
        "treatment_role": role,
        "treatment_concentration": 0.0 if role == "negative_control" else conc,
        "concentration": lloq if code == "<" else (uloq if code == ">" else value),
        "lloq": lloq,
        "uloq": uloq,
        "below_lloq": code == "<",
        "above_uloq": code == ">",
    }


def _call(test, control, rules=None, extra=()):
    """The response of TA over medium; ``test``/``control`` are _row keyword dicts."""
    rows = [
        _row("medium", "negative_control", **control),
        _row("TA", "test", **test),
        *extra,
    ]
    samples = pd.DataFrame(rows)
    design = design_from_table(samples)
    settings = HazardSettings(rule_set=rules) if rules else design.settings
    r, _ = donor_responses(samples, design, settings=settings)
    return r[r["treatment"] == "TA"].iloc[0]


def _rules(*rules: Rule) -> RuleSet:
    return RuleSet(name="custom", title="custom", rules=rules, source="study")


FOLD2 = _rules(Rule("fold change >= 2", min_fold_change=2.0))


# --- lower bounds: a censored control (below the LLOQ) or test (above the ULOQ) ---------------
def test_lower_bound_above_the_threshold_decides_a_responder_and_says_why():
    row = _call({"value": 30.0}, {"value": 0, "code": "<"})
    assert row["fold_change_bound"] == ">=" and row["fold_change"] == pytest.approx(3.0)
    assert row["call"] == "responder" and row["responder"]
    assert row["reason"] == (
        "the medium control is below the LLOQ (10 pg/mL): the fold change is ≥ 3, "
        "already at least 2"
    )


def test_lower_bound_below_the_threshold_is_indeterminate_not_a_non_responder():
    row = _call({"value": 15.0}, {"value": 0, "code": "<"})
    assert row["call"] == "indeterminate" and not row["responder"]
    assert row["rule_fired"] == ""
    assert row["reason"] == (
        "indeterminate: the medium control is below the LLOQ (10 pg/mL), so the fold change "
        "is only known to be ≥ 1.5, which could lie on either side of 2"
    )


@pytest.mark.parametrize(("control", "call"), [(300.0, "responder"), (600.0, "indeterminate")])
def test_a_test_value_above_the_uloq_gives_a_lower_bound(control, call):
    row = _call({"value": 0, "code": ">"}, {"value": control})
    assert row["fold_change_bound"] == ">=" and row["call"] == call
    assert "the test value is above the ULOQ (1,000 pg/mL)" in row["reason"]


# --- upper bounds: a censored test (below the LLOQ) or control (above the ULOQ) ---------------
def test_upper_bound_below_the_threshold_decides_a_non_responder_and_says_why():
    # The rule without "test >= LLOQ", so that only the bound can decide.
    row = _call({"value": 0, "code": "<"}, {"value": 20.0}, rules=FOLD2)
    assert row["fold_change_bound"] == "<=" and row["call"] == "non-responder"
    assert row["reason"] == (
        "fold change below 2 (at most 0.5: the test value is below the LLOQ (10 pg/mL))"
    )


def test_upper_bound_above_the_threshold_is_indeterminate():
    # The test's LLOQ (40) is above the control's value (10): e.g. another dilution.
    row = _call({"value": 0, "code": "<", "lloq": 40.0}, {"value": 10.0}, rules=FOLD2)
    assert row["fold_change_bound"] == "<=" and row["call"] == "indeterminate"
    assert "so the fold change is only known to be ≤ 4" in row["reason"]
    # With "test >= LLOQ" in the rule, the censored test value itself decides.
    row = _call({"value": 0, "code": "<", "lloq": 40.0}, {"value": 10.0})
    assert row["call"] == "non-responder" and row["reason"] == "test value below the LLOQ"


@pytest.mark.parametrize(("test", "call"), [(90.0, "non-responder"), (500.0, "indeterminate")])
def test_a_control_above_its_uloq_gives_an_upper_bound(test, call):
    row = _call({"value": test}, {"value": 0, "code": ">", "uloq": 100.0})
    assert row["fold_change_bound"] == "<=" and row["call"] == call
    assert "the medium control is above the ULOQ (100 pg/mL)" in row["reason"]


# --- both censored -------------------------------------------------------------------------
def test_both_below_the_lloq_is_a_non_responder_when_the_rule_needs_a_quantifiable_test():
    row = _call({"value": 0, "code": "<"}, {"value": 0, "code": "<"})
    assert row["fold_change_bound"] == "undefined" and row["call"] == "non-responder"
    assert row["reason"] == "test and control both below the LLOQ"


def test_both_below_the_lloq_is_indeterminate_for_a_fold_change_alone():
    row = _call({"value": 0, "code": "<"}, {"value": 0, "code": "<"}, rules=FOLD2)
    assert row["call"] == "indeterminate"
    assert "unbounded" in row["reason"] and "the test value is below the LLOQ" in row["reason"]
    assert "the medium control is below the LLOQ" in row["reason"]


def test_both_above_the_uloq_is_indeterminate():
    row = _call({"value": 0, "code": ">"}, {"value": 0, "code": ">"})
    assert row["fold_change_bound"] == "undefined" and row["call"] == "indeterminate"


def test_test_below_and_control_above_is_a_decided_non_responder():
    row = _call({"value": 0, "code": "<"}, {"value": 0, "code": ">"}, rules=FOLD2)
    assert row["call"] == "non-responder" and "at most 0.01" in row["reason"]


# --- increase and % of the positive control --------------------------------------------------
@pytest.mark.parametrize(
    ("test", "call"),
    [(25.0, "responder"), (15.0, "indeterminate"), (6.0, "non-responder")],
)
def test_the_increase_is_an_interval_when_the_control_is_censored(test, call):
    # Control < 10: the increase lies in [test - 10, test); the rule needs >= 8 pg/mL.
    rules = _rules(Rule("increase >= 8 pg/mL", min_difference=8.0))
    lloq = 1.0 if test < 10 else 10.0  # a quantifiable test of 6 needs a lower LLOQ
    row = _call({"value": test, "lloq": lloq}, {"value": 0, "code": "<", "lloq": 10.0}, rules)
    assert row["call"] == call
    if call == "indeterminate":
        assert "increase is only known to be between 5 and 15 pg/mL" in row["reason"]
        assert "could lie on either side of 8 pg/mL" in row["reason"]
    if call == "non-responder":
        assert row["reason"].startswith("increase below 8 pg/mL (at most 6 pg/mL")


@pytest.mark.parametrize(("test", "call"), [(30.0, "responder"), (15.0, "indeterminate")])
def test_the_percent_of_positive_control_is_an_interval_when_the_control_is_censored(test, call):
    pos = _row("anti-CD3", "positive_control", 110.0)
    row = _call(
        {"value": test},
        {"value": 0, "code": "<"},
        rules=get_rule_set("percent_of_positive"),
        extra=[pos],
    )
    assert row["call"] == call
    if call == "indeterminate":
        assert "% of the positive control" in row["reason"]


def test_substitution_leaves_no_call_indeterminate():
    samples = pd.DataFrame([_row("medium", "negative_control", 0, "<"), _row("TA", "test", 15.0)])
    design = design_from_table(samples)
    r, _ = donor_responses(samples, design, settings=HazardSettings(below_lloq="lloq"))
    assert r.iloc[0]["call"] == "non-responder" and r.iloc[0]["reason"] == "fold change below 2"


# --- summary and hazard class ------------------------------------------------------------------
def test_the_summary_counts_indeterminate_calls_apart():
    rows = []
    for donor, test in (("D1", 30.0), ("D2", 15.0), ("D3", 12.0)):
        control = ("<", 0) if donor != "D3" else ("", 11.0)
        rows += [
            _row("medium", "negative_control", control[1], control[0], donor=donor),
            _row("TA", "test", test, donor=donor),
        ]
    samples = pd.DataFrame(rows)
    design = design_from_table(samples)
    r, _ = donor_responses(samples, design)
    assert list(r.sort_values("donor_id")["call"]) == [
        "responder",
        "indeterminate",
        "non-responder",
    ]
    s = across_donors(r, design.settings).iloc[0]
    assert s["n_donors"] == 3 and s["n_responders"] == 1 and s["n_indeterminate"] == 1
    assert s["responder_fraction"] == pytest.approx(0.5)  # 1 of the 2 determinate donors
    assert s["indeterminate_donors"] == "D2" and s["responders"] == "D1"


def test_the_censoring_rule_is_stated_once_and_cited():
    rule = censoring()
    assert "indeterminate" in rule["description"]
    assert set(rule["citations"]) == {"ICH M10", "FDA 2018", "Helsel 2012"}
    assert set(rule["citations"]) <= set(references())


# --- the shipped example: plate MSD-04 ---------------------------------------------------------
@pytest.fixture(scope="module")
def example():
    return analyze(EXAMPLE / "study.toml")


def test_msd04_il2_responders_lost_to_a_censored_control_are_now_indeterminate(example):
    r = example.hazard.responses
    truth = pd.read_csv(EXAMPLE / "truth" / "responders.csv")
    top = r.merge(
        truth,
        left_on=["donor_id", "assay_format", "treatment", "analyte", "treatment_concentration"],
        right_on=["donor_id", "assay_format", "treatment", "analyte", "top_concentration"],
        suffixes=("", "_true"),
    )
    lost = top[top["responder_true"] & ~top["borderline"] & ~top["responder"]]
    # No clear true responder is called a non-responder: the ones missed are undecided.
    assert len(lost) and (lost["call"] == "indeterminate").all()
    msd04 = lost[(lost["plate_id"] == "MSD-04") & (lost["analyte"] == "IL-2")]
    assert set(zip(msd04["donor_id"], msd04["treatment"], strict=True)) == {
        ("D07", "anti-CD3"),
        ("D08", "TA-1"),
    }
    assert (msd04["fold_change_true"] > 20).all()  # 56.6 and 26.6 in truth
    assert (msd04["control_censored"] == "<").all()
    d08 = msd04[msd04["donor_id"] == "D08"].iloc[0]
    assert d08["reason"].startswith("indeterminate: the medium control is below the LLOQ (39.1")
    assert "fold change is only known to be ≥ 1.57" in d08["reason"]


def test_example_summary_and_hazard_table_count_indeterminate_calls(example):
    hz = example.hazard
    s = hz.summary
    assert "n_indeterminate" in s and s["n_indeterminate"].sum() > 0
    wb = s[(s["assay_format"] == "whole_blood") & (s["treatment"] == "TA-1")]
    il2 = wb[(wb["analyte"] == "IL-2") & (wb["treatment_concentration"] == 100.0)].iloc[0]
    assert il2["n_indeterminate"] == 1 and il2["indeterminate_donors"] == "D08"
    assert il2["responder_fraction"] == pytest.approx(il2["n_responders"] / 7)
    h = hz.hazard.set_index(["treatment", "assay_format"])
    ta1 = h.loc[("TA-1", "whole_blood")]
    assert ta1["hazard_class"] == "high" and ta1["n_indeterminate"] >= 1
    assert "IL-2" in ta1["indeterminate_by_analyte"] and ta1["class_could_be"] == ""
    assert "would not change it" in ta1["reason"]
    # Counts per treatment x format equal the summary's, over concentrations and analytes.
    for (t, f), row in h.iterrows():
        sel = s[(s["treatment"] == t) & (s["assay_format"] == f)]
        assert row["n_indeterminate"] == int(sel["n_indeterminate"].sum())
    changing = h[h["class_could_be"] != ""]
    for _, row in changing.iterrows():
        assert row["hazard_class"] in row["class_could_be"].split()
        assert "so it could change" in row["reason"]


def test_a_class_that_indeterminate_calls_could_change_says_so():
    from cytosafe.hazard.classify import classify

    rows = []
    for i, (test, code) in enumerate([(50.0, ""), (15.0, "<"), (15.0, "<"), (11.0, "")]):
        donor = f"D{i + 1}"
        control = (0, "<") if code else (10.5, "")
        rows += [
            _row("medium", "negative_control", control[0], control[1], donor=donor),
            _row("TA", "test", test, donor=donor),
        ]
    samples = pd.DataFrame(rows)
    design = design_from_table(samples)
    r, _ = donor_responses(samples, design)
    assert sorted(r["call"]) == ["indeterminate", "indeterminate", "non-responder", "responder"]
    s = across_donors(r, design.settings)
    hz = classify(s, s.iloc[:0], pd.DataFrame(), design, design.settings).iloc[0]
    # 1 of 2 determinate donors respond: "moderate" needs significance, "low" needs 2 donors.
    assert hz["n_indeterminate"] == 2 and hz["indeterminate_by_analyte"] == "IL-6: 2"
    assert hz["class_could_be"].split()[0] == hz["hazard_class"]
    assert len(hz["class_could_be"].split()) == 2
    assert "were they responders the class would be" in hz["reason"]


def test_rule_sets_without_censoring_keep_their_calls():
    # A measured pair never becomes indeterminate: the three-valued logic is two-valued there.
    row = _call({"value": 25.0}, {"value": 10.0})
    assert row["call"] == "responder" and row["reason"] == ""
    row = _call({"value": 15.0}, {"value": 10.0})
    assert row["call"] == "non-responder" and row["reason"] == "fold change below 2"
    assert np.isclose(row["fold_change"], 1.5)


# --- the study report ------------------------------------------------------------------------
def test_the_report_shows_indeterminate_calls_distinctly_and_states_the_rule(example):
    import re

    from markupsafe import escape

    from cytosafe.report.hazard import heatmap_figure, render_hazard_report

    page = render_hazard_report(example)
    # Legend, per-class counts, the summary column, the methods and the references.
    legend = page.split('id="heatmap-legend"', 1)[1].split("</p>", 1)[0]
    assert "indeterminate" in legend and "neither responder nor non-responder" in legend
    n_ind = example.hazard.hazard["n_indeterminate"]
    cards = re.findall(r'data-indeterminate="(\d+)"', page)
    assert sorted(map(int, cards)) == sorted(int(n) for n in n_ind if n)
    assert "could change the class" in page and "would not change the class" in page
    assert "<th" in page and "Indet.</th>" in page
    assert len(re.findall(r'<td class="n ind" title="indeterminate: ', page)) == int(
        (example.hazard.summary["n_indeterminate"] > 0).sum()
    )
    assert str(escape(censoring()["description"])) in page
    assert page.count("ICH M10: Bioanalytical method validation") == 1  # cited once
    # The heatmap marks an indeterminate cell "?" and says why on hover.
    r = example.hazard.responses
    wb = r[(r["assay_format"] == "whole_blood") & (r["treatment"] == "TA-1")]
    fig = heatmap_figure(wb, example.hazard.design, title="wb")
    trace = fig["data"][0]
    marks = [(i, j) for i, row in enumerate(trace["text"]) for j, t in enumerate(row) if t == "?"]
    assert marks
    i, j = marks[0]
    assert trace["y"][i] == "D08" and trace["x"][j] == "IL-2"
    assert "indeterminate: the medium control is below the LLOQ" in trace["customdata"][i][j]
