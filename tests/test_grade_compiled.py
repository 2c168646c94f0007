"""The compiled kernel of the state table's item columns (:mod:`cytosafe.clinical._compiled`)
builds the columns of the NumPy path bit for bit; ``CYTOSAFE_COMPILED=0`` and small tables
keep NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytosafe.clinical import grade
from cytosafe.clinical import states as states_module
from cytosafe.clinical.observations import validate_observations
from cytosafe.clinical.states import build_states

pytest.importorskip("numba")

COHORT = Path(__file__).resolve().parents[1] / "examples" / "crs-cohort" / "observations.csv"
SCALES = ["astct2019", "lee2014", "ctcae5", "penn", "mskcc", "cartox", "icans"]


@pytest.fixture(scope="module")
def observations():
    """The example cohort with a baseline (pre-infusion) fever and an uncharted gap."""
    df = pd.read_csv(COHORT, dtype=str, keep_default_na=False)
    pid = df["patient_id"].iat[0]
    infusion = pd.Timestamp(df.loc[(df.patient_id == pid) & (df.item == "infusion"), "time"].iat[0])
    before = [
        {"patient_id": pid, "time": (infusion - pd.Timedelta(hours=h)).isoformat(),
         "item": item, "value": value, "unit": unit}
        for h, item, value, unit in ((30, "temperature", "38.9", "C"),
                                     (20, "oxygen_device", "nasal_cannula", ""),
                                     (20, "norepinephrine", "4", "ug/min"))
    ]  # fmt: skip
    return validate_observations(pd.concat([df, pd.DataFrame(before)], ignore_index=True))


def _states(obs, compiled: bool, monkeypatch):
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0 if compiled else 10**12)
    return build_states(obs.table, obs.weight_assumed)


def test_compiled_item_columns_equal_numpy_bit_for_bit(observations, monkeypatch):
    numpy_ = _states(observations, False, monkeypatch)
    compiled = _states(observations, True, monkeypatch)
    assert numpy_.baseline.any()  # the baseline segment is rebuilt after the kernel
    assert numpy_.values.keys() == compiled.values.keys()
    for name in numpy_.values:
        a, b = numpy_.values[name], compiled.values[name]
        assert a.tobytes() == b.tobytes(), name  # NaN included, bit for bit
        assert np.array_equal(numpy_.observed[name], compiled.observed[name]), name
    for field in ("hours", "start", "death_crs", "death_other", "baseline", "zero"):
        assert np.array_equal(getattr(numpy_, field), getattr(compiled, field)), field
    # rows out of order: the compiled grouping declines and the table is sorted first
    shuffled = observations.table.sample(frac=1.0, random_state=1)
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0)
    again = build_states(shuffled, observations.weight_assumed)
    for name in numpy_.values:
        assert numpy_.values[name].tobytes() == again.values[name].tobytes(), name


def test_compiled_grading_gives_the_tables_of_numpy(observations, monkeypatch):
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 10**12)
    one = grade(observations, SCALES)
    monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", 0)
    compiled = grade(observations, SCALES)
    for table in ("timeline", "patients", "cohort"):
        assert getattr(compiled, table).to_csv(index=False) == getattr(one, table).to_csv(
            index=False
        )


def test_the_kernel_is_chosen_for_large_tables_only_and_can_be_turned_off(monkeypatch):
    assert states_module.COMPILED_MIN_ROWS >= 100_000  # the example cohort stays with NumPy
    monkeypatch.setenv("CYTOSAFE_COMPILED", "0")
    assert not states_module.compiled_available()
    assert not states_module._use_compiled(10**9)
    monkeypatch.setenv("CYTOSAFE_COMPILED", "1")
    assert states_module._use_compiled(states_module.COMPILED_MIN_ROWS)
    assert not states_module._use_compiled(states_module.COMPILED_MIN_ROWS - 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_scans_equal_numpy(seed, monkeypatch):
    """carry_forward, group_cumany, run_begin and quiet_breaks over random segments."""
    rng = np.random.default_rng(seed)
    n = 2000
    opens = rng.random(n) < 0.05
    opens[0] = True
    start = np.maximum.accumulate(np.where(opens, np.arange(n), 0))
    hours = np.cumsum(rng.choice([0.0, 0.5, 1.0, 7.25], n)) - 50.0
    values = np.where(rng.random(n) < 0.3, rng.normal(38, 1, n), np.nan)
    mask = rng.random(n) < 0.4
    answers = []
    for threshold in (10**12, 0):
        monkeypatch.setattr(states_module, "COMPILED_MIN_ROWS", threshold)
        out: dict = {}
        answers.append(
            [
                states_module.carry_forward(values, start),
                states_module.group_cumany(mask, start),
                states_module.run_begin(mask, hours, start),
                states_module.run_begin(mask, hours, start, np.full(n, -3.0)),
                states_module.quiet_breaks(mask, hours, start, 6.0, out=out),
                out["quiet_begin"],
                states_module.quiet_breaks(mask, hours, start, 0.0),
            ]
        )
    for numpy_, compiled in zip(*answers, strict=True):
        assert numpy_.dtype == compiled.dtype and numpy_.tobytes() == compiled.tobytes()
