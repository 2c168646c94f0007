"""Each scale's criteria table, one case per cell and per boundary.

Each test quotes the criterion it checks (the same text as the scale module's docstring
and ``data/clinical_scales.toml``). Cases are built as a short observation series of one
patient; the grade read is the one at the last observation time.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cytosafe.clinical import SCALES, grade
from cytosafe.clinical.criteria import criteria

T0 = pd.Timestamp("2024-05-01T08:00")


def series(*rows: tuple, patient: str = "P1") -> pd.DataFrame:
    """Observations from (hours after infusion, item, value, unit) tuples (plus the infusion)."""
    out = [(patient, T0.isoformat(), "infusion", "axi-cel", "")]
    for h, item, value, unit in rows:
        out.append((patient, (T0 + pd.Timedelta(hours=h)).isoformat(), item, str(value), unit))
    return pd.DataFrame(out, columns=["patient_id", "time", "item", "value", "unit"])


def last(obs: pd.DataFrame, scale: str = "astct2019", **options) -> pd.Series:
    res = grade(obs, scale, options={scale: options} if options else None)
    return res.timeline.iloc[-1]


def g(obs: pd.DataFrame, scale: str = "astct2019", **options) -> int:
    return int(last(obs, scale, **options)["grade"])


FEVER = (10, "temperature", 38.5, "C")


def febrile(*rows: tuple, patient: str = "P1") -> pd.DataFrame:
    """A series with a fever at hour 10 first: every CRS scale grades only once CRS is
    present, i.e. from a fever on (``onset_requires_fever``; tests/test_clinical_gate.py)."""
    return series(FEVER, *rows, patient=patient)


# ----------------------------------------------------------------------- ASTCT 2019
class TestASTCT2019:
    def test_grade1_fever_38_0_without_hypotension_or_hypoxia(self):
        """'Grade 1: Fever >=38 C; hypotension: none; hypoxia: none.'"""
        assert g(series((10, "temperature", 38.0, "C"))) == 1

    def test_37_9_is_not_fever(self):
        """'Fever is defined as temperature >=38 C' - 37.9 C is below it."""
        assert g(series((10, "temperature", 37.9, "C"))) == 0

    def test_fahrenheit_converted_100_4_is_38_0(self):
        assert g(series((10, "temperature", 100.4, "F"))) == 1

    def test_grade2_hypotension_not_requiring_vasopressors(self):
        """'Grade 2: Fever with hypotension not requiring vasopressors'."""
        row = last(series(FEVER, (11, "systolic_bp", 85, "mmHg")))
        assert row["grade"] == 2
        assert "hypotension_from_sbp" in row["estimates"]

    def test_sbp_90_is_not_hypotension_by_default(self):
        assert g(series(FEVER, (11, "systolic_bp", 90, "mmHg"))) == 1

    def test_hypotension_threshold_is_configurable(self):
        assert g(series(FEVER, (11, "systolic_bp", 95, "mmHg")), hypotension_sbp_below=100) == 2

    def test_grade2_low_flow_nasal_cannula_6_l_min(self):
        """'Low-flow nasal cannula is defined as oxygen delivered at <=6 L/minute.'"""
        obs = series(
            FEVER, (11, "oxygen_device", "nasal_cannula", ""), (11, "oxygen_flow", 6, "L/min")
        )
        assert g(obs) == 2

    def test_grade3_nasal_cannula_7_l_min_is_high_flow(self):
        """'High-flow nasal cannula is defined as oxygen delivered at >6 L/minute.'"""
        obs = series(
            FEVER, (11, "oxygen_device", "nasal_cannula", ""), (11, "oxygen_flow", 7, "L/min")
        )
        assert g(obs) == 3

    def test_grade2_blow_by(self):
        """'Low flow also includes blow-by oxygen delivery'."""
        assert g(series(FEVER, (11, "oxygen_device", "blow_by", ""))) == 2

    def test_cannula_without_flow_is_assumed_low_flow_and_reported(self):
        row = last(series(FEVER, (11, "oxygen_device", "nasal_cannula", "")))
        assert row["grade"] == 2
        assert "low_flow_assumed" in row["estimates"]

    @pytest.mark.parametrize(
        "device",
        ["high_flow_nasal_cannula", "simple_face_mask", "non_rebreather_mask", "venturi_mask"],
    )
    def test_grade3_hypoxia_devices(self, device):
        """'hypoxia requiring high-flow nasal cannula, facemask, nonrebreather mask, or Venturi mask'."""
        assert g(series(FEVER, (11, "oxygen_device", device, ""))) == 3

    @pytest.mark.parametrize("device", ["cpap", "bipap", "mechanical_ventilation"])
    def test_grade4_positive_pressure(self, device):
        """'hypoxia requiring positive pressure (eg, CPAP, BiPAP, intubation and mechanical ventilation)'."""
        assert g(series(FEVER, (11, "oxygen_device", device, ""))) == 4

    def test_grade3_one_vasopressor(self):
        """'hypotension requiring a vasopressor with or without vasopressin'."""
        assert g(series(FEVER, (11, "norepinephrine", 5, "ug/min"))) == 3

    def test_grade3_one_vasopressor_plus_vasopressin(self):
        """'Grade 4: ... multiple vasopressors (excluding vasopressin)': one plus vasopressin is 3."""
        obs = series(FEVER, (11, "norepinephrine", 5, "ug/min"), (11, "vasopressin", 0.03, "U/min"))
        assert g(obs) == 3

    def test_grade4_two_vasopressors_excluding_vasopressin(self):
        obs = series(FEVER, (11, "norepinephrine", 5, "ug/min"), (11, "epinephrine", 2, "ug/min"))
        assert g(obs) == 4

    def test_vasopressor_stopped_at_rate_zero(self):
        """A vasopressor rate holds until its next observation; 0 stops it."""
        obs = series(
            FEVER, (11, "norepinephrine", 5, "ug/min"), (14, "norepinephrine", 0, "ug/min")
        )
        res = grade(obs).timeline
        assert res["grade"].tolist() == [0, 1, 3, 1]

    def test_more_severe_of_hypotension_and_hypoxia(self):
        """'CRS grade is determined by the more severe event: hypotension or hypoxia'."""
        obs = series(
            FEVER, (11, "systolic_bp", 80, "mmHg"), (11, "oxygen_device", "non_rebreather_mask", "")
        )
        row = last(obs)
        assert row["grade"] == 3
        assert "nonrebreather" in row["criterion"]

    def test_no_fever_no_crs_before_treatment(self):
        """Fever is required: hypotension without fever and without prior therapy is not CRS."""
        assert g(series((11, "systolic_bp", 80, "mmHg"), (11, "oxygen_device", "cpap", ""))) == 0

    def test_fever_masked_after_tocilizumab(self):
        """'In patients who have CRS then receive antipyretic or anticytokine therapy such as
        tocilizumab or steroids, fever is no longer required to grade subsequent CRS severity.'"""
        obs = series(
            FEVER,
            (12, "tocilizumab", 8, "mg/kg"),
            (14, "temperature", 37.0, "C"),
            (15, "norepinephrine", 5, "ug/min"),
        )
        row = last(obs)
        assert row["grade"] == 3
        assert not row["fever_required"]
        assert "fever not required" in row["criterion"]

    def test_treatment_before_any_fever_does_not_mask(self):
        obs = series(
            (5, "antipyretic", 1000, "mg"),
            (14, "temperature", 37.0, "C"),
            (15, "norepinephrine", 5, "ug/min"),
        )
        assert g(obs) == 0

    def test_grade5_death_due_to_crs(self):
        """'Grade 5: death due to CRS in which another cause is not the principal factor.'"""
        assert g(series(FEVER, (20, "death", "CRS", ""))) == 5

    def test_death_from_another_cause_is_not_grade5(self):
        row = last(series(FEVER, (20, "death", "progressive disease", "")))
        assert row["grade"] == 1
        assert "death not due to CRS" in row["criterion"]


# ----------------------------------------------------------------------- Lee 2014
class TestLee2014:
    def test_grade1_fever(self):
        """'Grade 1: Symptoms are not life threatening ... eg, fever'."""
        assert g(series(FEVER), "lee2014") == 1

    def test_grade2_oxygen_below_40(self):
        """'Grade 2: ... Oxygen requirement <40%'."""
        assert (
            g(
                febrile((11, "oxygen_device", "simple_face_mask", ""), (11, "fio2", 39, "%")),
                "lee2014",
            )
            == 2
        )

    def test_grade3_oxygen_40(self):
        """'Grade 3: ... Oxygen requirement >=40%'."""
        assert (
            g(
                febrile((11, "oxygen_device", "simple_face_mask", ""), (11, "fio2", 40, "%")),
                "lee2014",
            )
            == 3
        )

    def test_fio2_estimated_from_cannula_flow_and_reported(self):
        """FiO2 = 21% + 4%/L: 4 L/min -> 37% (grade 2), 5 L/min -> 41% (grade 3)."""
        four = febrile((11, "oxygen_device", "nasal_cannula", ""), (11, "oxygen_flow", 4, "L/min"))
        five = febrile((11, "oxygen_device", "nasal_cannula", ""), (11, "oxygen_flow", 5, "L/min"))
        assert g(four, "lee2014") == 2
        row = last(five, "lee2014")
        assert row["grade"] == 3 and "fio2_from_flow" in row["estimates"]

    def test_grade2_low_dose_of_one_vasopressor(self):
        """'hypotension responsive to fluids or low dose of one vasopressor'."""
        assert (
            g(
                febrile((11, "norepinephrine", 19, "ug/min"), (15, "norepinephrine", 19, "ug/min")),
                "lee2014",
            )
            == 2
        )

    def test_high_dose_norepinephrine_needs_3_hours(self):
        """'High-dose vasopressors (all doses required for >=3 h)': NE >=20 ug/min."""
        obs = febrile(
            (11, "norepinephrine", 20, "ug/min"),
            (13.9, "systolic_bp", 95, "mmHg"),
            (14, "systolic_bp", 96, "mmHg"),
        )
        res = grade(obs, "lee2014").timeline
        # infusion 0, fever 1 (hour 10), NE 20 ug/min under 3 h: 2, 2; from 3 h on: 3
        assert res["grade"].tolist() == [0, 1, 2, 2, 3]

    def test_high_dose_dopamine_ug_kg_min(self):
        """'Dopamine monotherapy >=10 ug/kg/min'."""
        obs = febrile((11, "dopamine", 10, "ug/kg/min"), (14, "systolic_bp", 95, "mmHg"))
        assert g(obs, "lee2014") == 3

    def test_vasopressin_plus_ne_equivalent_10(self):
        """'If on vasopressin: vasopressin + norepinephrine equivalent of >=10 ug/min';
        NE equivalent = NE + dopamine/2 + epinephrine + phenylephrine/10: 100 ug/min of
        phenylephrine is 10 ug/min of norepinephrine."""
        obs = febrile(
            (11, "vasopressin", 0.03, "U/min"),
            (11, "phenylephrine", 100, "ug/min"),
            (14, "systolic_bp", 95, "mmHg"),
        )
        row = last(obs, "lee2014")
        assert row["ne_equivalent"] == pytest.approx(10.0)
        assert row["grade"] == 3

    def test_grade4_ventilator_support(self):
        """'Grade 4: Life-threatening symptoms. Requirement for ventilator support'."""
        assert g(febrile((11, "oxygen_device", "mechanical_ventilation", "")), "lee2014") == 4

    def test_ventilator_devices_configurable(self):
        obs = febrile((11, "oxygen_device", "bipap", ""), (11, "fio2", 30, "%"))
        assert g(obs, "lee2014") == 2
        assert g(obs, "lee2014", ventilator_devices=["bipap", "mechanical_ventilation"]) == 4


# ----------------------------------------------------------------------- CTCAE v5.0
class TestCTCAE5:
    def test_grade1_fever(self):
        """'Grade 1: Fever with or without constitutional symptoms.'"""
        assert g(series(FEVER), "ctcae5") == 1

    def test_grade2_hypotension_responding_to_fluids(self):
        """'Grade 2: Hypotension responding to fluids; hypoxia responding to <40% O2.'"""
        assert g(febrile((11, "systolic_bp", 85, "mmHg")), "ctcae5") == 2

    def test_grade3_one_pressor_and_40_percent(self):
        """'Grade 3: Hypotension managed with one pressor; hypoxia requiring >=40% O2.'"""
        assert g(febrile((11, "phenylephrine", 50, "ug/min")), "ctcae5") == 3
        assert (
            g(febrile((11, "oxygen_device", "venturi_mask", ""), (11, "fio2", 40, "%")), "ctcae5")
            == 3
        )

    def test_grade4_life_threatening_interpretation_reported(self):
        """'Grade 4: Life-threatening consequences; urgent intervention indicated.'"""
        row = last(febrile((11, "oxygen_device", "mechanical_ventilation", "")), "ctcae5")
        assert row["grade"] == 4 and "interpretation" in row["estimates"]


# ----------------------------------------------------------------------- Penn
class TestPenn:
    def test_grade3_any_supplemental_oxygen(self):
        """'Hypoxia requiring supplemental oxygen (nasal cannula oxygen, high-flow oxygen, CPAP, or BiPAP).'"""
        assert (
            g(
                febrile(
                    (11, "oxygen_device", "nasal_cannula", ""), (11, "oxygen_flow", 2, "L/min")
                ),
                "penn",
            )
            == 3
        )
        assert g(febrile((11, "oxygen_device", "bipap", "")), "penn") == 3

    def test_grade3_multiple_fluid_boluses(self):
        """'Hypotension treated with multiple fluid boluses or low-dose vasopressors.'"""
        one = febrile((11, "fluid_bolus", 500, "mL"))
        two = febrile((11, "fluid_bolus", 500, "mL"), (13, "fluid_bolus", 500, "mL"))
        assert g(one, "penn") == 1  # the fever alone: mild reaction
        assert g(two, "penn") == 3

    def test_grade4_high_dose_or_mechanical_ventilation(self):
        """'Grade 4: ... hypotension requiring high-dose vasopressors. Hypoxia requiring mechanical ventilation.'"""
        assert g(febrile((11, "oxygen_device", "mechanical_ventilation", "")), "penn") == 4
        assert (
            g(febrile((11, "epinephrine", 10, "ug/min"), (14, "systolic_bp", 95, "mmHg")), "penn")
            == 4
        )

    def test_grade2_iv_therapy_is_an_interpretation(self):
        row = last(series(FEVER, (12, "tocilizumab", 8, "mg/kg")), "penn")
        assert row["grade"] == 2 and "interpretation" in row["estimates"]


# ----------------------------------------------------------------------- MSKCC
class TestMSKCC:
    def test_grade2_vasopressor_under_24_hours(self):
        """'Grade 2: Hypotension requiring any vasopressors <24 hours.'"""
        obs = febrile((11, "norepinephrine", 5, "ug/min"), (34.9, "systolic_bp", 95, "mmHg"))
        assert g(obs, "mskcc") == 2

    def test_grade3_vasopressor_24_hours(self):
        """'Grade 3: Hypotension requiring any vasopressors >=24 hours.'"""
        obs = febrile((11, "norepinephrine", 5, "ug/min"), (35, "systolic_bp", 95, "mmHg"))
        assert g(obs, "mskcc") == 3

    def test_grade4_refractory_to_high_dose(self):
        """'Grade 4: ... Hypotension refractory to high-dose vasopressors.'"""
        obs = febrile((11, "norepinephrine", 25, "ug/min"), (14, "systolic_bp", 80, "mmHg"))
        assert g(obs, "mskcc") == 4
        ok = febrile((11, "norepinephrine", 25, "ug/min"), (14, "systolic_bp", 100, "mmHg"))
        assert g(ok, "mskcc") == 2

    def test_oxygen_40_percent_boundary(self):
        """'Hypoxia or dyspnea requiring supplemental oxygen <40%' / '>=40%'."""
        assert (
            g(
                febrile((11, "oxygen_device", "simple_face_mask", ""), (11, "fio2", 39, "%")),
                "mskcc",
            )
            == 2
        )
        assert (
            g(
                febrile((11, "oxygen_device", "simple_face_mask", ""), (11, "fio2", 40, "%")),
                "mskcc",
            )
            == 3
        )


# ----------------------------------------------------------------------- CARTOX
class TestCARTOX:
    def test_grade1_temperature_38(self):
        """'Temperature >=38 C: grade 1 yes'."""
        assert g(series((10, "temperature", 38.0, "C")), "cartox") == 1
        assert g(series((10, "temperature", 37.9, "C")), "cartox") == 0

    def test_sbp_below_90_grade2(self):
        """'Systolic blood pressure <90 mmHg: grade 2 responds to IV fluids or low-dose vasopressor'."""
        assert g(febrile((11, "systolic_bp", 89, "mmHg")), "cartox") == 2
        assert g(febrile((11, "systolic_bp", 90, "mmHg")), "cartox") == 1  # the fever alone

    def test_grade3_multiple_vasopressors(self):
        """'grade 3 needs high-dose or multiple vasopressors'."""
        obs = febrile((11, "norepinephrine", 3, "ug/min"), (11, "vasopressin", 0.03, "U/min"))
        assert g(obs, "cartox") == 3
        assert g(obs, "cartox", vasopressin_counts_as_vasopressor=False) == 2

    def test_grade4_ventilator(self):
        """'Need for oxygen for SpO2 >90%: ... grade 4 needs ventilator support.'"""
        assert g(febrile((11, "oxygen_device", "mechanical_ventilation", "")), "cartox") == 4


# ----------------------------------------------------------------------- ICANS
class TestICANS:
    @pytest.mark.parametrize(
        ("score", "expected"), [(10, 0), (9, 1), (7, 1), (6, 2), (3, 2), (2, 3), (0, 3)]
    )
    def test_ice_score_bands(self, score, expected):
        """'ICE score: grade 1 7-9; grade 2 3-6; grade 3 0-2'."""
        assert g(series((30, "ice_score", score, "")), "icans") == expected

    def test_ice_0_unarousable_is_grade4(self):
        """'a patient with an ICE score of 0 may be classified as grade 4 ICANS if unarousable'."""
        obs = series((30, "ice_score", 0, ""), (30, "consciousness", "unarousable", ""))
        assert g(obs, "icans") == 4

    @pytest.mark.parametrize(
        ("item", "value", "expected"),
        [
            ("consciousness", "awakens_to_voice", 2),
            ("consciousness", "awakens_to_tactile", 3),
            ("seizure", "rapidly_resolving", 3),
            ("seizure", "prolonged", 4),
            ("motor_findings", "deep_focal_weakness", 4),
            ("raised_icp", "focal_edema", 3),
            ("raised_icp", "diffuse_edema", 4),
        ],
    )
    def test_domains(self, item, value, expected):
        assert g(series((30, item, value, "")), "icans") == expected


# ----------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", sorted(SCALES))
def test_every_scale_cites_and_quotes_its_source(name):
    meta = criteria()["scale"][name]
    assert meta["source"] in criteria()["references"]
    assert len(meta["criteria"]) >= 4
    doc = SCALES[name].__doc__
    assert "Source:" in doc
    # the module quotes the first criterion line of the data file, word for word
    first = meta["criteria"][0].split(":", 1)[1].split()[:4]
    assert " ".join(first) in " ".join(doc.split())


@pytest.mark.parametrize("name", sorted(SCALES))
def test_every_scale_grades_a_quiet_patient_0_and_labels_its_output(name):
    res = grade(series((5, "temperature", 36.8, "C"), (5, "systolic_bp", 120, "mmHg")), name)
    assert (res.timeline["grade"] == 0).all()
    assert set(res.timeline["scale"]) == {name}
    # criteria file v2: the "CRS present" gate and the episode gap were added (issue 17)
    assert res.timeline["scale_version"].str.endswith("/v2").all()
    assert name in res.scales[name]
