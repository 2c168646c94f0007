"""Laboratory items: units against known equivalences, and the ways in (CSV, SDTM LB, FHIR,
a quantified plate). Issue 17, item 1."""

from __future__ import annotations

import pandas as pd
import pytest

from cytosafe.clinical import grade
from cytosafe.clinical.labs import (
    convert,
    from_quantification,
    labs_from_fhir,
    labs_from_sdtm_lb,
    loinc_codes,
)
from cytosafe.errors import InputError
from cytosafe.schema.observations import LAB_ITEMS, validate_observations

T0 = "2024-03-01T08:00:00"


def _obs(rows):
    return pd.DataFrame(rows, columns=["patient_id", "time", "item", "value", "unit"])


# --- units against known equivalences -----------------------------------------------------


@pytest.mark.parametrize(
    ("item", "value", "unit", "canonical"),
    [
        # CRP: 1 mg/dL = 10 mg/L (SI prefixes; Pennisi 2021 takes CRP in mg/dL)
        ("crp", 5.0, "mg/dL", 50.0),
        ("crp", 50.0, "mg/L", 50.0),
        # ferritin: 1 ng/mL = 1 ug/L (Mayo FERR1 reports mcg/L, Labcorp ng/mL)
        ("ferritin", 1200.0, "ug/L", 1200.0),
        ("ferritin", 1200.0, "µg/L", 1200.0),
        # LDH: U/L x 0.0167 = ukat/L (Boulder Community Health LAB96), so 1 ukat/L = 60 U/L
        ("ldh", 4.0, "ukat/L", 240.0),
        # platelets: 10^3/uL = 10^9/L; 150,000/uL = 150 x 10^9/L
        ("platelets", 150.0, "10^3/uL", 150.0),
        ("platelets", 150000.0, "/uL", 150.0),
        ("platelets", 150.0, "K/uL", 150.0),
        # creatinine: mg/dL x 88.4 = umol/L (UCSF laboratory manual)
        ("creatinine", 88.4, "umol/L", 1.0),
        # fibrinogen: 300 mg/dL = 3 g/L
        ("fibrinogen", 300.0, "mg/dL", 3.0),
        # D-dimer: 500 ng/mL FEU = 0.5 ug/mL FEU (Mayo DDITT / CentraCare DIRM)
        ("d_dimer", 500.0, "ng/mL FEU", 0.5),
        # cytokines: 1 ng/mL = 1000 pg/mL, 1 ng/L = 1 pg/mL
        ("il6", 1.5, "ng/mL", 1500.0),
        ("mcp1", 800.0, "ng/L", 800.0),
        # sgp130 is held in ng/mL (serum levels are hundreds of ng/mL)
        ("sgp130", 250000.0, "pg/mL", 250.0),
    ],
)
def test_lab_units_convert_to_the_canonical_unit_on_validation(item, value, unit, canonical):
    obs = validate_observations(
        _obs([["P1", T0, "infusion", "X", ""], ["P1", T0, item, str(value), unit]])
    )
    row = obs.table.loc[obs.table["item"] == item].iloc[0]
    assert row["value_num"] == pytest.approx(canonical, rel=1e-3)


def test_convert_creatinine_both_ways():
    # 1 mg/dL creatinine = 88.40 umol/L (molar mass 113.12 g/mol; UCSF: x 88.4)
    assert convert(1.0, "creatinine", "mg/dL", "umol/L") == pytest.approx(88.40, abs=0.01)
    assert convert(88.4, "creatinine", "umol/L", "mg/dL") == pytest.approx(1.0, abs=1e-3)
    assert convert(2.0, "crp", "mg/dL", "mg/L") == pytest.approx(20.0)
    assert convert(20.0, "crp", "mg/L", "mg/dL") == pytest.approx(2.0)


def test_d_dimer_without_feu_is_refused_not_guessed():
    with pytest.raises(InputError, match="not a unit of d_dimer") as err:
        validate_observations(
            _obs([["P1", T0, "infusion", "X", ""], ["P1", T0, "d_dimer", "250", "ng/mL"]])
        )
    assert err.value.field == "unit"


def test_negative_laboratory_value_is_impossible():
    with pytest.raises(InputError, match="impossible crp"):
        validate_observations(
            _obs([["P1", T0, "infusion", "X", ""], ["P1", T0, "crp", "-3", "mg/L"]])
        )


def test_convert_refuses_a_unit_of_another_item():
    with pytest.raises(InputError, match="not a unit of crp"):
        convert(1.0, "crp", "U/L", "mg/L")


def test_every_lab_item_is_in_the_vocabulary_with_loinc_where_confirmed():
    assert set(LAB_ITEMS) == {
        "il6", "crp", "ferritin", "ldh", "platelets", "creatinine", "ifng", "mcp1",
        "sgp130", "il1ra", "fibrinogen", "d_dimer",
    }  # fmt: skip
    codes = loinc_codes()
    # each read in a laboratory catalogue cited in data/laboratory_items.toml
    assert codes["26881-3"] == "il6"
    assert codes["1988-5"] == "crp"
    assert codes["2276-4"] == "ferritin"
    assert codes["14804-9"] == "ldh"
    assert codes["777-3"] == "platelets"
    assert codes["2160-0"] == "creatinine"
    assert codes["3255-7"] == "fibrinogen"
    assert codes["48065-7"] == "d_dimer"
    assert "sgp130" not in codes.values()  # no code confirmed: none invented


def test_laboratory_rows_do_not_change_grading():
    vitals = [
        ["P1", T0, "infusion", "X", ""],
        ["P1", "2024-03-02T08:00:00", "temperature", "38.6", "C"],
        ["P1", "2024-03-02T12:00:00", "systolic_bp", "84", "mmHg"],
        ["P1", "2024-03-03T08:00:00", "temperature", "37.0", "C"],
    ]
    labs = [
        ["P1", "2024-03-02T10:00:00", "crp", "120", "mg/L"],
        ["P1", "2024-03-02T10:00:00", "il6", "800", "pg/mL"],
        ["P1", "2024-03-04T10:00:00", "ferritin", "5000", "ng/mL"],
    ]
    a = grade(_obs(vitals))
    b = grade(_obs(vitals + labs))
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    pd.testing.assert_frame_equal(a.patients, b.patients)


# --- SDTM LB ---------------------------------------------------------------------------------


def _lb():
    return pd.DataFrame(
        {
            "USUBJID": ["S-1", "S-1", "S-1", "S-1", "S-1"],
            "LBTESTCD": ["CRP", "LDH", "PLAT", "ALT", "FERRITIN"],
            "LBDTC": ["2024-03-02T06:00"] * 5,
            "LBSTRESN": [8.0, 300.0, 95.0, 40.0, float("nan")],
            "LBSTRESU": ["mg/dL", "U/L", "10^9/L", "U/L", "ng/mL"],
            "LBSTAT": ["", "", "", "", "NOT DONE"],
        }
    )


def test_sdtm_lb_rows_map_to_lab_items():
    got = labs_from_sdtm_lb(_lb(), source="lb.xpt")
    o = got.observations
    assert list(o["item"]) == ["crp", "ldh", "platelets"]
    assert list(o["source_row"]) == [1, 2, 3]
    assert set(got.skipped["source_row"]) == {4, 5}
    obs = validate_observations(o)
    crp = obs.table.loc[obs.table["item"] == "crp", "value_num"].iat[0]
    assert crp == pytest.approx(80.0)  # 8 mg/dL


def test_sdtm_lb_through_a_real_xpt_file(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    path = tmp_path / "lb.xpt"
    pyreadstat.write_xport(_lb().drop(columns="LBSTAT"), str(path), table_name="LB")
    frame, _ = pyreadstat.read_xport(str(path))
    got = labs_from_sdtm_lb(frame, source=str(path))
    # without LBSTAT the ferritin row is read (its empty value is the validator's to refuse)
    assert list(got.observations["item"]) == ["crp", "ldh", "platelets", "ferritin"]
    assert list(got.observations["value"][:3]) == ["8", "300", "95"]
    assert list(got.skipped["source_row"]) == [4]  # ALT


def test_sdtm_lb_without_a_time_variable_is_an_error_naming_the_file():
    with pytest.raises(InputError, match="LBDTC") as err:
        labs_from_sdtm_lb(_lb().drop(columns="LBDTC"), source="lb.xpt")
    assert err.value.file == "lb.xpt"


# --- FHIR --------------------------------------------------------------------------------


def _lab(n, code, value, unit, system="http://loinc.org", category="laboratory", status="final"):
    return {
        "resource": {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": status,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": category,
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": "Patient/P9"},
            "effectiveDateTime": "2024-03-02T06:00:00Z",
            "valueQuantity": {"value": value, "unit": unit, "code": unit},
        }
    }


def test_fhir_laboratory_observations_by_loinc_and_local_code():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            _lab(1, "1988-5", 12.5, "mg/L"),
            _lab(2, "26881-3", 350, "pg/mL"),
            _lab(
                3,
                "mcp1",
                1600,
                "pg/mL",
                system="https://cytosafe.org/fhir/CodeSystem/observation-item",
            ),
            _lab(4, "8310-5", 38.5, "Cel", category="vital-signs"),  # the vitals reader's
            _lab(5, "2345-7", 5.5, "mmol/L"),  # glucose: not read
            _lab(6, "1988-5", 99, "mg/L", status="entered-in-error"),
        ],
    }
    got = labs_from_fhir(bundle, source="b.json")
    o = got.observations
    assert list(o["item"]) == ["crp", "il6", "mcp1"]
    assert list(o["patient_id"].unique()) == ["P9"]
    assert list(o["source_row"]) == [1, 2, 3]
    assert set(got.skipped["source_row"]) == {5, 6}
    validate_observations(o)


# --- the plate-to-patient link ------------------------------------------------------------


def _samples():
    # the columns of cytosafe quantify's samples.csv (cytosafe.curves.calibration)
    return pd.DataFrame(
        {
            "study_id": ["S"] * 6,
            "plate_id": ["PL1"] * 6,
            "analyte": ["IL-6", "MCP-1", "IFN-γ", "TNF-α", "IL-6", "IL-6"],
            "sample_type": ["sample", "sample", "sample", "sample", "sample", "standard"],
            "sample_id": ["SER-01", "SER-01", "SER-01", "SER-01", "SER-02", "STD1"],
            "concentration": [120.0, 2100.0, float("nan"), 15.0, 45.5, 1000.0],
            "concentration_unit": ["pg/mL"] * 6,
            "flags": ["", "", "below_lloq", "", "", ""],
        }
    )


def test_from_quantification_attaches_plate_values_to_patients():
    smap = pd.DataFrame(
        {
            "sample_id": ["SER-01", "SER-02"],
            "patient_id": ["P1", "P1"],
            "time": ["2024-03-02T06:00:00", "2024-03-03T06:00:00"],
        }
    )
    got = from_quantification(_samples(), smap)
    o = got.observations
    assert list(zip(o["item"], o["value"], o["time"], strict=True)) == [
        ("il6", "120", "2024-03-02T06:00:00"),
        ("mcp1", "2100", "2024-03-02T06:00:00"),
        ("il6", "45.5", "2024-03-03T06:00:00"),
    ]
    reasons = " | ".join(got.skipped["reason"])
    assert "below_lloq" in reasons  # out of the curve's range: not a value
    assert "TNF" in reasons  # not a laboratory item
    assert "STD1" in reasons  # a standard is no patient
    obs = validate_observations(
        pd.concat([_obs([["P1", T0, "infusion", "X", ""]]), o], ignore_index=True)
    )
    assert (obs.table["item"] == "il6").sum() == 2


def test_from_quantification_refuses_a_mapped_sample_not_on_the_plate():
    smap = pd.DataFrame({"sample_id": ["SER-09"], "patient_id": ["P1"], "time": [T0]})
    with pytest.raises(InputError, match="SER-09") as err:
        from_quantification(_samples(), smap)
    assert err.value.row == 2 and err.value.field == "sample_id"


def test_from_quantification_refuses_a_map_row_without_time():
    smap = pd.DataFrame({"sample_id": ["SER-01"], "patient_id": ["P1"], "time": [""]})
    with pytest.raises(InputError, match="no time") as err:
        from_quantification(_samples(), smap)
    assert err.value.field == "time"
