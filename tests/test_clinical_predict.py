"""Published predictors of severe CRS on hand-built patients at their cut-offs, on both sides
and with missing inputs; the performance metrics on a known confusion table (issue 17,
items 2-3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from cytosafe.clinical import grade
from cytosafe.clinical.predict import (
    DISCLAIMER,
    PREDICTION_COLUMNS,
    _auc,
    performance,
    predict,
    predictor_spec,
    predictors,
)
from cytosafe.errors import InputError

DAY0 = pd.Timestamp("2024-05-01T08:00:00")


def _at(hours: float) -> str:
    return (DAY0 + pd.Timedelta(hours=hours)).isoformat()


def _patient(pid: str, rows: list[tuple[float, str, str, str]], infusion: bool = True):
    out = [(pid, _at(0), "infusion", "CD19-CAR-T", "")] if infusion else []
    out += [(pid, _at(h), item, value, unit) for h, item, value, unit in rows]
    return out


def _obs(*patients) -> pd.DataFrame:
    rows = [r for p in patients for r in p]
    return pd.DataFrame(rows, columns=["patient_id", "time", "item", "value", "unit"])


def _by_patient(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {r["patient_id"]: r for _, r in frame.iterrows()}


# --- the data file -------------------------------------------------------------------------


def test_every_predictor_cites_its_source_population_outcome_and_checking_status():
    for name, spec in predictors().items():
        for key in (
            "title",
            "version",
            "kind",
            "source",
            "population",
            "outcome",
            "status",
            "read",
        ):
            assert spec.get(key), f"{name} lacks {key}"
        assert spec["status"] in ("confirmed", "secondary", "unconfirmed")


def test_teachey_coefficients_are_not_typed_in():
    spec = predictor_spec("teachey2016")
    assert spec["status"] == "unconfirmed"
    assert spec["coefficients"] == "unconfirmed"


# --- Hay 2017: fever >= 38.9 C and MCP-1 >= 1343.5 pg/mL within 36 h ------------------------


def test_hay_at_its_cut_offs_on_both_sides():
    obs = _obs(
        # both exactly at the cut-offs: positive
        _patient("AT", [(20, "temperature", "38.9", "C"), (22, "mcp1", "1343.5", "pg/mL")]),
        # fever just below 38.9: negative whatever the MCP-1
        _patient("T-", [(20, "temperature", "38.8", "C"), (22, "mcp1", "9000", "pg/mL")]),
        # MCP-1 just below the cut-off: negative
        _patient("M-", [(20, "temperature", "39.4", "C"), (22, "mcp1", "1343.4", "pg/mL")]),
        # fever just after 36 h: outside the window, negative
        _patient(
            "LATE",
            [
                (36.5, "temperature", "40.0", "C"),
                (22, "mcp1", "5000", "pg/mL"),
                (10, "temperature", "37.2", "C"),
            ],
        ),
        # MCP-1 drawn in ng/mL: 1.3435 ng/mL = 1343.5 pg/mL
        _patient("NG", [(30, "temperature", "39.0", "C"), (35.9, "mcp1", "1.3435", "ng/mL")]),
    )
    got = _by_patient(predict(obs, "hay2017"))
    assert got["AT"]["status"] == "positive"
    assert got["AT"]["positive_hours"] == pytest.approx(22.0)  # when both were known
    assert got["T-"]["status"] == "negative"
    assert got["M-"]["status"] == "negative"
    assert got["LATE"]["status"] == "negative"
    assert got["NG"]["status"] == "positive"
    assert got["AT"]["rule_version"].startswith("hay2017 1")
    assert got["AT"]["rule_status"] == "secondary"


def test_hay_missing_inputs_are_not_evaluable_never_negative():
    obs = _obs(
        _patient("NO-MCP", [(20, "temperature", "39.5", "C")]),
        _patient("NO-TEMP", [(20, "mcp1", "200", "pg/mL")]),
        _patient("NO-INF", [(20, "temperature", "39.5", "C")], infusion=False),
    )
    got = _by_patient(predict(obs, "hay2017"))
    assert got["NO-MCP"]["status"] == "not evaluable"
    assert "mcp1" in got["NO-MCP"]["missing"]
    assert got["NO-TEMP"]["status"] == "not evaluable"
    assert "temperature" in got["NO-TEMP"]["missing"]
    assert got["NO-INF"]["status"] == "not evaluable"
    assert "infusion" in got["NO-INF"]["missing"]


def test_hay_at_the_bedside_before_the_window_closes():
    p = _patient(
        "P",
        [
            (10, "temperature", "37.5", "C"),
            (30, "temperature", "39.2", "C"),
            (32, "mcp1", "2000", "pg/mL"),
        ],
    )
    early = _by_patient(predict(_obs(p), "hay2017", at=12))["P"]
    assert early["status"] == "not evaluable"  # not negative: the window is open
    assert "window" in early["missing"]
    late = _by_patient(predict(_obs(p), "hay2017", at=33))["P"]
    assert late["status"] == "positive" and late["positive_hours"] == pytest.approx(32.0)


def test_hay_cut_off_may_be_supplied_and_says_so():
    p = _patient("P", [(20, "temperature", "39.0", "C"), (22, "mcp1", "1000", "pg/mL")])
    got = _by_patient(predict(_obs(p), "hay2017", cutoffs={"mcp1": 1000}))["P"]
    assert got["status"] == "positive"
    assert got["cutoff_source"] == "user-supplied cut-off"
    with pytest.raises(InputError, match="not a cut-off of hay2017"):
        predict(_obs(p), "hay2017", cutoffs={"m_easix": 3})


# --- Pennisi 2021: m-EASIX = LDH [U/L] x CRP [mg/dL] / platelets [10^9/L] ---------------------


def _easix_patient(pid, ldh="250", crp="50", plt="100", hours=24.0):
    rows = [
        (hours, "ldh", ldh, "U/L"),
        (hours, "crp", crp, "mg/L"),
        (hours, "platelets", plt, "10^9/L"),
    ]
    return _patient(pid, [r for r in rows if r[2] is not None])


def test_m_easix_score_as_the_abstract_defines_it():
    # 250 U/L x (50 mg/L = 5 mg/dL) / 100 x 10^9/L = 12.5
    got = _by_patient(predict(_obs(_easix_patient("P")), "pennisi2021", timepoint="day_plus1"))
    assert got["P"]["score"] == pytest.approx(12.5)
    # the paper's cut-offs were not read: a score, and no call
    assert got["P"]["status"] == "not evaluable"
    assert "cut-off" in got["P"]["missing"]


def test_m_easix_with_a_supplied_cut_off_on_both_sides():
    obs = _obs(
        _easix_patient("AT"),  # 12.5
        _easix_patient("BELOW", plt="101"),  # 12.376
        _easix_patient("ABOVE", crp="51"),  # 12.75
    )
    got = _by_patient(predict(obs, "pennisi2021", timepoint="day_plus1", cutoffs={"m_easix": 12.5}))
    assert got["AT"]["status"] == "positive"
    assert got["AT"]["positive_hours"] == pytest.approx(24.0)
    assert got["BELOW"]["status"] == "negative"
    assert got["ABOVE"]["status"] == "positive"


def test_m_easix_missing_input_or_time_point_is_not_evaluable():
    obs = _obs(
        _easix_patient("NO-CRP", crp=None),
        _easix_patient("WRONG-DAY", hours=72.0),  # a day +3 draw is not day +1
    )
    got = _by_patient(predict(obs, "pennisi2021", timepoint="day_plus1", cutoffs={"m_easix": 1}))
    assert got["NO-CRP"]["status"] == "not evaluable"
    assert "crp" in got["NO-CRP"]["missing"]
    assert got["WRONG-DAY"]["status"] == "not evaluable"
    day3 = _by_patient(predict(obs, "pennisi2021", timepoint="day_plus3", cutoffs={"m_easix": 1}))
    assert day3["WRONG-DAY"]["status"] == "positive"
    with pytest.raises(InputError, match="unknown time point"):
        predict(obs, "pennisi2021", timepoint="day_plus7")


def test_m_easix_before_lymphodepletion_reads_baseline_labs():
    p = _easix_patient("P", hours=-120.0)  # 5 days before infusion
    got = _by_patient(
        predict(_obs(p), "pennisi2021", timepoint="lymphodepletion", cutoffs={"m_easix": 10})
    )["P"]
    assert got["status"] == "positive" and got["score"] == pytest.approx(12.5)


# --- Teachey 2016: never evaluable -------------------------------------------------------------


def test_teachey_is_never_evaluable_even_with_every_cytokine():
    p = _patient(
        "P",
        [
            (24, "sgp130", "300", "ng/mL"),
            (24, "ifng", "80", "pg/mL"),
            (24, "il1ra", "9000", "pg/mL"),
        ],
    )
    got = _by_patient(predict(_obs(p), "teachey2016"))["P"]
    assert got["status"] == "not evaluable"
    assert "coefficients" in got["missing"]


def test_every_prediction_says_it_supports_judgement():
    out = predict(_obs(_easix_patient("P")), "hay2017")
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert (out["note"] == DISCLAIMER).all()
    assert "do not replace" in DISCLAIMER


def test_unknown_predictor_lists_the_known():
    with pytest.raises(InputError, match="unknown predictor") as err:
        predict(_obs(_easix_patient("P")), "nope")
    assert "hay2017" in err.value.expected


# --- metrics -----------------------------------------------------------------------------------


def _table(tp, fn, tn, fp):
    preds, grades = [], []
    for i, (status, grade_) in enumerate(
        [("positive", 4)] * tp
        + [("negative", 4)] * fn
        + [("negative", 1)] * tn
        + [("positive", 1)] * fp
        + [("not evaluable", 4)] * 2
    ):
        pid = f"P{i:03d}"
        preds.append(
            dict(
                patient_id=pid,
                predictor="hay2017",
                status=status,
                score=np.nan,
                positive_hours=np.nan,
            )
        )
        grades.append(dict(patient_id=pid, max_grade=grade_))
    return pd.DataFrame(preds), pd.DataFrame(grades)


def _cp(n, total):
    # exact Clopper-Pearson 95% bounds from the beta distribution (Clopper & Pearson 1934)
    lo = 0.0 if n == 0 else beta.ppf(0.025, n, total - n + 1)
    hi = 1.0 if n == total else beta.ppf(0.975, n + 1, total - n)
    return 100 * lo, 100 * hi


def test_metrics_on_a_known_confusion_table():
    preds, grades = _table(tp=8, fn=2, tn=15, fp=5)
    perf = performance(preds, grades)
    assert perf.confusion == dict(tp=8, fp=5, fn=2, tn=15, not_evaluable=2)
    m = perf.metrics.set_index("measure")
    for measure, n, total in (
        ("sensitivity", 8, 10),
        ("specificity", 15, 20),
        ("ppv", 8, 13),
        ("npv", 15, 17),
    ):
        assert m.loc[measure, "value"] == pytest.approx(100 * n / total)
        lo, hi = _cp(n, total)
        assert m.loc[measure, "ci_low"] == pytest.approx(lo, abs=1e-6)
        assert m.loc[measure, "ci_high"] == pytest.approx(hi, abs=1e-6)
    # 8/10: the exact interval 44.39-97.48 % of binomial tables
    assert m.loc["sensitivity", "ci_low"] == pytest.approx(44.39, abs=0.01)
    assert m.loc["sensitivity", "ci_high"] == pytest.approx(97.48, abs=0.01)
    # the AUC of a binary call is (sensitivity + specificity) / 2
    assert m.loc["auc", "value"] == pytest.approx((0.8 + 0.75) / 2)


def test_auc_of_scores_by_hand():
    # positives 0.9, 0.8, 0.6 against negatives 0.7, 0.5, 0.4, 0.3: 11 of 12 pairs ordered
    a, lo, hi = _auc(
        np.array([0.9, 0.8, 0.6, 0.7, 0.5, 0.4, 0.3]),
        np.array([True, True, True, False, False, False, False]),
    )
    assert a == pytest.approx(11 / 12)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + 2 * (q1 - a * a) + 3 * (q2 - a * a)) / 12)
    assert lo == pytest.approx(a - 1.959964 * se) and hi == 1.0


def test_lead_time_from_first_positive_call_to_first_grade_3():
    severe = _patient(
        "SEV",
        [
            (20, "temperature", "39.5", "C"),
            (24, "mcp1", "3000", "pg/mL"),
            (48, "temperature", "39.8", "C"),
            (50, "norepinephrine", "10", "ug/min"),
            (50, "oxygen_device", "bipap", ""),
        ],
    )
    mild = _patient("MILD", [(20, "temperature", "38.2", "C"), (30, "mcp1", "300", "pg/mL")])
    obs = _obs(severe, mild)
    graded = grade(obs)
    preds = predict(obs, "hay2017")
    perf = performance(preds, graded)
    rows = perf.patients.set_index("patient_id")
    assert rows.loc["SEV", "first_grade3_hours"] == pytest.approx(50.0)
    assert rows.loc["SEV", "lead_hours"] == pytest.approx(26.0)  # 50 h - 24 h
    assert np.isnan(rows.loc["MILD", "lead_hours"])
    lead = perf.metrics.set_index("measure").loc["lead_time_hours"]
    assert lead["value"] == pytest.approx(26.0)
    assert (perf.metrics["note"] == DISCLAIMER).all()


# --- the command line ------------------------------------------------------------------------


def test_cli_predict_writes_predictions_performance_and_the_disclaimer(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    severe = _patient(
        "SEV",
        [
            (20, "temperature", "39.5", "C"),
            (24, "mcp1", "3000", "pg/mL"),
            (50, "norepinephrine", "10", "ug/min"),
            (50, "oxygen_device", "bipap", ""),
        ],
    )
    mild = _patient("MILD", [(20, "temperature", "38.2", "C"), (30, "mcp1", "300", "pg/mL")])
    vitals = _obs(severe, mild)
    labs = vitals[vitals["item"] == "mcp1"]
    vitals = vitals[vitals["item"] != "mcp1"]
    vitals.to_csv(tmp_path / "vitals.csv", index=False)
    labs.to_csv(tmp_path / "labs.csv", index=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "vitals.csv"),
            str(tmp_path / "labs.csv"),
            "--predictor",
            "hay2017",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "do not replace" in res.output
    preds = pd.read_csv(out / "predictions.csv").set_index("patient_id")
    assert preds.loc["SEV", "status"] == "positive"
    assert preds.loc["MILD", "status"] == "negative"
    assert (preds["note"] == DISCLAIMER).all()
    perf = pd.read_csv(out / "performance.csv").set_index("measure")
    assert perf.loc["sensitivity", "n"] == 1 and perf.loc["sensitivity", "N"] == 1
    assert "disclaimer" in (out / "settings.json").read_text()


def test_cli_predict_bad_cut_off_is_one_line_error(tmp_path):
    from typer.testing import CliRunner

    from cytosafe.cli import app

    _obs(_easix_patient("P")).to_csv(tmp_path / "o.csv", index=False)
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "o.csv"),
            "-p",
            "pennisi2021",
            "--cutoff",
            "m_easix=abc",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 2
    assert "not a number" in res.output
    assert not (tmp_path / "out").exists()


def test_m_easix_auc_needs_no_cut_off():
    # scores 12.5 (severe), 2.5 and 5.0 (not severe): every severe above every other
    obs = _obs(
        _easix_patient("S", ldh="250"),
        _easix_patient("A", ldh="50"),
        _easix_patient("B", ldh="100"),
    )
    preds = predict(obs, "pennisi2021", timepoint="day_plus1")
    assert (preds["status"] == "not evaluable").all()  # no confirmed cut-off
    grades = pd.DataFrame({"patient_id": ["S", "A", "B"], "max_grade": [3, 1, 0]})
    m = performance(preds, grades).metrics.set_index("measure")
    assert m.loc["auc", "value"] == pytest.approx(1.0)
    assert m.loc["auc", "n"] == 3
    assert m.loc["sensitivity", "N"] == 0  # no call, no sensitivity


# --- the simulated cohort's laboratory values ---------------------------------------------------


def test_simulated_labs_regenerate_byte_for_byte_and_leave_the_vitals_unchanged(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, str(root / "examples" / "generate_crs_cohort.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    cohort = root / "examples" / "crs-cohort"
    for name in ("observations.csv", "labs.csv", "README.md"):
        assert (tmp_path / name).read_bytes() == (cohort / name).read_bytes()
    assert "simulated" in (cohort / "README.md").read_text().lower()
    labs = pd.read_csv(cohort / "labs.csv")
    assert set(labs["item"]) == {
        "ldh",
        "crp",
        "platelets",
        "ferritin",
        "creatinine",
        "il6",
        "mcp1",
        "ifng",
    }
