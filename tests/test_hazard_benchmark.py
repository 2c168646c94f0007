"""Benchmarking compares like with like (issue 18, item 3).

The shipped example study (SIMULATED, examples/cra-study/study.toml) tests TA-1 at up to
100 ug/mL and the anti-CD3 positive control at 1 ug/mL only: ranking TA-1 above anti-CD3
compares a 100-fold higher concentration, and the ranking must say so, and compare the
two at 1 ug/mL, where both were tested.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytosafe import analyze
from cytosafe.hazard import benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    return analyze(ROOT / "examples" / "cra-study" / "study.toml").hazard


def test_ta1_against_anti_cd3_states_the_100_fold_concentration_ratio(example):
    ov = example.ranking.set_index(["assay_format", "treatment"])
    row = ov.loc[("pbmc_aqueous", "TA-1")]
    assert not row["concentration_matched"]
    assert (
        "TA-1 at 100 ug/mL vs anti-CD3 at 1 ug/mL: 100-fold higher concentration"
        in row["concentration_comparison"]
    )
    assert "at matched 1 ug/mL: TA-1" in row["matched_comparison"]
    assert "(TA-1 below anti-CD3)" in row["matched_comparison"]


def test_the_hazard_reason_flags_the_mismatch(example):
    h = example.hazard
    reason = h[(h["treatment"] == "TA-1") & (h["assay_format"] == "pbmc_aqueous")]["reason"].iloc[0]
    assert "Not at matched concentrations: TA-1 at 100 ug/mL vs anti-CD3 at 1 ug/mL" in reason
    assert "Compared where both were tested: at matched 1 ug/mL" in reason


def test_per_analyte_rows_carry_the_comparison(example):
    per = example.benchmark
    ta1 = per[(per["treatment"] == "TA-1") & (per["assay_format"] == "whole_blood")]
    assert {"concentration_comparison", "concentration_matched", "matched_comparison"} <= set(
        per.columns
    )
    assert (~ta1["concentration_matched"]).all()
    assert ta1["concentration_comparison"].str.contains("vs anti-CD3 at 1 ug/mL").all()


def test_controls_without_a_concentration_are_not_compared(example):
    ov = example.ranking.set_index(["assay_format", "treatment"])
    vehicle = ov.loc[("whole_blood", "vehicle")]
    assert vehicle["concentration_comparison"] == ""
    assert vehicle["concentration_matched"]


def _summary(rows):
    cols = ["treatment", "treatment_role", "treatment_concentration", "treatment_unit",
            "analyte", "n_responders", "gmr", "median_log2_fold_change",
            "median_percent_of_positive"]  # fmt: skip
    s = pd.DataFrame(rows, columns=cols)
    s["study_id"], s["assay_format"], s["incubation_h"] = "S", "pbmc_aqueous", 24.0
    return s


class _Design:
    benchmarks = ("pos",)


def test_equal_concentrations_are_matched():
    s = _summary(
        [
            ("ta", "test", 1.0, "ug/mL", "IL-2", 5, 8.0, 3.0, 50.0),
            ("pos", "positive_control", 1.0, "ug/mL", "IL-2", 6, 16.0, 4.0, 100.0),
        ]
    )
    per, ov = benchmark(s, _Design())
    row = ov.set_index("treatment").loc["ta"]
    assert row["concentration_matched"] and row["concentration_comparison"] == ""
    assert per.set_index("treatment").loc["ta", "concentration_matched"]


def test_a_lower_concentration_is_said_and_units_that_differ_are_not_compared():
    s = _summary(
        [
            ("ta", "test", 0.01, "ug/mL", "IL-2", 5, 8.0, 3.0, 50.0),
            ("pos", "positive_control", 1.0, "ug/mL", "IL-2", 6, 16.0, 4.0, 100.0),
        ]
    )
    _, ov = benchmark(s, _Design())
    text = ov.set_index("treatment").loc["ta", "concentration_comparison"]
    assert text == "ta at 0.01 ug/mL vs pos at 1 ug/mL: 100-fold lower concentration"
    assert ov.set_index("treatment").loc["ta", "matched_comparison"] == (
        "ta and pos share no tested concentration"
    )
    s.loc[s["treatment"] == "ta", "treatment_unit"] = "nM"
    _, ov = benchmark(s, _Design())
    assert "units differ" in ov.set_index("treatment").loc["ta", "concentration_comparison"]
