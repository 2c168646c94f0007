"""Calibration: back-calculation, the quantifiable range, every flag, plate QC, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytosafe.curves import get_model
from cytosafe.curves.calibration import FLAGS, CalibrationSettings, calibrate
from cytosafe.errors import InputError

TRUE = np.array([[40.0, 1.1, 900.0, 45000.0, 0.8]])  # a, b, c, d, g of a typical cytokine kit
LEVELS = 10000 / 4.0 ** np.arange(8)  # 8 standards, 1:4 series from 10,000 pg/mL
ROWS = "ABCDEFGHIJKLMNOP"


def signal_of(conc, p=TRUE):
    return get_model("5PL").f(np.atleast_2d(np.asarray(conc, float)), p)[0]


def plate(
    *,
    plate_id="P1",
    analyte="IL-6",
    levels=LEVELS,
    samples=(),
    noise=0.0,
    seed=0,
    blanks=2,
    p=TRUE,
    bead_count=None,
):
    """A plate: standards in duplicate, blanks, and samples given as (name, conc, dilution)."""
    rng = np.random.default_rng(seed)
    rows = []
    well = iter(f"{ROWS[i // 12]}{i % 12 + 1:02d}" for i in range(384))

    def add(kind, conc, rep, **extra):
        s = signal_of([conc], p)[0] * (1 + noise * rng.standard_normal())
        rows.append(
            dict(study_id="S1", plate_id=plate_id, well=next(well), analyte=analyte, sample_type=kind,
                 signal=max(s, 0.0), replicate=rep, bead_count=bead_count, **extra)
        )  # fmt: skip

    for c in levels:
        for r in (1, 2):
            add("standard", c, r, standard_concentration=c)
    for r in range(1, blanks + 1):
        add("blank", 0.0, r)
    for name, conc, dil in samples:
        for r in (1, 2):
            add("sample", conc, r, sample_id=name, dilution_factor=dil)
    return pd.DataFrame(rows)


def test_noise_free_samples_back_calculate_to_their_concentration():
    samples = [("s1", 3.0, 1), ("s2", 50.0, 2), ("s3", 700.0, 1), ("s4", 6000.0, 10)]
    cal = calibrate(plate(samples=samples))
    got = cal.samples.set_index("sample_id").loc[["s1", "s2", "s3", "s4"]]
    np.testing.assert_allclose(got["concentration_in_well"], [3.0, 50.0, 700.0, 6000.0], rtol=1e-5)
    np.testing.assert_allclose(got["concentration"], [3.0, 100.0, 700.0, 60000.0], rtol=1e-5)
    assert (got["ci_low"] <= got["concentration"]).all() and (
        got["ci_high"] >= got["concentration"]
    ).all()


@settings(max_examples=30, deadline=None)
@given(
    log_conc=st.floats(np.log(1.0), np.log(9000.0)), b=st.floats(0.7, 2.0), g=st.floats(0.5, 2.0)
)
def test_back_calculation_inverts_the_forward_model(log_conc, b, g):
    model = get_model("5PL")
    p = np.array([[30.0, b, 1000.0, 50000.0, g]])
    x = np.exp(log_conc)
    y = model.f(np.array([[x]]), p)
    assert model.inverse(y, p)[0, 0] == pytest.approx(x, rel=1e-8)


def test_interval_narrows_with_more_replicates_and_widens_with_noise():
    quiet = calibrate(plate(samples=[("s", 200.0, 1)], noise=0.02, seed=1))
    noisy = calibrate(plate(samples=[("s", 200.0, 1)], noise=0.10, seed=1))

    def width(cal):
        row = cal.samples.set_index("sample_id").loc["s"]
        return np.log(row["ci_high"] / row["ci_low"])

    assert width(noisy) > width(quiet)
    well = quiet.wells[quiet.wells["sample_id"] == "s"].iloc[0]
    grp = quiet.samples.set_index("sample_id").loc["s"]
    assert np.log(well["ci_high"] / well["ci_low"]) > np.log(grp["ci_high"] / grp["ci_low"])


def test_range_covers_all_levels_when_all_recover():
    cal = calibrate(plate(noise=0.0))
    curve = cal.curves.iloc[0]
    assert curve["lloq"] == pytest.approx(LEVELS.min())
    assert curve["uloq"] == pytest.approx(LEVELS.max())
    assert cal.standards["in_range"].all() and cal.qc["qc_pass"].all()


def test_a_failing_top_level_moves_the_uloq_down():
    df = plate()
    top = df["standard_concentration"] == LEVELS.max()
    df.loc[top, "signal"] *= 0.8  # the top standard recovers far below 75% (about 50 %)
    cal = calibrate(df, CalibrationSettings(model="5PL"))
    assert cal.curves.iloc[0]["uloq"] < LEVELS.max()
    assert not cal.standards.loc[cal.standards["nominal"] == LEVELS.max(), "in_range"].any()


def test_a_top_level_that_drives_the_fit_to_a_limit_fails_the_curve_with_the_reason():
    # A deeper hook (signal x 0.55) sends this 5PL's inflection and asymmetry to the
    # limits of FitLimits: a degenerate fit, its reason in QC and no number (issue 12,
    # item 5); the mirror family fits the same data and moves the ULOQ down instead.
    df = plate(samples=[("s", 150.0, 1)])
    top = df["standard_concentration"] == LEVELS.max()
    df.loc[top, "signal"] *= 0.55
    cal = calibrate(df, CalibrationSettings(model="5PL"))
    assert cal.curves.iloc[0]["status"] == "degenerate" and cal.curves.iloc[0]["curve_failed"]
    assert "curve fit degenerate (" in cal.qc.iloc[0]["qc_reasons"]
    assert cal.wells.loc[cal.wells["sample_type"] == "sample", "concentration"].isna().all()
    accepted = calibrate(df, CalibrationSettings(model="5PL", accept_curves=("P1:IL-6",)))
    assert accepted.qc.iloc[0]["accepted"] and not accepted.qc.iloc[0]["qc_pass"]
    s = accepted.wells[accepted.wells["sample_type"] == "sample"]
    assert not s["curve_failed"].any() and s["concentration"].notna().all()
    mirror = calibrate(df, CalibrationSettings(model="5PL-mirror"))
    assert mirror.curves.iloc[0]["status"] == "converged"
    assert mirror.curves.iloc[0]["uloq"] < LEVELS.max()


def test_end_levels_may_recover_within_75_to_125_percent():
    # ICH M10 4.2.3: +/-20% for calibrators, +/-25% at the LLOQ and ULOQ.
    s = CalibrationSettings()
    assert (
        s.recovery_range == (80.0, 120.0)
        and s.end_recovery_range == (75.0, 125.0)
        and s.max_cv == 20.0
    )


def _flags(cal, name):
    return cal.samples.set_index("sample_id").loc[name]


def test_flag_below_lloq_and_outside_asymptotes():
    df = plate(samples=[("low", 0.01, 1)])
    df.loc[df["sample_id"] == "low", "signal"] = 1.0  # below the zero-concentration signal
    cal = calibrate(df)
    row = _flags(cal, "low")
    assert row["below_lloq"] and row["outside_asymptotes"] and np.isnan(row["concentration"])


def test_flag_above_uloq_and_extrapolated():
    cal = calibrate(plate(samples=[("high", 30000.0, 1)]))
    row = _flags(cal, "high")
    assert row["above_uloq"] and row["extrapolated"]
    assert row["concentration"] == pytest.approx(30000.0, rel=1e-4)


def test_flag_extrapolated_below_the_lowest_standard_but_above_lod():
    cal = calibrate(plate(samples=[("tiny", 0.3, 1)]))
    row = _flags(cal, "tiny")
    assert row["extrapolated"] and row["below_lloq"]


def test_flag_high_replicate_cv():
    df = plate(samples=[("cv", 300.0, 1)])
    idx = df.index[df["sample_id"] == "cv"]
    df.loc[idx[0], "signal"] *= 1.5
    row = _flags(calibrate(df), "cv")
    assert row["high_cv"] and row["cv"] > 20


def test_flag_low_bead_count():
    df = plate(samples=[("beads", 300.0, 1)], bead_count=80)
    df.loc[df["sample_id"] == "beads", "bead_count"] = [20, 90]
    cal = calibrate(df)
    assert _flags(cal, "beads")["low_bead_count"]
    wells = cal.wells[cal.wells["sample_id"] == "beads"]
    assert wells["low_bead_count"].tolist() == [True, False]


def test_flag_no_curve_when_the_fit_cannot_be_used():
    df = plate(samples=[("s", 300.0, 1)])
    df.loc[df["sample_type"] == "standard", "signal"] = 100.0  # a flat "curve"
    cal = calibrate(df, CalibrationSettings(model="4PL"))
    row = _flags(cal, "s")
    assert row["below_lloq"] or row["no_curve"] or row["outside_asymptotes"]
    assert not cal.qc.iloc[0]["qc_pass"]


def test_every_flag_is_reported_as_a_column_and_in_text():
    cal = calibrate(plate(samples=[("high", 30000.0, 1)]))
    assert set(FLAGS) <= set(cal.wells.columns)
    assert "above_uloq" in _flags(cal, "high")["flags"]


def test_blank_handling_options_give_the_same_answer_on_clean_data():
    df = plate(samples=[("s", 250.0, 1)], noise=0.01, seed=5)
    results = {
        b: _flags(calibrate(df, CalibrationSettings(blank=b)), "s")["concentration"]
        for b in ("zero_standard", "ignore")
    }
    assert results["zero_standard"] == pytest.approx(results["ignore"], rel=0.05)
    sub = calibrate(df, CalibrationSettings(blank="subtract"))
    assert sub.wells["signal_used"].min() < df["signal"].min()


def test_lod_is_blank_mean_plus_2_5_sd_back_calculated():
    df = plate(blanks=6, noise=0.05, seed=3)
    cal = calibrate(df)
    blanks = df[df["sample_type"] == "blank"]["signal"]
    expected_signal = blanks.mean() + 2.5 * blanks.std(ddof=1)
    curve = cal.curves.iloc[0]
    p = curve[list(get_model("5PL").names)].to_numpy(float)[None]
    assert curve["lod"] == pytest.approx(
        get_model("5PL").inverse(np.array([[expected_signal]]), p)[0, 0], rel=1e-9
    )


def test_many_plates_and_analytes_are_fitted_in_one_batch():
    parts = [plate(plate_id=f"P{i}", analyte=a, samples=[("s", 100.0, 1)], noise=0.03, seed=i)
             for i in range(4) for a in ("IL-6", "TNF", "IFN-g")]  # fmt: skip
    cal = calibrate(pd.concat(parts, ignore_index=True))
    assert len(cal.curves) == 12 and len(cal.fit.status) == 12
    assert np.allclose(cal.samples.query("sample_id == 's'")["concentration"], 100.0, rtol=0.15)


def test_an_analyte_with_four_standard_levels_never_stops_the_others():
    # Issue 12, item 6: the short curve gets a status and a reason, and no number.
    short = plate(plate_id="P9", analyte="TNF", levels=LEVELS[:4], samples=[("s", 150.0, 1)])
    good = plate(plate_id="P9", analyte="IL6", samples=[("s", 150.0, 1)])
    cal = calibrate(pd.concat([short, good], ignore_index=True))
    curves = cal.curves.set_index("analyte")
    assert curves.loc["TNF", "status"] == "too_few_levels"
    qc = cal.qc.set_index("analyte")
    assert not qc.loc["TNF", "qc_pass"]
    assert "only 4 standard level(s); at least 5" in qc.loc["TNF", "qc_reasons"]
    assert qc.loc["IL6", "qc_pass"]
    wells = cal.wells[cal.wells["sample_type"] == "sample"].set_index("analyte")
    assert wells.loc["TNF", "curve_failed"].all() and wells.loc["TNF", "concentration"].isna().all()
    assert wells.loc["IL6", "concentration"].to_numpy() == pytest.approx(150.0, rel=0.05)


def test_kit_controls_are_checked_for_recovery():
    df = plate()
    ctl = df.iloc[:2].copy()
    ctl["sample_type"] = "control"
    ctl["well"] = ["H11", "H12"]
    ctl["standard_concentration"] = 400.0
    ctl["signal"] = signal_of([400.0, 400.0])
    df = pd.concat([df, ctl], ignore_index=True)
    qc = calibrate(df).qc.iloc[0]
    assert qc["n_controls"] == 1 and qc["controls_passing"] == 1
    df.loc[df["sample_type"] == "control", "signal"] = signal_of([150.0, 150.0])
    qc = calibrate(df).qc.iloc[0]
    assert not qc["qc_pass"] and "kit controls" in qc["qc_reasons"]


@pytest.mark.parametrize("model", ["4PL", "5PL"])
@pytest.mark.parametrize("weighting", ["none", "1/y", "1/y2", "1/var"])
def test_every_model_and_weighting_recovers_a_mid_range_sample(model, weighting):
    df = plate(samples=[("s", 150.0, 1)], noise=0.03, seed=11)
    cal = calibrate(df, CalibrationSettings(model=model, weighting=weighting))
    assert _flags(cal, "s")["concentration"] == pytest.approx(150.0, rel=0.15)


def test_an_excluded_standard_is_left_out_of_the_fit_but_reported():
    # e.g. the xPONENT reader excludes a standard whose expected concentration breaks the
    # dilution series (SOURCES.md of the real exports: '215625' for 215.625).
    df = plate(samples=[("s", 150.0, 1)])
    bad = df["standard_concentration"] == LEVELS[3]
    df.loc[bad, "standard_concentration"] = LEVELS[3] * 1000
    ruined = calibrate(df)
    df["exclude"] = bad
    cal = calibrate(df)
    assert _flags(cal, "s")["concentration"] == pytest.approx(150.0, rel=1e-4)
    assert _flags(ruined, "s")["concentration"] != pytest.approx(150.0, rel=1e-3)  # NaN or off
    row = cal.standards[cal.standards["excluded"]]
    assert len(row) == 1 and not row["in_range"].iloc[0]
    assert cal.curves.iloc[0]["n_levels"] == 7


@pytest.mark.parametrize(
    ("field", "bad", "choices"),
    [
        ("weighting", "1/x", "none | 1/y | 1/y2 | 1/var"),
        ("model", "6PL", "5PL | 5PL-mirror | 5PL-auto | 4PL | L4"),
        ("blank", "drop", "zero_standard | subtract | ignore"),
        ("covariance", "sandwich", "expected | observed"),
    ],
)
def test_an_unknown_choice_is_refused_when_the_settings_are_made(field, bad, choices):
    # Not later, when the fit fails: the error names the field and every choice.
    with pytest.raises(InputError) as err:
        CalibrationSettings(**{field: bad})
    assert err.value.field == field and err.value.expected == choices
    assert f"'{bad}'" in str(err.value)


def test_choices_are_their_strings_and_stay_strings_in_settings_json():
    import dataclasses
    import json

    s = CalibrationSettings(model="4pl", weighting="1/y", blank="subtract")
    assert s.model == "4PL" and s.weighting == "1/y" and s.blank == "subtract"
    assert s == CalibrationSettings(model="4PL", weighting="1/y", blank="subtract")
    for as_dict in (s.to_dict(), dataclasses.asdict(s)):
        text = json.loads(json.dumps(as_dict))
        assert text["model"] == "4PL" and text["weighting"] == "1/y"
        assert text["blank"] == "subtract" and text["covariance"] == "expected"
    plain = s.to_dict()
    assert {type(plain[k]) for k in ("model", "weighting", "blank", "covariance")} == {str}
    curves = calibrate(plate(samples=[("s", 150.0, 1)]), s).curves
    assert {type(v) for v in curves["weighting"]} == {type(v) for v in curves["blank_handling"]}
    assert {type(v) for v in curves["weighting"]} == {str}


def _control(df, expected, measured, dilution=1.0, name="C1"):
    ctl = df[df["sample_type"] == "blank"].iloc[:2].copy()
    ctl["sample_type"] = "control"
    ctl["sample_id"] = name
    ctl["well"] = [f"P{2 * int(name[-1]) + 1}", f"P{2 * int(name[-1]) + 2}"]
    ctl["standard_concentration"] = expected
    ctl["dilution_factor"] = dilution
    ctl["signal"] = signal_of([measured, measured])
    return pd.concat([df, ctl], ignore_index=True)


def test_kit_control_recovery_is_compared_after_the_dilution_factor():
    # Issue 12, item 4: an expected 800 pg/mL control diluted 1:2 reads 400 in the well;
    # compared in the sample (as xPONENT's % Recovery) it recovers 100 %.
    df = _control(plate(), expected=800.0, measured=400.0, dilution=2.0)
    qc = calibrate(df).qc.iloc[0]
    assert qc["n_controls"] == 1 and qc["controls_passing"] == 1 and qc["qc_pass"]


@pytest.mark.parametrize("expected", [np.nan, 0.0])
def test_a_control_without_an_expected_value_is_not_judged(expected):
    # Bio-Plex Manager prints Exp Conc 0 for a control it was given no value for (seen in
    # LabKey's Bio-Plex test exports); the reader keeps it missing. With nothing to recover,
    # it is not a failed kit control: the curve's QC and its samples stay unflagged.
    df = _control(plate(samples=[("s", 150.0, 1)]), expected=expected, measured=150.0)
    cal = calibrate(df)
    qc = cal.qc.iloc[0]
    assert qc["n_controls"] == 0 and qc["controls_pass"] and qc["qc_pass"]
    s = cal.wells[cal.wells["sample_type"] == "sample"]
    assert not s["controls_failed"].any()
    # one judged control beside it still counts
    df = _control(df, expected=400.0, measured=150.0, name="C2")
    qc = calibrate(df).qc.iloc[0]
    assert qc["n_controls"] == 1 and not qc["controls_pass"]


def test_two_thirds_of_the_kit_controls_must_pass():
    # ICH M10 run acceptance: at least 67 % of the QCs within limits.
    df = plate()
    for name, measured in (("C1", 400.0), ("C2", 400.0), ("C3", 150.0)):
        df = _control(df, expected=400.0, measured=measured, name=name)
    qc = calibrate(df).qc.iloc[0]
    assert qc["controls_passing"] == 2 and qc["qc_pass"]
    df.loc[df["sample_id"] == "C2", "signal"] = signal_of([150.0, 150.0])
    qc = calibrate(df).qc.iloc[0]
    assert not qc["qc_pass"] and "2 of 3 kit controls" in qc["qc_reasons"]


def test_failed_kit_controls_flag_the_wells_and_keep_their_numbers_by_default():
    # The standards pass: the curve is sound, the run's kit controls are not. Flagged
    # ``controls_failed`` with the number kept (as xPONENT and Bio-Plex report them), or
    # withheld as a failed curve's with ``control_failure="withhold"`` (regulated runs,
    # ICH M10 section 4.3.2).
    df = _control(plate(samples=[("s", 150.0, 1)]), expected=400.0, measured=150.0)
    cal = calibrate(df)
    qc = cal.qc.iloc[0]
    assert qc["curve_pass"] and not qc["controls_pass"] and not qc["qc_pass"]
    s = cal.wells[cal.wells["sample_type"] == "sample"]
    assert s["controls_failed"].all() and not s["curve_failed"].any()
    assert s["flags"].str.contains("controls_failed").all()
    np.testing.assert_allclose(s["concentration"], 150.0, rtol=1e-5)
    assert cal.curves.iloc[0]["controls_failed"] and not cal.curves.iloc[0]["curve_failed"]


def test_a_curve_that_fails_qc_gives_no_number_unless_accepted():
    df = _control(plate(samples=[("s", 150.0, 1)]), expected=400.0, measured=150.0)
    cal = calibrate(df, CalibrationSettings(control_failure="withhold"))
    s = cal.wells[cal.wells["sample_type"] == "sample"]
    assert not cal.qc.iloc[0]["qc_pass"] and cal.curves.iloc[0]["curve_failed"]
    assert s["curve_failed"].all() and s["concentration"].isna().all()
    assert s["ci_low"].isna().all() and s["flags"].str.contains("curve_failed").all()
    ok = calibrate(df, CalibrationSettings(control_failure="withhold", accept_curves=("P1:IL-6",)))
    s = ok.wells[ok.wells["sample_type"] == "sample"]
    assert not s["curve_failed"].any()
    np.testing.assert_allclose(s["concentration"], 150.0, rtol=1e-5)
    assert ok.qc.iloc[0]["accepted"] and not ok.qc.iloc[0]["qc_pass"]
    assert CalibrationSettings(accept_curves="*").accepts("any", "thing")
    with pytest.raises(InputError, match="cannot read accepted curve"):
        CalibrationSettings(accept_curves=("IL6",))
    with pytest.raises(InputError, match="control_failure"):
        CalibrationSettings(control_failure="ignore")


def test_a_degenerate_fit_status_gives_no_number():
    # The fit status decides as well as QC: the IL1B fit of the xPONENT export
    # (a = 2.9e14, c = 4e25, b = 0.004) came out of a fit that was not usable.
    from cytosafe.curves.calibration import FIT_OK

    assert "degenerate" not in FIT_OK and "failed" not in FIT_OK


def test_a_net_signal_below_the_blank_is_below_blank_not_a_number():
    df = plate(samples=[("s", 150.0, 1)])
    blank = df.loc[df["sample_type"] == "blank", "signal"].mean()
    df.loc[df["sample_type"] == "sample", "signal"] = blank * 0.5
    for blank_handling in ("subtract", "zero_standard"):
        cal = calibrate(df, CalibrationSettings(blank=blank_handling, accept_curves=("*",)))
        s = cal.wells[cal.wells["sample_type"] == "sample"]
        assert s["below_blank"].all() and s["concentration"].isna().all(), blank_handling


def test_an_exclusion_with_its_reason_refits_only_the_curve_it_touches():
    from cytosafe.curves.exclusions import apply_exclusions, parse_exclusions

    one = plate(analyte="IL-6", noise=0.04, seed=3, samples=[("s", 150.0, 1)])
    two = plate(analyte="TNF", noise=0.04, seed=4, samples=[("s", 150.0, 1)])
    df = pd.concat([one, two], ignore_index=True)
    before = calibrate(df, CalibrationSettings(accept_curves=("*",)))
    well = one.loc[one["standard_concentration"] == LEVELS[3], "well"].iloc[0]
    table = parse_exclusions([f"P1:{well}:IL-6=bubble seen in the well"])
    after = calibrate(apply_exclusions(df, table), CalibrationSettings(accept_curves=("*",)))
    b, a = before.curves.set_index("analyte"), after.curves.set_index("analyte")
    cols = ["a", "b", "c", "d", "g"]
    assert (a.loc["TNF", cols].to_numpy() == b.loc["TNF", cols].to_numpy()).all()
    assert not np.allclose(a.loc["IL-6", cols].to_numpy(float), b.loc["IL-6", cols].to_numpy(float))
    std = after.standards[after.standards["excluded"]]
    assert len(std) == 1 and std["exclusion_reason"].iloc[0] == "bubble seen in the well"
    assert std["analyte"].iloc[0] == "IL-6"


def test_exclusions_are_read_from_text_and_tables_and_bad_ones_are_named(tmp_path):
    from cytosafe.curves.exclusions import apply_exclusions, parse_exclusions

    lines = tmp_path / "excl.txt"
    lines.write_text("# analyst's exclusions\nP1:A01=tip touched the well\n")
    table = tmp_path / "excl.csv"
    table.write_text("plate_id,well,analyte,reason\nP1,A2,IL-6,outlier by Grubbs\n")
    got = parse_exclusions([lines, str(table), "P1:B1:IL-6=bubble"])
    assert got["well"].tolist() == ["A01", "A2", "B1"]
    assert got["analyte"].tolist() == [None, "IL-6", "IL-6"]
    marked = apply_exclusions(plate(), got)
    assert marked["exclude"].sum() == 3
    with pytest.raises(InputError, match="cannot read exclusion") as err:
        parse_exclusions(["P1:A01"])  # no reason
    assert err.value.field == "exclude"
    with pytest.raises(InputError, match="matches no well"):
        apply_exclusions(plate(), parse_exclusions(["P9:A01=typo"]))
    bad = tmp_path / "bad.csv"
    bad.write_text("plate_id,well,analyte,reason\nP1,A2,IL-6,\n")
    with pytest.raises(InputError) as err:
        parse_exclusions(bad)
    assert err.value.row == 2 and err.value.field == "reason" and err.value.file == str(bad)


def test_a_weight_floor_weights_by_the_absolute_signal_and_keeps_exact_curves_exact():
    # xPONENT's 1/y^2 rule (weight 1 / max(|y|, 1)^2) changes the weights, not the model:
    # a noise-free curve is still recovered exactly, with intervals.
    samples = [("s1", 3.0, 1), ("s2", 700.0, 1)]
    cal = calibrate(plate(samples=samples), CalibrationSettings(weight_floor=1.0))
    got = cal.samples.set_index("sample_id").loc[["s1", "s2"]]
    np.testing.assert_allclose(got["concentration"], [3.0, 700.0], rtol=1e-5)
    assert np.isfinite(got["ci_low"]).all()
    assert cal.settings.to_dict()["weight_floor"] == 1.0
    with pytest.raises(InputError, match="weight_floor") as err:
        CalibrationSettings(weight_floor=0.0)
    assert err.value.field == "weight_floor"


def test_asymmetry_bounds_keep_g_in_range_and_are_recorded():
    df = plate(samples=[("s", 150.0, 1)])
    cal = calibrate(df, CalibrationSettings(asymmetry_bounds=(0.9, 1.1)))
    assert 0.9 - 1e-9 <= cal.curves.iloc[0]["g"] <= 1.1 + 1e-9
    assert cal.settings.to_dict()["asymmetry_bounds"] == [0.9, 1.1]
    with pytest.raises(InputError) as err:
        CalibrationSettings(asymmetry_bounds=(10.0, 0.1))
    assert err.value.field == "asymmetry_bounds"


def _printed(df, params, model="5PL"):
    """``df`` as an export that printed the curve ``params`` (a, b, c, d[, g])."""
    out = df.copy()
    out["vendor_model"] = model
    for name, value in zip(("vendor_a", "vendor_b", "vendor_c", "vendor_d", "vendor_g"),
                           [*params, np.nan][:5], strict=True):  # fmt: skip
        out[f"{name}"] = value
    return out


def test_a_printed_curve_that_misreads_accepted_standards_is_called_no_reference():
    # Seen on LabKey's Bio-Plex IgA-Biotin exports: a printed 5PL stopped at its asymmetry
    # bound read standards at ~2x nominal while CytoSafe's curve read them within 80-120 %.
    # Here the printed curve's midpoint is twice the true one: it reads every standard at
    # twice its nominal value.
    from cytosafe.quantification import vendor_curve_qc

    df = plate(samples=[("s", 150.0, 1)])
    cal = calibrate(df)
    vendor_curve_qc(cal, _printed(df, TRUE[0]))
    qc = cal.qc.iloc[0]
    assert qc["vendor_difference"] < 1e-6 and qc["vendor_curve_note"] == ""
    wrong = TRUE[0].copy()
    wrong[2] *= 2.0
    cal = calibrate(df)
    vendor_curve_qc(cal, _printed(df, wrong))
    qc = cal.qc.iloc[0]
    assert qc["vendor_difference"] > 0.2
    note = qc["vendor_curve_note"]
    assert note.startswith("reads standards ") and "no reference" in note
    accepted = cal.standards.loc[cal.standards["passes"], "nominal"].unique()
    assert all(f"{level:g} at" in note for level in accepted)
    assert note.count(" at 200 %") == len(accepted)


def test_a_printed_curve_close_to_ours_is_not_called_no_reference():
    # Two sound curves may read a standard either side of a limit: only a printed curve
    # that differs from ours by more than the recovery tolerance (20 %) is judged.
    from cytosafe.quantification import vendor_curve_qc

    df = plate()
    near = TRUE[0].copy()
    near[2] *= 1.12  # reads standards ~12 % high: differs, but within tolerance
    cal = calibrate(df)
    vendor_curve_qc(cal, _printed(df, near))
    qc = cal.qc.iloc[0]
    assert 0 < qc["vendor_difference"] <= 0.2 and qc["vendor_curve_note"] == ""


def test_a_curve_on_bio_plex_s_asymmetry_bound_fails_for_its_short_range_not_its_fit():
    # A steep Bio-Plex curve held on g = 0.1 (tests/test_curves_limits.py) used to stop at
    # max_iter, so QC said 'curve fit max_iter' and showed no recoveries. Its fit now
    # converges and it fails for what is wrong with it: background below, a plateau
    # above, and too few standard levels between them for a quantifiable range.
    from tests.test_curves_limits import _steep_bio_plex_standards

    x, y = _steep_bio_plex_standards()
    df = pd.DataFrame(
        dict(study_id="S1", plate_id="P1", well=[f"{ROWS[i // 12]}{i % 12 + 1:02d}" for i in
             range(20)], analyte="ENV", sample_type="standard", signal=y,
             replicate=np.tile([1, 2], 10), standard_concentration=x)
    )  # fmt: skip
    settings = CalibrationSettings(model="5PL-mirror", weighting="1/y2", blank="ignore",
                                   asymmetry_bounds=(0.1, 10.0))  # fmt: skip
    cal = calibrate(df, settings)
    curve, qc = cal.curves.iloc[0], cal.qc.iloc[0]
    assert curve["status"] == "converged" and curve["g"] == pytest.approx(0.1)
    assert cal.standards["recovery"].notna().sum() >= 6
    assert curve["curve_failed"] and "max_iter" not in qc["qc_reasons"]
    assert qc["levels_in_range"] == 4
    assert qc["qc_reasons"] == (
        "only 4 standard levels in the quantifiable range (0.01072-2.315); at least 5 are needed"
    )


def test_one_sample_name_at_two_dilutions_is_two_replicate_groups():
    # A sample run neat and 1:4 under one name (Bio-Plex XML groups share a Description
    # so): its wells are not replicates of one another. Averaged, their signals gave one
    # number at one dilution that was neither (here ~4,000 for a true 8,000 pg/mL).
    df = plate(samples=[("donor1", 2000.0, 1), ("donor1", 500.0, 4)])
    got = calibrate(df).samples.query("sample_id == 'donor1'").sort_values("dilution_factor")
    assert list(got["dilution_factor"]) == [1.0, 4.0]
    np.testing.assert_allclose(got["concentration"], [2000.0, 2000.0], rtol=1e-5)
    assert list(got["n_replicates"]) == [2, 2]


def test_two_control_levels_under_one_name_stay_two_levels():
    df = _control(_control(plate(), expected=200.0, measured=200.0, name="C1"),
                  expected=3000.0, measured=3000.0, name="C2")  # fmt: skip
    df.loc[df["sample_type"] == "control", "sample_id"] = "Kit control"
    ctl = calibrate(df).samples.query("sample_type == 'control'")
    np.testing.assert_allclose(sorted(ctl["concentration"]), [200.0, 3000.0], rtol=1e-5)
