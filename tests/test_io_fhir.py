"""FHIR R4 Bundles (LOINC-coded Observations, MedicationAdministrations) onto the observation table."""

from __future__ import annotations

import json

import pytest

from cytosafe.clinical import grade
from cytosafe.errors import InputError
from cytosafe.io.fhir import LOCAL_SYSTEM, read_fhir

LOINC = "http://loinc.org"


def obs(i, pid, when, code, value=None, unit=None, system=LOINC, **extra):
    res = {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
    }
    if value is not None:
        res["valueQuantity"] = {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    res.update(extra)
    return {"fullUrl": f"urn:uuid:o{i}", "resource": res}


def med(i, pid, name, *, when=None, period=None, rate=None, dose=None, status="completed"):
    res = {
        "resourceType": "MedicationAdministration",
        "id": f"m{i}",
        "status": status,
        "medicationCodeableConcept": {"text": name},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if period:
        res["effectivePeriod"] = period
    else:
        res["effectiveDateTime"] = when
    if rate:
        res["dosage"] = {
            "rateQuantity": {
                "value": rate[0],
                "unit": rate[1],
                "system": "http://unitsofmeasure.org",
                "code": rate[1],
            }
        }
    if dose:
        res["dosage"] = {
            "dose": {
                "value": dose[0],
                "unit": dose[1],
                "system": "http://unitsofmeasure.org",
                "code": dose[1],
            }
        }
    return {"fullUrl": f"urn:uuid:m{i}", "resource": res}


def bundle(entries):
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write(tmp_path, entries, name="bundle.json"):
    path = tmp_path / name
    path.write_text(json.dumps(bundle(entries)))
    return path


@pytest.fixture
def entries():
    return [
        med(1, "p1", "SIM-CEL", when="2024-05-01T08:00:00Z"),
        obs(2, "p1", "2024-05-02T08:00:00Z", "8310-5", 38.1, "Cel"),
        obs(
            3,
            "p1",
            "2024-05-02T08:00:00Z",
            "85354-9",
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": 84, "unit": "mm[Hg]", "code": "mm[Hg]"},
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {"value": 50, "unit": "mm[Hg]", "code": "mm[Hg]"},
                },
            ],
        ),
        obs(4, "p1", "2024-05-02T09:00:00Z", "59408-5", 91, "%"),
        obs(
            5,
            "p1",
            "2024-05-02T09:00:00Z",
            "oxygen_device",
            system=LOCAL_SYSTEM,
            valueCodeableConcept={"coding": [{"system": LOCAL_SYSTEM, "code": "nasal_cannula"}]},
        ),
        obs(6, "p1", "2024-05-02T09:00:00Z", "3151-8", 6, "L/min"),
        med(7, "p1", "Tocilizumab", when="2024-05-02T10:00:00Z", dose=(8, "mg/kg")),
        med(
            8,
            "p1",
            "Norepinephrine",
            period={"start": "2024-05-02T12:00:00+02:00", "end": "2024-05-02T20:00:00Z"},
            rate=(5, "ug/min"),
        ),
        obs(9, "p1", "2024-05-02T13:00:00Z", "8867-4", 120, "/min"),
        med(
            10,
            "p1",
            "Norepinephrine",
            when="2024-05-02T11:00:00Z",
            rate=(50, "ug/min"),
            status="entered-in-error",
        ),
    ]


def test_bundle_maps_onto_observations_and_grades(tmp_path, entries):
    data = read_fhir(write(tmp_path, entries), product="SIM-CEL")
    t = data.observations.table
    assert sorted(set(t["item"])) == ["infusion", "norepinephrine", "oxygen_device", "oxygen_flow",
                                      "spo2", "systolic_bp", "temperature", "tocilizumab"]  # fmt: skip
    ne = t[t["item"] == "norepinephrine"]
    assert ne["value_num"].tolist() == [5.0, 0.0]
    assert str(ne["time"].iat[0]) == "2024-05-02 10:00:00"  # +02:00 converted to UTC
    reasons = " ".join(data.skipped["reason"])
    assert "not used for grading" in reasons and "entered-in-error" in reasons
    tl = grade(data.observations).timeline.set_index("hours")
    # 24 h: fever 38.1 C with SBP 84 (hypotension, no vasopressor) -> 2; 25 h: 6 L/min low flow -> 2;
    # 26 h tocilizumab; 26 h NE 5 ug/min -> 3 (a vasopressor); 36 h NE stopped -> fever still charted -> 2.
    assert tl.loc[24.0, "grade"] == 2 and tl.loc[25.0, "grade"] == 2
    assert tl.loc[26.0, "grade"] == 3
    assert tl.loc[36.0, "grade"] == 2


def test_invalid_resource_names_entry_and_element(tmp_path, entries):
    entries[1]["resource"]["valueQuantity"]["value"] = "thirty-eight"
    with pytest.raises(InputError, match="invalid FHIR R4 resource") as exc:
        read_fhir(write(tmp_path, entries))
    assert exc.value.row == 2
    assert "valueQuantity" in exc.value.field


def test_wrong_unit_names_the_fhir_element(tmp_path, entries):
    entries[1] = obs(2, "p1", "2024-05-02T08:00:00Z", "8310-5", 38.1, "K")
    with pytest.raises(InputError, match="not a unit of temperature") as exc:
        read_fhir(write(tmp_path, entries), product="SIM-CEL")
    assert (exc.value.row, exc.value.field) == (2, "Observation.valueQuantity.code")


def test_impossible_value_quarantined_with_reason(tmp_path, entries):
    entries[3] = obs(4, "p1", "2024-05-02T09:00:00Z", "59408-5", 140, "%")
    data = read_fhir(write(tmp_path, entries), product="SIM-CEL", errors="quarantine")
    assert data.skipped["reason"].str.contains("impossible spo2").any()
    assert "spo2" not in set(data.observations.table["item"])


def test_not_a_bundle(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "p1"}))
    with pytest.raises(InputError, match="not a FHIR Bundle"):
        read_fhir(path)


def test_decimal_values_keep_their_digits(tmp_path):
    entries = [
        obs(1, "p1", "2024-05-02T09:00:00Z", "59408-5", 100, "%"),
        obs(2, "p1", "2024-05-02T09:00:00Z", "8310-5", 38.10, "Cel"),
        obs(3, "p1", "2024-05-02T09:00:00Z", "8480-6", 120.0, "mm[Hg]"),
    ]
    t = read_fhir(write(tmp_path, entries)).observations.table.set_index("item")
    assert t.loc["spo2", "value_num"] == 100 and t.loc["temperature", "value_num"] == 38.1
    assert t.loc["systolic_bp", "value_num"] == 120


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_utf16_and_bom_bundles_are_read(tmp_path, entries, encoding):
    """Issue 14, defect 4: UTF-16 and UTF-8 with a byte-order mark are read, not refused."""
    plain = read_fhir(write(tmp_path, entries), product="SIM-CEL").observations.table
    path = tmp_path / "encoded.json"
    path.write_bytes(json.dumps(bundle(entries)).encode(encoding))
    got = read_fhir(path, product="SIM-CEL").observations.table
    assert got[["item", "value_num"]].equals(plain[["item", "value_num"]])


@pytest.mark.parametrize("value", ["1e400", "NaN", "Infinity", "-Infinity"])
def test_non_finite_value_is_an_input_error(tmp_path, entries, value):
    """Issue 14, defect 3: JSON's 1e400 overflows to infinity, and Python's json takes
    NaN and Infinity; none is an observation."""
    text = json.dumps(bundle(entries)).replace('"value": 38.1', '"value": ' + value, 1)
    assert value in text
    path = tmp_path / "bundle.json"
    path.write_text(text)
    with pytest.raises(InputError, match="not a") as exc:
        read_fhir(path, product="SIM-CEL")
    assert exc.value.file == str(path)
