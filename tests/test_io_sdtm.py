"""CDISC SDTM (.xpt) domains onto the observation table, with fixtures laid out as real
SDTM domains (written with pyreadstat.write_xport, SAS transport version 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from cytosafe.clinical import grade
from cytosafe.errors import InputError
from cytosafe.io.sdtm import read_sdtm

STUDY = "CYTO-001"


def xpt(path: Path, domain: str, rows: list[dict]) -> Path:
    df = pd.DataFrame(rows)
    df.insert(0, "DOMAIN", domain)
    df.insert(0, "STUDYID", STUDY)
    pyreadstat.write_xport(df, str(path), table_name=domain, file_format_version=5)
    return path


def vs_row(subj, seq, code, res, unit, dtc, test=""):
    return {"USUBJID": subj, "VSSEQ": float(seq), "VSTESTCD": code, "VSTEST": test or code,
            "VSORRES": str(res), "VSORRESU": unit, "VSSTRESC": str(res), "VSSTRESN": float(res),
            "VSSTRESU": unit, "VSDTC": dtc}  # fmt: skip


@pytest.fixture
def domains(tmp_path):
    d = {}
    d["dm"] = xpt(tmp_path / "dm.xpt", "DM", [
        {"USUBJID": f"{STUDY}-001", "SUBJID": "001", "RFXSTDTC": "2024-05-01T08:00", "DTHFL": "", "DTHDTC": "", "AGE": 61.0, "SEX": "F"},
        {"USUBJID": f"{STUDY}-002", "SUBJID": "002", "RFXSTDTC": "2024-05-03T09:00", "DTHFL": "Y", "DTHDTC": "2024-05-06T03:00", "AGE": 70.0, "SEX": "M"},
    ])  # fmt: skip
    d["ex"] = xpt(tmp_path / "ex.xpt", "EX", [
        {"USUBJID": f"{STUDY}-001", "EXSEQ": 1.0, "EXTRT": "FLUDARABINE", "EXDOSE": 30.0, "EXDOSU": "mg/m2", "EXSTDTC": "2024-04-26T09:00"},
        {"USUBJID": f"{STUDY}-001", "EXSEQ": 2.0, "EXTRT": "SIM-CEL", "EXDOSE": 2.0, "EXDOSU": "10^6 cells/kg", "EXSTDTC": "2024-05-01T08:00"},
        {"USUBJID": f"{STUDY}-002", "EXSEQ": 1.0, "EXTRT": "SIM-CEL", "EXDOSE": 2.0, "EXDOSU": "10^6 cells/kg", "EXSTDTC": "2024-05-03T09:00"},
    ])  # fmt: skip
    d["vs"] = xpt(tmp_path / "vs.xpt", "VS", [
        vs_row(f"{STUDY}-001", 1, "TEMP", 38.3, "C", "2024-05-02T06:00", "Temperature"),
        vs_row(f"{STUDY}-001", 2, "SYSBP", 112, "mmHg", "2024-05-02T06:00", "Systolic Blood Pressure"),
        vs_row(f"{STUDY}-001", 3, "PULSE", 110, "beats/min", "2024-05-02T06:00", "Pulse Rate"),
        vs_row(f"{STUDY}-001", 4, "OXYSAT", 93, "%", "2024-05-02T10:00", "Oxygen Saturation"),
        vs_row(f"{STUDY}-002", 1, "WEIGHT", 80, "kg", "2024-05-03T08:00", "Weight"),
        vs_row(f"{STUDY}-002", 2, "TEMP", 102.0, "F", "2024-05-04T12:00", "Temperature"),
    ])  # fmt: skip
    d["cm"] = xpt(tmp_path / "cm.xpt", "CM", [
        {"USUBJID": f"{STUDY}-001", "CMSEQ": 1.0, "CMTRT": "ACTEMRA", "CMDECOD": "TOCILIZUMAB", "CMDOSE": 8.0, "CMDOSU": "mg/kg", "CMSTDTC": "2024-05-02T11:00", "CMENDTC": "2024-05-02T12:00"},
        {"USUBJID": f"{STUDY}-002", "CMSEQ": 1.0, "CMTRT": "LEVOPHED", "CMDECOD": "NOREPINEPHRINE", "CMDOSE": 0.1, "CMDOSU": "ug/kg/min", "CMSTDTC": "2024-05-04T14:00", "CMENDTC": "2024-05-05T14:00"},
        {"USUBJID": f"{STUDY}-002", "CMSEQ": 2.0, "CMTRT": "VASOPRESSIN", "CMDECOD": "VASOPRESSIN", "CMDOSE": 0.03, "CMDOSU": "U/min", "CMSTDTC": "2024-05-04T15:00", "CMENDTC": ""},
        {"USUBJID": f"{STUDY}-002", "CMSEQ": 3.0, "CMTRT": "ACICLOVIR", "CMDECOD": "ACICLOVIR", "CMDOSE": 400.0, "CMDOSU": "mg", "CMSTDTC": "2024-05-03T08:00", "CMENDTC": ""},
    ])  # fmt: skip
    d["pr"] = xpt(tmp_path / "pr.xpt", "PR", [
        {"USUBJID": f"{STUDY}-001", "PRSEQ": 1.0, "PRTRT": "OXYGEN VIA NASAL PRONGS", "PRDECOD": "NASAL CANNULA", "PRDOSE": 7.0, "PRDOSU": "L/min", "PRSTDTC": "2024-05-02T10:00", "PRENDTC": "2024-05-03T10:00"},
        {"USUBJID": f"{STUDY}-002", "PRSEQ": 1.0, "PRTRT": "NIV", "PRDECOD": "BIPAP", "PRDOSE": np.nan, "PRDOSU": "", "PRSTDTC": "2024-05-05T01:00", "PRENDTC": ""},
    ])  # fmt: skip
    d["ae"] = xpt(tmp_path / "ae.xpt", "AE", [
        {"USUBJID": f"{STUDY}-001", "AESEQ": 1.0, "AETERM": "CRS", "AEDECOD": "Cytokine release syndrome", "AETOXGR": "3", "AEOUT": "RECOVERED/RESOLVED", "AESTDTC": "2024-05-02T06:00", "AEENDTC": "2024-05-04T06:00"},
        {"USUBJID": f"{STUDY}-002", "AESEQ": 1.0, "AETERM": "CYTOKINE RELEASE SYNDROME", "AEDECOD": "Cytokine release syndrome", "AETOXGR": "5", "AEOUT": "FATAL", "AESTDTC": "2024-05-04T12:00", "AEENDTC": "2024-05-06T03:00"},
    ])  # fmt: skip
    return d


def test_domains_map_onto_observations_and_grade(domains):
    data = read_sdtm(**domains, product="SIM-CEL")
    t = data.observations.table
    p1 = t[t["patient_id"] == f"{STUDY}-001"]
    assert p1.loc[p1["item"] == "infusion", "time"].iat[0] == pd.Timestamp("2024-05-01T08:00")
    assert set(p1["item"]) == {"infusion", "temperature", "systolic_bp", "spo2", "tocilizumab",
                               "oxygen_device", "oxygen_flow"}  # fmt: skip
    p2 = t[t["patient_id"] == f"{STUDY}-002"]
    temp = p2.loc[p2["item"] == "temperature", "value_num"].iat[0]
    assert temp == pytest.approx((102 - 32) * 5 / 9)
    ne = p2[p2["item"] == "norepinephrine"]["value_num"].tolist()
    assert ne == pytest.approx([8.0, 0.0])  # 0.1 ug/kg/min x 80 kg (VS WEIGHT), stopped at CMENDTC
    assert "death" in set(p2["item"])
    reasons = " ".join(data.skipped["reason"])
    assert "PULSE" in reasons and "ACICLOVIR" in reasons
    assert data.reported_grades["reported_grade"].tolist() == [3, 5]

    res = grade(data.observations)
    pts = res.patients.set_index("patient_id")
    # 001: fever 38.3 C, nasal cannula 7 L/min (> 6 L/min: high flow) -> ASTCT grade 3.
    assert pts.loc[f"{STUDY}-001", "max_grade"] == 3
    assert pts.loc[f"{STUDY}-001", "onset_hours"] == 22
    # 002: fatal CRS -> grade 5.
    assert pts.loc[f"{STUDY}-002", "max_grade"] == 5


def test_several_ex_treatments_need_the_product(domains):
    with pytest.raises(InputError, match="several treatments") as exc:
        read_sdtm(**domains)
    assert exc.value.field == "EXTRT"


def test_duplicate_subject_in_dm(tmp_path, domains):
    dm = xpt(tmp_path / "dm2.xpt", "DM", [{"USUBJID": "X-1"}, {"USUBJID": "X-1"}])
    with pytest.raises(InputError, match="duplicate subject") as exc:
        read_sdtm(dm, domains["vs"])
    assert (exc.value.file, exc.value.row, exc.value.field) == (str(dm), 2, "USUBJID")


def test_bad_vs_value_names_the_sdtm_variable(tmp_path, domains):
    vs = xpt(tmp_path / "vs2.xpt", "VS", [
        vs_row(f"{STUDY}-001", 1, "TEMP", 38.3, "C", "2024-05-02T06:00"),
        vs_row(f"{STUDY}-001", 2, "OXYSAT", 140, "%", "2024-05-02T07:00"),
    ])  # fmt: skip
    with pytest.raises(InputError, match="impossible spo2") as exc:
        read_sdtm(domains["dm"], vs)
    assert (exc.value.file, exc.value.row, exc.value.field) == (str(vs), 2, "VSSTRESN")


def test_unit_mismatch_names_the_unit_variable(tmp_path, domains):
    vs = xpt(
        tmp_path / "vs3.xpt",
        "VS",
        [vs_row(f"{STUDY}-001", 1, "SYSBP", 12, "kPa", "2024-05-02T06:00")],
    )
    with pytest.raises(InputError, match="not a unit of systolic_bp") as exc:
        read_sdtm(domains["dm"], vs)
    assert (exc.value.row, exc.value.field) == (1, "VSSTRESU")


def test_date_without_time_and_unknown_subject(tmp_path, domains):
    vs = xpt(
        tmp_path / "vs4.xpt", "VS", [vs_row(f"{STUDY}-001", 1, "TEMP", 38.3, "C", "2024-05-02")]
    )
    with pytest.raises(InputError, match="no time of day") as exc:
        read_sdtm(domains["dm"], vs)
    assert exc.value.field == "VSDTC"
    vs = xpt(
        tmp_path / "vs5.xpt", "VS", [vs_row("NOBODY", 1, "TEMP", 38.3, "C", "2024-05-02T06:00")]
    )
    with pytest.raises(InputError, match="not in DM"):
        read_sdtm(domains["dm"], vs)
