"""Named acceptance criteria: CytoSafe's defaults and ICH M10's for ligand-binding assays.

The ICH M10 rules tested here are those of the guideline (International Council for
Harmonisation, M10: Bioanalytical method validation and study sample analysis, adopted
24 May 2022) for ligand-binding assays: section 4.2.3 (calibration curve: at least 6
levels, +/-20 % of nominal and +/-25 % at the LLOQ and ULOQ, at least 75 % of the
standards meeting them), 4.2.4 (CV at most 20 %, 25 % at the LLOQ and ULOQ) and 4.3.2
(run acceptance: at least two thirds of the QCs and at least 50 % at each concentration
level within +/-20 %).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.curves.calibration import (
    ACCEPTANCE,
    CalibrationSettings,
    acceptance_fields,
    acceptance_name,
    calibrate,
)
from cytosafe.errors import InputError
from test_calibration import LEVELS, _control, plate, signal_of

FIXTURES = (plate, _control, signal_of)
M10 = CalibrationSettings(**ACCEPTANCE["ich_m10"])
MIDDLE = LEVELS[3]  # 156.25 pg/mL, the fourth of the eight levels from the top


def _run_plate():
    """A plate with a sample and kit controls at 3 levels, all recovering (ICH M10 4.3.1
    asks a run for QCs at 3 levels at least)."""
    df = plate(samples=[("s", 300.0, 1)])
    for n, expected in enumerate((200.0, 800.0, 3000.0), start=1):
        df = _control(df, expected=expected, measured=expected, name=f"C{n}")
    return df


def _misprepared(df, level, factor):
    """A standard level whose wells hold ``factor`` times its nominal concentration."""
    df = df.copy()
    at = df["standard_concentration"] == level
    df.loc[at, "signal"] = signal_of([level * factor])[0]
    return df


def test_the_named_sets_hold_the_guideline_numbers():
    m10 = ACCEPTANCE["ich_m10"]
    assert m10["recovery_range"] == (80.0, 120.0) and m10["end_recovery_range"] == (75.0, 125.0)
    assert m10["max_cv"] == 20.0 and m10["end_max_cv"] == 25.0
    assert m10["min_levels"] == 6 and m10["min_passing_share"] == 0.75
    assert m10["min_control_share"] == pytest.approx(2 / 3)
    assert m10["min_control_level_share"] == 0.5
    # The defaults are the "cytosafe" set (taken from them), with the numbers the module
    # notes give: ICH M10's limits, every level of the range within them, 5 levels, two
    # thirds of the kit controls.
    cytosafe = ACCEPTANCE["cytosafe"]
    assert cytosafe["recovery_range"] == (80.0, 120.0)
    assert cytosafe["end_recovery_range"] == (75.0, 125.0)
    assert (cytosafe["max_cv"], cytosafe["end_max_cv"], cytosafe["min_levels"]) == (20.0, 20.0, 5)
    assert cytosafe["min_passing_share"] == 1.0
    assert cytosafe["min_control_share"] == pytest.approx(2 / 3)
    assert (cytosafe["min_control_level_share"], cytosafe["min_control_levels"]) == (0.0, 0)
    default = CalibrationSettings()
    for name, value in cytosafe.items():
        assert getattr(default, name) == pytest.approx(value), name
    assert set(cytosafe) == set(ACCEPTANCE["ich_m10"])


def test_acceptance_name_reads_the_set_back_and_says_custom_otherwise():
    assert acceptance_name(CalibrationSettings()) == "cytosafe"
    assert acceptance_name(M10) == "ich_m10"
    # A choice that is not an acceptance criterion leaves the name alone.
    assert acceptance_name(dataclasses.replace(M10, weighting="1/y")) == "ich_m10"
    assert acceptance_name(dataclasses.replace(M10, min_levels=5)) == "custom"
    # Ranges read back from a settings JSON come as lists.
    assert acceptance_name(dataclasses.replace(M10, recovery_range=[80.0, 120.0])) == "ich_m10"
    assert acceptance_fields("ICH-M10") == ACCEPTANCE["ich_m10"]
    with pytest.raises(InputError) as err:
        acceptance_fields("glp")
    assert err.value.field == "acceptance" and "ich-m10" in str(err.value)


@pytest.mark.parametrize("field", ["min_passing_share", "min_control_level_share"])
def test_a_share_outside_zero_to_one_is_refused_naming_the_field(field):
    with pytest.raises(InputError) as err:
        CalibrationSettings(**{field: 1.5})
    assert err.value.field == field
    with pytest.raises(InputError):
        CalibrationSettings(min_passing_share=0.0)


def test_one_failing_inner_level_breaks_the_default_range_but_not_ich_m10s():
    # Level 156.25 pg/mL misprepared at 1.5 x: it recovers ~127 %, outside 80-120 %. By
    # default the range ends at the level below it (4 levels: the curve fails); under ICH
    # M10 7 of 8 levels (88 % >= 75 %) pass, the range keeps all 8 and the run passes,
    # with the failing level reported.
    df = _misprepared(_run_plate(), MIDDLE, 1.5)
    default = calibrate(df)
    q = default.qc.iloc[0]
    assert q["uloq"] < MIDDLE and not q["qc_pass"]
    assert "only 4 standard levels in the quantifiable range" in q["qc_reasons"]
    assert q["levels_failing_in_range"] == 0
    s = default.wells[default.wells["sample_type"] == "sample"]
    assert s["curve_failed"].all()

    m10 = calibrate(df, M10)
    q = m10.qc.iloc[0]
    assert q["lloq"] == pytest.approx(LEVELS.min()) and q["uloq"] == pytest.approx(LEVELS.max())
    assert q["qc_pass"] and q["qc_reasons"] == ""
    assert q["levels_passing_in_range"] == 7 and q["levels_failing_in_range"] == 1
    failing = m10.standards[m10.standards["in_range"] & ~m10.standards["passes"]]
    assert failing["nominal"].tolist() == [pytest.approx(MIDDLE)]
    assert failing["recovery"].iloc[0] > 120
    s = m10.wells[m10.wells["sample_type"] == "sample"]
    assert not s["curve_failed"].any() and s["concentration"].notna().all()


def _scattered(df, level, spread=0.3):
    """A standard level whose two wells hold (1 -/+ spread) x nominal: its mean stays on
    the curve (the fit barely moves) and its CV (about 42 % at 0.3) fails it."""
    df = df.copy()
    at = df.index[df["standard_concentration"] == level]
    df.loc[at, "signal"] = signal_of([level * (1 - spread), level * (1 + spread)])
    return df


def test_ich_m10_keeps_the_range_only_while_three_quarters_of_its_levels_pass():
    # Inner levels of 8 fail on their CV. Two: 6 of 8 pass (75 %, the limit) and 6 levels
    # meet the minimum, so the run passes with the range whole. Three: 5 of 8 (62 %); no
    # 8-level range, and every shorter one holds fewer than 6 passing levels: the run
    # fails, saying how many levels of its range are within limits.
    df = _run_plate()
    two = _scattered(_scattered(df, LEVELS[2]), LEVELS[5])
    cal = calibrate(two, M10)
    q = cal.qc.iloc[0]
    assert (q["levels_passing_in_range"], q["levels_failing_in_range"]) == (6, 2)
    assert q["qc_pass"], q["qc_reasons"]
    assert q["lloq"] == pytest.approx(LEVELS.min()) and q["uloq"] == pytest.approx(LEVELS.max())
    assert (cal.standards["cv"] > 20).sum() == 2
    # By default a failing level ends the range: the longest run left has 2 levels.
    q = calibrate(two).qc.iloc[0]
    assert (
        not q["qc_pass"] and "only 2 standard levels in the quantifiable range" in q["qc_reasons"]
    )
    three = _scattered(two, LEVELS[3])
    q = calibrate(three, M10).qc.iloc[0]
    assert not q["qc_pass"]
    assert q["levels_passing_in_range"] < 6
    assert "(0.6104-39.06) (3 within limits); at least 6 are needed" in q["qc_reasons"]


def test_ich_m10_needs_six_levels_where_the_defaults_need_five():
    df = plate(levels=LEVELS[:5], samples=[("s", 300.0, 1)])
    assert calibrate(df).qc.iloc[0]["qc_pass"]
    q = calibrate(df, M10).qc.iloc[0]
    assert not q["qc_pass"] and "only 5 standard level(s); at least 6 are needed" in q["qc_reasons"]


def test_ich_m10_allows_a_cv_of_25_percent_at_the_ends_of_the_range():
    # The top standard's two wells 22 % apart in concentration (CV about 21 %): beyond the
    # default 20 % at the ULOQ, within ICH M10's 25 % (section 4.2.4).
    df = _run_plate()
    top = df.index[df["standard_concentration"] == LEVELS.max()]
    df.loc[top, "signal"] = signal_of([LEVELS.max() * 0.86, LEVELS.max() * 1.14])
    default = calibrate(df)
    m10 = calibrate(df, M10)
    cv = m10.standards.set_index("nominal").loc[LEVELS.max(), "cv"]
    assert 20 < cv <= 25
    assert default.qc.iloc[0]["uloq"] < LEVELS.max()
    q = m10.qc.iloc[0]
    assert q["uloq"] == pytest.approx(LEVELS.max()) and q["qc_pass"], q["qc_reasons"]
    # The ULOQ passes as an end, not as an inner level: all 8 levels count as within limits.
    assert (q["levels_passing_in_range"], q["levels_failing_in_range"]) == (8, 0)
    # With only 6 levels the ULOQ judged on the inner CV limit would leave 5 of the 6
    # within limits, one short of ICH M10's minimum.
    six = df[~df["standard_concentration"].isin(LEVELS[-2:])]
    q = calibrate(six, M10).qc.iloc[0]
    assert (q["levels_passing_in_range"], q["levels_failing_in_range"]) == (6, 0)
    assert q["qc_pass"], q["qc_reasons"]


def _three_controls(recoveries):
    """A plate with three kit control levels (200, 800, 3000 pg/mL) recovering as given."""
    df = plate(samples=[("s", 300.0, 1)])
    for n, (expected, rec) in enumerate(
        zip((200.0, 800.0, 3000.0), recoveries, strict=True), start=1
    ):
        df = _control(df, expected=expected, measured=expected * rec, name=f"C{n}")
    return df


def test_ich_m10_fails_a_run_with_a_control_level_out_although_two_thirds_pass():
    # Three control levels, one recovering 60 %: two thirds pass, so the default (and the
    # first condition of ICH M10 4.3.2) accept the run; the second condition, at least
    # 50 % at each level, does not.
    df = _three_controls((1.0, 0.6, 1.05))
    default = calibrate(df).qc.iloc[0]
    assert default["controls_passing"] == 2 and default["controls_pass"]
    q = calibrate(df, M10).qc.iloc[0]
    assert not q["controls_pass"] and not q["qc_pass"]
    assert "1 of 3 kit control levels with fewer than 50% of their controls" in q["qc_reasons"]
    # Every level within limits: both rules pass.
    assert calibrate(_three_controls((1.0, 0.95, 1.05)), M10).qc.iloc[0]["controls_pass"]


def test_a_control_level_is_its_expected_concentration():
    # Two controls of one expected value (one level), one recovering 60 %: half of the
    # level passes, which meets 50 %; the two-thirds rule over all three controls does not.
    df = _three_controls((1.0, 0.6, 1.0))
    df.loc[df["sample_id"] == "C3", "standard_concentration"] = 800.0
    df.loc[df["sample_id"] == "C3", "signal"] = signal_of([800.0, 800.0])
    # The third expected value as a computation gives it (800.0000000000001): one level.
    df.loc[df["sample_id"] == "C3", "standard_concentration"] = 8 * 100.00000000000001
    relaxed = dataclasses.replace(M10, min_control_share=0.5, min_control_levels=2)
    q = calibrate(df, relaxed).qc.iloc[0]
    assert q["control_levels"] == 2 and q["control_levels_failing"] == 0
    assert q["controls_pass"], q["qc_reasons"]


@pytest.mark.parametrize(("levels", "words"), [(0, "no kit control level(s)"),
                                               (2, "only 2 kit control level(s)")])  # fmt: skip
def test_ich_m10_needs_kit_controls_at_three_levels_to_judge_a_run(levels, words):
    # ICH M10 4.3.1: a run holds QCs at 3 levels at least. The default set judges the
    # controls a plate has (none: nothing to fail).
    df = plate(samples=[("s", 300.0, 1)])
    for n, expected in enumerate((200.0, 800.0)[:levels], start=1):
        df = _control(df, expected=expected, measured=expected, name=f"C{n}")
    assert calibrate(df).qc.iloc[0]["qc_pass"]
    q = calibrate(df, M10).qc.iloc[0]
    assert q["curve_pass"] and not q["controls_pass"] and not q["qc_pass"]
    assert f"{words} with an expected value; at least 3 are needed" in q["qc_reasons"]


def test_the_default_qc_table_keeps_its_verdicts_on_a_clean_plate():
    # Both sets agree on a plate whose every level and control is within limits.
    df = _three_controls((1.0, 1.0, 1.0))
    for settings in (CalibrationSettings(), M10):
        q = calibrate(df, settings).qc.iloc[0]
        assert q["qc_pass"] and q["levels_failing_in_range"] == 0
        assert q["control_levels_failing"] == 0
    assert isinstance(calibrate(df).qc, pd.DataFrame) and np.isfinite(q["lloq"])


def test_quantify_takes_the_acceptance_criteria_and_says_which_it_used(tmp_path):
    from test_cli import run

    df = _misprepared(_run_plate(), MIDDLE, 1.5)
    path = tmp_path / "plate.csv"
    df.to_csv(path, index=False)
    runs = {}
    for name in (None, "ich-m10"):
        out = tmp_path / (name or "default")
        args = ["quantify", path, "-o", out, "-q"] + (["--acceptance", name] if name else [])
        assert run(*args).exit_code == 0
        runs[name] = out
    for name, label in ((None, "cytosafe"), ("ich-m10", "ich_m10")):
        settings = json.loads((runs[name] / "settings.json").read_text())["calibration"]
        assert settings["acceptance"] == label
    qc = {name: pd.read_csv(out / "qc.csv").iloc[0] for name, out in runs.items()}
    assert not qc[None]["qc_pass"] and qc["ich-m10"]["qc_pass"]
    report = (runs["ich-m10"] / "report.html").read_text()
    assert (
        "ICH M10 (2022) for ligand-binding assays, sections 4.2.3, 4.2.4, 4.3.1 and 4.3.2" in report
    )
    assert "8 / 8 (1 outside limits)" in report
    assert (
        "defaults (every standard level in the range within limits)"
        in (runs[None] / "report.html").read_text()
    )
    bad = run("quantify", path, "-o", tmp_path / "bad", "-q", "--acceptance", "glp")
    assert bad.exit_code == 2 and "cytosafe | ich-m10" in bad.output


def test_a_study_files_acceptance_keeps_each_plates_vendor_convention(tmp_path):
    # [analysis] acceptance = "ich-m10" is an option over the plates' conventions, as
    # --acceptance is: the MSD plates keep Discovery Workbench's 4PL (the study file names
    # no model), and the run records the set. Folded into the settings it made them
    # explicit: every plate was fitted 5PL and most curves failed.
    import shutil

    from cytosafe.workflows import run_analysis

    root = Path(__file__).resolve().parents[1] / "examples" / "cra-study"
    study = tmp_path / "study"
    shutil.copytree(root / "msd", study / "msd")
    text = (root / "study.toml").read_text()
    text = text.replace('model = "4PL"\nweighting = "1/y2"\n', 'acceptance = "ich-m10"\n')
    assert 'acceptance = "ich-m10"' in text
    (study / "study.toml").write_text(text)
    # The example's MSD plates carry no kit controls, so every run fails ICH M10's control
    # rule and the hazard step has nothing left: it says so, naming the curves.
    with pytest.raises(InputError, match="every plate x analyte failed QC") as err:
        run_analysis(study / "study.toml")
    assert err.value.field == "qc_pass" and "exclude_failed_qc" in err.value.expected
    (study / "study.toml").write_text(
        text.replace("[hazard]\n", "[hazard]\nexclude_failed_qc = false\n", 1)
    )
    result = run_analysis(study / "study.toml", out=tmp_path / "out")
    cal = result.quantification.calibration
    assert set(cal.curves["model"]) == {"4PL"}
    assert cal.conventions["applied"].str.contains("acceptance=ich_m10").all()
    assert acceptance_name(cal.settings) == "ich_m10"
    # The curves themselves pass (4PL, as Discovery Workbench); the runs fail on controls.
    assert cal.qc["curve_pass"].mean() > 0.9 and not cal.qc["controls_pass"].any()
    assert cal.qc["qc_reasons"].str.contains("no kit control level").all()
    written = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert written["calibration"]["acceptance"] == "ich_m10"
    # The hazard report's methods name the set.
    report = (tmp_path / "out" / "report.html").read_text()
    assert "under the acceptance criteria of ICH M10 (2022) for ligand-binding assays" in report
