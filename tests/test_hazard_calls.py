"""Hazard calls against known truth, and the edge cases the issue names.

Simulated studies (SIMULATED data: cytosafe.hazard.simulate and the shipped example
examples/cra-study, whose truth is truth/responders.csv) plant responders in known donors
and analytes; the calls must find them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe import analyze
from cytosafe.curves.calibration import CalibrationSettings
from cytosafe.hazard import assess_hazard, donor_responses, get_rule_set
from cytosafe.hazard.design import HazardSettings
from cytosafe.hazard.simulate import SimTreatment, default_treatments, simulate_study
from cytosafe.quantification import quantify

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cra-study"
KEY = ["donor_id", "treatment", "treatment_concentration", "analyte"]
CAL = CalibrationSettings(model="4PL")


def _run(measurements, design, settings=None):
    return assess_hazard(quantify(measurements, settings=CAL), design, settings=settings)


def _class(result, treatment: str) -> str:
    h = result.hazard
    return h.loc[h["treatment"] == treatment, "hazard_class"].iloc[0]


@pytest.fixture(scope="module")
def simulated():
    m, design, truth = simulate_study(n_donors=6, seed=11)
    return m, design, truth, _run(m, design)


@pytest.fixture(scope="module")
def example():
    return analyze(EXAMPLE / "study.toml")


# --- known truth ---------------------------------------------------------------------------
def test_simulated_responder_calls_match_the_planted_truth(simulated):
    _, _, truth, result = simulated
    top = result.responses.merge(truth, on=KEY, suffixes=("", "_true"))
    assert len(top) == len(truth)
    assert (top["responder"] == top["responder_true"]).all()


def test_simulated_hazard_classes_match_the_planted_truth(simulated):
    result = simulated[3]
    assert _class(result, "TA-hot") == "high"
    assert _class(result, "TA-cold") == "negative"
    assert result.valid and result.warnings == []


def test_each_responder_call_records_the_rule_that_fired(simulated):
    r = simulated[3].responses
    assert (r.loc[r["responder"], "rule_fired"] == "fold change >= 2 and test >= LLOQ").all()
    assert (r.loc[~r["responder"], "rule_fired"] == "").all()
    assert (r.loc[~r["responder"], "reason"] != "").all()


def test_the_percent_of_positive_rule_set_records_which_of_its_rules_fired(simulated):
    m, design, _, _ = simulated
    settings = dataclasses.replace(design.settings, rule_set=get_rule_set("percent_of_positive"))
    r = _run(m, design, settings).responses
    fired = set(r.loc[r["responder"], "rule_fired"])
    assert fired <= {r.name for r in get_rule_set("percent_of_positive").rules}
    assert "increase >= 10% of positive control and test >= LLOQ" in fired


def test_shipped_example_calls_match_its_truth_on_the_clear_pairs(example):
    truth = pd.read_csv(EXAMPLE / "truth" / "responders.csv")
    top = example.hazard.responses.merge(
        truth,
        left_on=["donor_id", "assay_format", "treatment", "analyte", "treatment_concentration"],
        right_on=["donor_id", "assay_format", "treatment", "analyte", "top_concentration"],
        suffixes=("", "_true"),
    )
    assert len(top) == len(truth) == 960
    clear = top[~top["borderline"]]
    agree = (clear["responder"] == clear["responder_true"]).mean()
    assert agree >= 0.99  # 877 of 879 clear pairs on the shipped data
    donors = top.groupby(["assay_format", "treatment", "donor_id"])["responder"].any()
    n = donors.groupby(["assay_format", "treatment"]).sum()
    assert n[("whole_blood", "TA-1")] == 7
    assert n[("pbmc_aqueous", "TA-1")] == 8
    assert n[("pbmc_high_density", "CD28-SA")] == 8
    assert n[("whole_blood", "TA-2")] == n[("pbmc_aqueous", "TA-2")] == 0


def test_shipped_example_hazard_calls_are_those_written_in_its_readme(example):
    hz = example.hazard
    calls = {(r.treatment, r.assay_format): r.hazard_class for r in hz.hazard.itertuples()}
    assert calls == {
        ("TA-1", "whole_blood"): "high",
        ("TA-1", "pbmc_aqueous"): "high",
        ("TA-2", "whole_blood"): "negative",
        ("TA-2", "pbmc_aqueous"): "negative",
    }
    assert hz.valid
    acc = hz.acceptance.set_index(["assay_format", "treatment"])
    assert acc.loc[("pbmc_high_density", "CD28-SA"), "passed"]
    assert (
        not acc.loc[("whole_blood", "CD28-SA"), "passed"]
        and not acc.loc[("whole_blood", "CD28-SA"), "expected"]
    )
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert "cytosafe analyze examples/cra-study/study.toml" in readme
    for (treatment, fmt), cls in calls.items():
        assert f"| {treatment} | {fmt} | {cls} |" in readme


# --- edge cases --------------------------------------------------------------------------------
def test_all_values_below_lloq_give_no_responder_and_no_test():
    treatments = [
        SimTreatment("medium", "negative_control", (0.0,)),
        SimTreatment("anti-CD3", "positive_control", (1.0,), fold=5000.0, ec50=0.01),
        SimTreatment("TA", "test", (1.0, 10.0, 100.0)),
    ]
    m, design, _ = simulate_study(n_donors=5, treatments=treatments, baseline=0.3, seed=2)
    result = _run(m, design)
    ta = result.responses[result.responses["treatment"] == "TA"]
    assert (ta["test_censored"] == "<").all() and (ta["control_censored"] == "<").all()
    assert (ta["fold_change_bound"] == "undefined").all()
    assert not ta["responder"].any()
    assert (ta["reason"] == "test and control both below the LLOQ").all()
    s = result.summary[result.summary["treatment"] == "TA"]
    assert s["p_value"].isna().all() and s["note"].str.contains("all below the LLOQ").all()
    assert _class(result, "TA") == "negative"


def test_a_donor_missing_for_one_treatment_is_reported_and_left_out_of_that_treatment(simulated):
    m, design, _, _ = simulated
    cut = m[~((m["donor_id"] == "D02") & (m["treatment"] == "TA-hot"))]
    result = _run(cut, design)
    assert any("TA-hot (whole_blood): no data for donor(s) D02" in w for w in result.warnings)
    s = result.summary[result.summary["treatment"] == "TA-hot"]
    assert (s["n_donors"] == 5).all()
    assert (result.summary.loc[result.summary["treatment"] == "TA-cold", "n_donors"] == 6).all()
    assert _class(result, "TA-hot") == "high"


def test_a_failed_positive_control_makes_the_study_invalid_for_hazard_calling():
    treatments = default_treatments()
    treatments[2] = SimTreatment("anti-CD3", "positive_control", (1.0,))  # no release
    m, design, _ = simulate_study(n_donors=5, treatments=treatments, seed=4)
    result = _run(m, design)
    assert not result.valid
    assert set(result.hazard["hazard_class"]) == {"invalid"}
    assert result.hazard["reason"].str.contains("positive control anti-CD3 failed").all()
    assert any("invalid for hazard calling" in w for w in result.warnings)


def test_a_test_article_at_one_concentration_only_is_called_without_potency_or_mixed_model():
    treatments = [
        SimTreatment("medium", "negative_control", (0.0,)),
        SimTreatment("anti-CD3", "positive_control", (1.0,), fold=60.0, ec50=0.05),
        SimTreatment("TA", "test", (10.0,), fold=30.0, ec50=1.0),
    ]
    m, design, _ = simulate_study(n_donors=5, treatments=treatments, seed=5)
    q = quantify(m, settings=CAL)
    result = assess_hazard(q, design)
    assert result.mixed.empty or "TA" not in set(result.mixed["treatment"])
    pot = q.potency[q.potency["treatment"] == "TA"]
    assert (pot["status"] == "insufficient_data").all()
    assert _class(result, "TA") == "high"


def test_a_single_donor_study_is_analysed_with_an_explicit_warning():
    m, design, _ = simulate_study(n_donors=1, seed=6)
    result = _run(m, design)
    assert any("1 donor(s)" in w for w in result.warnings)
    assert result.summary["p_value"].isna().all()
    assert result.hazard["reason"].str.contains("one donor only").all()


def test_a_matched_control_on_another_plate_is_used_and_recorded_unless_same_plate_is_required():
    # 20 concentrations per test article: each donor's cultures fill two plates.
    m, design, _ = simulate_study(n_donors=2, treatments=default_treatments(20), seed=8)
    # Remove the medium from D01's second plate: its cultures there fall back to plate 1.
    plates = sorted(m.loc[m["donor_id"] == "D01", "plate_id"].unique())
    cut = m[~((m["plate_id"] == plates[-1]) & (m["treatment"] == "medium"))]
    q = quantify(cut, settings=CAL)
    r, _ = donor_responses(q.calibration.samples, design)
    moved = r[(r["donor_id"] == "D01") & (r["plate_id"] == plates[-1])]
    assert len(moved) and (moved["control_match"] == "other plate").all()
    strict = dataclasses.replace(design.settings, require_same_plate=True)
    r2, warnings = donor_responses(q.calibration.samples, design, settings=strict)
    assert not ((r2["donor_id"] == "D01") & (r2["plate_id"] == plates[-1])).any()
    assert any("no matched negative control on the same plate" in w for w in warnings)


# --- below-LLOQ handling ------------------------------------------------------------------------
def _samples(
    test: float, test_below: bool, control: float, control_below: bool, lloq: float = 10.0
):
    base = {"study_id": "S", "plate_id": "P1", "analyte": "IL-6", "sample_type": "sample",
            "donor_id": "D1", "assay_format": "wb", "incubation_h": 24.0, "treatment_unit": "ug/mL",
            "lloq": lloq, "uloq": 1e4, "above_uloq": False}  # fmt: skip
    return pd.DataFrame(
        [
            {
                **base,
                "treatment": "medium",
                "treatment_role": "negative_control",
                "treatment_concentration": 0.0,
                "concentration": control,
                "below_lloq": control_below,
            },
            {
                **base,
                "treatment": "TA",
                "treatment_role": "test",
                "treatment_concentration": 1.0,
                "concentration": test,
                "below_lloq": test_below,
            },
        ]
    )


@pytest.fixture(scope="module")
def tiny_design():
    from cytosafe.hazard.design import design_from_table

    return design_from_table(_samples(30.0, False, 5.0, True))


def test_censored_control_gives_a_lower_bound_that_can_prove_a_response(tiny_design):
    r, _ = donor_responses(_samples(30.0, False, 5.0, True), tiny_design)
    row = r.iloc[0]
    assert row["fold_change_bound"] == ">=" and row["fold_change"] == pytest.approx(3.0)
    assert row["control_concentration"] == 10.0 and row["responder"]


def test_censored_test_value_is_never_a_responder(tiny_design):
    r, _ = donor_responses(_samples(5.0, True, 1.0, False), tiny_design)
    row = r.iloc[0]
    assert row["fold_change_bound"] == "<=" and not row["responder"]
    assert row["reason"] == "test value below the LLOQ"


def test_censored_control_bound_too_small_is_not_a_responder(tiny_design):
    r, _ = donor_responses(_samples(15.0, False, 5.0, True), tiny_design)
    assert r.iloc[0]["fold_change"] == pytest.approx(1.5) and not r.iloc[0]["responder"]


@pytest.mark.parametrize(
    ("rule", "expected"), [("lloq/2", 5.0), ("lloq", 10.0), ("censored", 10.0)]
)
def test_below_lloq_substitution_is_a_documented_choice(tiny_design, rule, expected):
    settings = HazardSettings(below_lloq=rule)
    r, _ = donor_responses(_samples(30.0, False, 1.0, True), tiny_design, settings=settings)
    row = r.iloc[0]
    assert row["control_concentration"] == expected
    assert row["fold_change_bound"] == (">=" if rule == "censored" else "=")
    assert np.isclose(row["fold_change"], 30.0 / expected)


def test_benchmarking_ranks_test_articles_against_the_controls(simulated):
    result = simulated[3]
    ov = result.ranking.set_index("treatment")
    assert ov.loc["anti-CD3", "rank"] < ov.loc["TA-hot", "rank"] < ov.loc["isotype", "rank"]
    hot = result.hazard.set_index("treatment").loc["TA-hot"]
    assert "anti-CD3" in hot["benchmarks_above"].split()
    assert "isotype" in hot["benchmarks_below"].split()
    assert "below anti-CD3" in hot["reason"]
    per = result.benchmark
    pos = per[per["treatment"] == "anti-CD3"]
    assert np.allclose(pos["median_percent_of_positive"], 100.0)
    assert len(per[per["treatment"] == "TA-hot"]) == 6  # one row per analyte


def test_a_donor_whose_positive_control_does_not_respond_is_flagged():
    treatments = default_treatments()
    treatments[2] = SimTreatment(
        "anti-CD3", "positive_control", (1.0,), fold=60.0, ec50=0.05, responders=0.6
    )
    m, design, _ = simulate_study(n_donors=5, treatments=treatments, seed=12)
    result = _run(m, design)
    acc = result.acceptance.iloc[0]
    assert acc["passed"] and acc["n_responding_donors"] == 3
    assert acc["non_responding_donors"] == "D04 D05"
    assert any("no response in donor(s) D04, D05" in w for w in result.warnings)
    assert result.valid
