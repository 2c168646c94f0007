"""Laboratory results reach the predictors from SDTM LB (``lb.xpt``) and from a FHIR
Bundle's laboratory Observations (issue 17, items 1 and 5): ``cytosafe grade`` and
``cytosafe predict`` read them through :func:`cytosafe.clinical.labs.labs_from_sdtm_lb` and
:func:`cytosafe.clinical.labs.labs_from_fhir`. Fixtures are the SDTM domains of
test_io_sdtm.py and the FHIR entries of test_io_fhir.py, with small hand-built LB and
laboratory Observations added.

Hay et al. (Blood 2017;130:2295), as held in ``data/crs_predictors.toml``: temperature
>= 38.9 C and MCP-1 >= 1343.5 pg/mL within 36 h of the infusion."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cytosafe.cli import app
from cytosafe.clinical.predict import predict
from cytosafe.errors import InputError
from cytosafe.workflows.grading import read_clinical_input
from test_io_fhir import LOCAL_SYSTEM, entries, obs, write  # noqa: F401  (fixture)
from test_io_sdtm import STUDY, domains, vs_row, xpt  # noqa: F401  (fixture)

runner = CliRunner()
LAB = {"category": [{"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "laboratory"}]}]}  # fmt: skip


def lb_row(subj, seq, code, res, unit, dtc, stat=""):
    return {"USUBJID": subj, "LBSEQ": float(seq), "LBTESTCD": code, "LBTEST": code,
            "LBORRES": str(res), "LBORRESU": unit, "LBSTRESN": float(res), "LBSTRESU": unit,
            "LBDTC": dtc, "LBSTAT": stat}  # fmt: skip


@pytest.fixture
def sdtm_with_lb(domains):  # noqa: F811
    folder = domains["dm"].parent
    # patient 001: infused 2024-05-01T08:00; a fever of 39.2 C at 20 h, MCP-1 above the cut-off
    xpt(folder / "vs.xpt", "VS", [
        vs_row(f"{STUDY}-001", 1, "TEMP", 39.2, "C", "2024-05-02T04:00"),
        vs_row(f"{STUDY}-001", 2, "SYSBP", 112, "mmHg", "2024-05-02T04:00"),
        vs_row(f"{STUDY}-002", 1, "TEMP", 37.0, "C", "2024-05-04T12:00"),
    ])  # fmt: skip
    xpt(folder / "lb.xpt", "LB", [
        lb_row(f"{STUDY}-001", 1, "MCP1", 2100.0, "pg/mL", "2024-05-02T06:00"),
        lb_row(f"{STUDY}-001", 2, "CRP", 9.5, "mg/dL", "2024-05-02T06:00"),
        lb_row(f"{STUDY}-001", 3, "ALT", 40.0, "U/L", "2024-05-02T06:00"),
        lb_row(f"{STUDY}-002", 1, "MCP1", 500.0, "pg/mL", "2024-05-03T20:00"),
        lb_row(f"{STUDY}-002", 2, "IL6", 0.0, "pg/mL", "2024-05-03T20:00", stat="NOT DONE"),
    ])  # fmt: skip
    return folder


def test_sdtm_lb_results_join_the_observations_in_the_standard_unit(sdtm_with_lb):
    obs, kind, source = read_clinical_input(sdtm_with_lb, product="SIM-CEL")
    assert kind == "sdtm" and "lb.xpt" in source
    t = obs.table
    mcp = t[(t["item"] == "mcp1") & (t["patient_id"] == f"{STUDY}-001")]
    assert mcp["value_num"].tolist() == [2100.0]
    crp = t[t["item"] == "crp"]
    assert crp["value_num"].tolist() == pytest.approx([95.0])  # 9.5 mg/dL = 95 mg/L
    assert crp["source_file"].iat[0].endswith("lb.xpt") and crp["source_row"].iat[0] == 2
    assert "alt" not in set(t["item"]) and "il6" not in set(t["item"])


def test_hay_reads_mcp1_from_lb_on_both_sides_of_the_cutoff(sdtm_with_lb):
    obs, _, _ = read_clinical_input(sdtm_with_lb, product="SIM-CEL")
    calls = predict(obs, "hay2017").set_index("patient_id")["status"]
    # 001: 39.2 C and 2100 pg/mL within 36 h; 002: afebrile, 500 pg/mL below 1343.5
    assert calls.to_dict() == {f"{STUDY}-001": "positive", f"{STUDY}-002": "negative"}


def test_lb_subject_not_in_dm_is_an_input_error(sdtm_with_lb):
    xpt(
        sdtm_with_lb / "lb.xpt",
        "LB",
        [lb_row("NOBODY", 1, "MCP1", 1.0, "pg/mL", "2024-05-02T06:00")],
    )
    with pytest.raises(InputError) as err:
        read_clinical_input(sdtm_with_lb, product="SIM-CEL")
    assert err.value.file.endswith("lb.xpt") and err.value.row == 1
    assert err.value.field == "USUBJID"


def test_cytosafe_predict_reads_an_sdtm_folder(tmp_path, sdtm_with_lb):
    xpt(sdtm_with_lb / "ex.xpt", "EX", [
        {"USUBJID": f"{STUDY}-001", "EXSEQ": 1.0, "EXTRT": "SIM-CEL", "EXSTDTC": "2024-05-01T08:00"},
        {"USUBJID": f"{STUDY}-002", "EXSEQ": 1.0, "EXTRT": "SIM-CEL", "EXSTDTC": "2024-05-03T09:00"},
    ])  # fmt: skip
    out = tmp_path / "pred"
    res = runner.invoke(app, ["predict", str(sdtm_with_lb), "--out", str(out), "--no-outcomes"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(out / "predictions.csv").set_index("patient_id")
    assert pred.loc[f"{STUDY}-001", "status"] == "positive"
    assert "do not replace it" in res.output


def _lab(i, pid, when, code, value, unit, system="http://loinc.org"):
    entry = obs(i, pid, when, code, value, unit, system=system)
    entry["resource"].update(LAB)
    return entry


def test_fhir_laboratory_observations_reach_the_predictor(tmp_path, entries):  # noqa: F811
    # p1 infused 2024-05-01T08:00Z; 39.0 C at 26 h and MCP-1 1500 pg/mL at 30 h
    entries = [
        *entries,
        obs(20, "p1", "2024-05-02T10:00:00Z", "8310-5", 39.0, "Cel"),
        _lab(21, "p1", "2024-05-02T14:00:00Z", "mcp1", 1500, "pg/mL", system=LOCAL_SYSTEM),
        _lab(22, "p1", "2024-05-02T14:00:00Z", "1988-5", 12.0, "mg/L"),
    ]
    path = write(tmp_path, entries)
    observations, kind, _ = read_clinical_input(path, product="SIM-CEL")
    assert kind == "fhir"
    t = observations.table
    assert t.loc[t["item"] == "mcp1", "source_row"].tolist() == [12]
    assert t.loc[t["item"] == "crp", "value_num"].tolist() == [12.0]
    assert predict(observations, "hay2017")["status"].tolist() == ["positive"]
    # the same MCP-1 below the cut-off: negative, not "not evaluable"
    entries[-2] = _lab(21, "p1", "2024-05-02T14:00:00Z", "mcp1", 1300, "pg/mL", system=LOCAL_SYSTEM)
    observations, _, _ = read_clinical_input(write(tmp_path, entries), product="SIM-CEL")
    assert predict(observations, "hay2017")["status"].tolist() == ["negative"]


def test_cytosafe_grade_on_a_bundle_with_labs_grades_the_vital_signs_only(tmp_path, entries):  # noqa: F811
    entries = [*entries, _lab(21, "p1", "2024-05-02T14:00:00Z", "1988-5", 12.0, "mg/L")]
    out = tmp_path / "res"
    res = runner.invoke(
        app, ["grade", str(write(tmp_path, entries)), "--product", "SIM-CEL", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    timeline = pd.read_csv(out / "timeline.csv")
    # the blood draw at 14:00 adds no graded row of its own
    assert "2024-05-02T14:00:00+00:00" not in set(timeline["time"])
