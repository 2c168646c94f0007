"""The fused ASTCT 2019 kernel (:func:`cytosafe.clinical.scales.astct2019.grade_observations`)
is a second implementation of the rules: it must give, row for row, the grade, criterion,
estimates and ``crs_present`` of the NumPy reference (``build_states``, ``derive``,
``astct2019.grade`` and the gate), exactly (integers, and the texts as strings).

Checked on the shipped example cohort, a simulated cohort, and random observation tables
built to reach every branch (fever absent/present/masked, each vasopressor combination
with and without vasopressin, the hypotension and low-flow boundaries, every oxygen
device, missing values, baseline rows, several observations at one time, duplicates,
laboratory rows, unsorted input, deaths of either cause) under each setting the scale
accepts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.clinical import grade
from cytosafe.clinical import states as states_module
from cytosafe.clinical.criteria import settings_for
from cytosafe.clinical.grading import grade_arrays, grade_table
from cytosafe.clinical.observations import validate_observations
from cytosafe.clinical.scales import astct2019
from cytosafe.clinical.states import build_states
from cytosafe.errors import DataWarning
from cytosafe.schema.observations import DEVICES, ITEMS, TREATMENTS
from test_grade_compiled import observations

#: The fixture of tests/test_grade_compiled.py this module uses: the example cohort with a
#: baseline (pre-infusion) fever, oxygen and vasopressor.
FIXTURES = (observations,)

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "examples" / "crs-cohort" / "observations.csv"

#: Every option of the ASTCT scale that its rules read, one variant each (and a mix).
VARIANTS = {
    "defaults": {},
    "fever_37_5": {"fever_c": 37.5},
    "fever_38_3": {"fever_c": 38.3},
    "sbp_100": {"hypotension_sbp_below": 100.0},
    "low_flow_4": {"low_flow_max_l_min": 4},
    "gap_0": {"episode_gap_hours": 0.0},
    "gap_6": {"episode_gap_hours": 6.0},
    "gap_48": {"episode_gap_hours": 48},
    "no_onset_gate": {"onset_requires_fever": False},
    "masking_tocilizumab_only": {"fever_masking": {"treatments": ["tocilizumab"]}},
    "masking_without_prior_fever": {"fever_masking": {"requires_prior_fever": False}},
    "masking_none": {"fever_masking": {"treatments": []}},
    "device_grades": {"device_grade": {"cpap": 3, "blow_by": 0, "room_air": 1}},
    "mixed": {
        "fever_c": 38.2,
        "hypotension_sbp_below": 95,
        "episode_gap_hours": 12.0,
        "fever_masking": {
            "treatments": ["antipyretic", "corticosteroid"],
            "requires_prior_fever": False,
        },
        "device_grade": {"simple_face_mask": 2, "nasal_cannula": 3, "room_air": 1},
    },
}


def _reference(table, weight_assumed, settings, monkeypatch):
    """The NumPy path (no compiled kernel at all)."""
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 10**12)
    return grade_arrays(build_states(table, weight_assumed), "astct2019", settings)[0]


def _fused(table, weight_assumed, settings, monkeypatch):
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0)
    return astct2019.grade_observations(table, weight_assumed, settings)


def assert_same(ref, fused) -> None:
    assert fused is not None, "the fused kernel declined"
    assert fused.grade.dtype == ref.grade.dtype
    assert np.array_equal(fused.grade, ref.grade)
    a, b = ref.criterion.to_array(), fused.criterion.to_array()
    bad = np.flatnonzero(a != b)
    assert not len(bad), f"row {bad[:1]}: {a[bad[:1]]} != {b[bad[:1]]}"
    assert np.array_equal(fused.estimates.to_array(), ref.estimates.to_array())
    assert np.array_equal(fused.extra["crs_present"], ref.extra["crs_present"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_example_cohort_under_every_setting(observations, variant, monkeypatch):
    settings = settings_for("astct2019", VARIANTS[variant])
    ref = _reference(observations.table, observations.weight_assumed, settings, monkeypatch)
    assert_same(ref, _fused(observations.table, observations.weight_assumed, settings, monkeypatch))


def test_simulated_cohort(monkeypatch):
    sys.path.insert(0, str(ROOT / "examples"))
    from generate_crs_cohort import simulate

    obs = validate_observations(simulate(40, hours=240, step=1.0, seed=11))
    settings = settings_for("astct2019")
    ref = _reference(obs.table, obs.weight_assumed, settings, monkeypatch)
    assert_same(ref, _fused(obs.table, obs.weight_assumed, settings, monkeypatch))
    assert set(np.unique(ref.grade)) >= {0, 1, 2, 3}


# --------------------------------------------------------------- random tables
_VALUES = {
    "temperature": [36.6, 37.9, 37.95, 38.0, 38.04, 38.25, 38.5, 39.4, np.nan],
    "systolic_bp": [70.0, 89.9, 90.0, 95.0, 99.99, 100.0, 120.0, np.nan],
    "oxygen_device": [*map(float, range(len(DEVICES))), np.nan],
    "oxygen_flow": [0.0, 2.0, 4.0, 4.5, 6.0, 6.01, 10.0, np.nan],
    "norepinephrine": [0.0, 3.0, 25.0, np.nan],
    "epinephrine": [0.0, 2.0, np.nan],
    "dopamine": [0.0, 5.0],
    "phenylephrine": [0.0, 100.0],
    "vasopressin": [0.0, 0.04, np.nan],
    "spo2": [88.0, 97.0],
    "fio2": [30.0, 60.0],
    "fluid_bolus": [500.0],
    **{t: [1.0, 1.0, np.nan] for t in TREATMENTS},
    "il6": [12.0],  # a laboratory value: makes no row
    "crp": [3.0],
}
_DEATHS = ["CRS", " Cytokine Release Syndrome ", "sepsis", "progression"]


def random_table(seed: int, n_patients: int = 40) -> tuple[pd.DataFrame, set[str]]:
    """Observations of ``n_patients`` built to reach every rule (not validated: NaN values,
    duplicates and laboratory-only times are kept, as build_states accepts them)."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = np.datetime64("2024-01-01T00:00", "ns")
    items = list(_VALUES)
    for p in range(n_patients):
        pid = f"R{seed}-{p:03d}"
        n_times = int(rng.integers(1, 60))
        steps = rng.choice([0.25, 0.5, 1.0, 2.0, 5.0, 13.0, 25.0, 49.0], n_times)
        hours = np.cumsum(steps) - steps[0]
        # infusion: at the first time, later (baseline rows before), none, or uncharted
        kind = rng.integers(0, 5)
        if kind <= 1:
            at = 0 if kind == 0 else int(rng.integers(1, max(n_times, 2)))
            rows.append((pid, hours[min(at, n_times - 1)], "infusion", "x", 1.0))
            if rng.random() < 0.2:  # a later second infusion: the earliest is hour 0
                rows.append((pid, hours[-1], "infusion", "x", 1.0))
        elif kind == 2:
            rows.append((pid, hours[n_times // 2], "infusion", "x", np.nan))  # no value
        for h in hours:
            for item in rng.choice(items, int(rng.integers(1, 6))):
                v = rng.choice(_VALUES[item])
                rows.append((pid, h, item, "", v))
                if rng.random() < 0.05:  # the same item again at the same time
                    rows.append((pid, h, item, "", rng.choice(_VALUES[item])))
        if rng.random() < 0.25:
            for cause in rng.choice(_DEATHS, int(rng.integers(1, 3))):
                rows.append((pid, hours[-1], "death", cause, 1.0))
    df = pd.DataFrame(rows, columns=["patient_id", "hours", "item", "value", "value_num"])
    df["time"] = t0 + (df.pop("hours").to_numpy() * 3.6e12).astype("timedelta64[ns]")
    df["item"] = pd.Categorical(df["item"], categories=list(ITEMS))
    df = df.sort_values(["patient_id", "time"], kind="stable").reset_index(drop=True)
    df["patient_id"] = pd.Categorical(df["patient_id"], categories=sorted(set(df["patient_id"])))
    patients = sorted(set(df["patient_id"]))
    assumed = set(rng.choice(patients, len(patients) // 4, replace=False))
    return df, assumed


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("seed", [0, 1])
def test_random_tables_under_every_setting(seed, variant, monkeypatch):
    table, assumed = random_table(seed)
    settings = settings_for("astct2019", VARIANTS[variant])
    ref = _reference(table, assumed, settings, monkeypatch)
    assert_same(ref, _fused(table, assumed, settings, monkeypatch))


def test_random_tables_reach_every_branch(monkeypatch):
    """The random tables are only worth their name if the reference's answers on them
    cover every grade, criterion and estimate (so that a wrong branch of the kernel shows)."""
    texts, grades, flags, present = set(), set(), set(), set()
    for seed in (0, 1):
        table, assumed = random_table(seed)
        for variant in ("defaults", "no_onset_gate", "mixed"):
            ref = _reference(table, assumed, settings_for("astct2019", VARIANTS[variant]),
                             monkeypatch)  # fmt: skip
            texts.update(ref.criterion.to_array())
            grades.update(ref.grade.tolist())
            flags.update(ref.estimates.to_array())
            present.update(ref.extra["crs_present"].tolist())
    joined = "\n".join(texts)
    for phrase in (
        "grade 1: fever", "fever not required after", "no fever: ", "CRS not present",
        "grade 5: death due to CRS", "death not due to CRS", "no criterion met",
        "hypotension not requiring", "requiring a vasopressor", "multiple vasopressors",
        "low-flow nasal cannula", "high-flow nasal cannula", "positive pressure",
        "; hypoxia", "fever nan C",
    ):  # fmt: skip
        assert phrase in joined, phrase
    assert grades == {0, 1, 2, 3, 4, 5}
    assert {"hypotension_from_sbp", "low_flow_assumed", "weight_assumed"} <= set(
        ";".join(flags).split(";")
    )
    assert present == {True, False}
    table, _ = random_table(0)
    states = build_states(table)
    assert states.baseline.any() and not states.baseline.all()


def test_unsorted_observations_are_sorted_as_the_reference_sorts(monkeypatch):
    """A stable sort by patient and time: of two values of one item at one time, the one
    later in the table holds, in both."""
    table, assumed = random_table(2)
    shuffled = table.sample(frac=1.0, random_state=3)
    settings = settings_for("astct2019")
    ref = _reference(shuffled, assumed, settings, monkeypatch)
    assert_same(ref, _fused(shuffled, assumed, settings, monkeypatch))


def test_text_columns_and_unused_categories(monkeypatch):
    """Patients and items as plain strings (factorised), and as categoricals with
    categories nobody charted or in no sorted order, give the reference's rows."""
    table, assumed = random_table(3, n_patients=12)
    settings = settings_for("astct2019")
    ref = _reference(table, assumed, settings, monkeypatch)
    plain = table.assign(patient_id=table["patient_id"].astype(str),
                         item=table["item"].astype(str))  # fmt: skip
    assert_same(ref, _fused(plain, assumed, settings, monkeypatch))
    ids = sorted(set(plain["patient_id"]))
    shuffled = pd.Categorical(plain["patient_id"], categories=["ZZ-unused", *ids[::-1]])
    other = table.assign(patient_id=shuffled)
    ref = _reference(other, assumed, settings, monkeypatch)
    assert_same(ref, _fused(other, assumed, settings, monkeypatch))


@pytest.mark.parametrize(
    "options",
    [
        {"device_grade": {"cpap": 5}},  # above the kernel's 0..4
        {"fever_c": float("nan")},
    ],
)
def test_settings_outside_the_kernel_fall_back_to_numpy(options, monkeypatch):
    table, assumed = random_table(4, n_patients=5)
    settings = settings_for("astct2019", options)
    assert _fused(table, assumed, settings, monkeypatch) is None
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0)
    got = grade_table(table, "astct2019", settings, assumed)
    ref = _reference(table, assumed, settings, monkeypatch)
    assert np.array_equal(got.grade, ref.grade)
    assert np.array_equal(got.criterion.to_array(), ref.criterion.to_array())


def test_data_outside_the_kernel_falls_back_to_numpy(monkeypatch):
    """A device code that is no device is not the kernel's to read."""
    table, assumed = random_table(5, n_patients=5)
    table.loc[table["item"] == "oxygen_device", "value_num"] = 2.5
    settings = settings_for("astct2019")
    assert _fused(table, assumed, settings, monkeypatch) is None


def test_grade_uses_the_kernel_and_gives_the_tables_of_numpy(observations, monkeypatch):
    """grade() takes the kernel's grades, criteria, estimates and crs_present, and the
    rest of the timeline from the state table: every table equal to the NumPy path's."""
    calls = []
    kernel = astct2019.grade_observations

    def spy(*args):
        out = kernel(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 10**12)
    with pytest.warns(DataWarning, match="fever before the infusion"):
        one = grade(observations, ["astct2019", "lee2014"])
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0)
    monkeypatch.setattr(astct2019, "grade_observations", spy)
    with pytest.warns(DataWarning, match="fever before the infusion"):
        fused = grade(observations, ["astct2019", "lee2014"])
    assert calls == [True]
    for table in ("timeline", "patients", "cohort"):
        assert getattr(fused, table).to_csv(index=False) == getattr(one, table).to_csv(index=False)


@pytest.mark.parametrize("nan_as", [-np.inf, np.inf, -1.0, 0.0])
@pytest.mark.parametrize("threshold", [38.0, 90, 0.0, -1.0, -5.0, np.inf, -np.inf, np.nan])
def test_derive_comparisons_read_missing_values_as_before(nan_as, threshold):
    """derive's comparisons skip np.nan_to_num's copy only where the answer is the same."""
    import operator

    from cytosafe.clinical.scales._common import _compare

    values = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 37.9, 38.0, 89.9, 90.0, 1e308])
    for op in (operator.ge, operator.gt, operator.lt):
        want = op(np.nan_to_num(values, nan=nan_as), threshold)
        assert np.array_equal(_compare(values, op, threshold, nan_as), want)
