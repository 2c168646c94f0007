"""Benchmark: a new batch of observations for a monitored ward, incremental vs from scratch.

SIMULATED data (``examples/generate_crs_cohort.py``: vital signs every 4 h and the
simulated laboratory kinetics). ``--patients`` patients (default 500) are monitored for
``--hours`` hours (default 72) by :class:`cytosafe.clinical.monitor.Monitor` (ASTCT 2019,
Hay 2017); then one new vital-sign set per patient arrives (temperature, systolic pressure,
SpO2, 4 h after the last). Timed, as CPU time (min and median of 3 runs, each from the same
monitored state):

* **incremental**: ``Monitor.process`` of the new batch (validation of the batch alone,
  grading of the patients it touches, their states, predictions where a window is still
  open, alerts);
* **from scratch**: what a monitor without state would do for the same batch: the whole
  record validated and graded again with :func:`cytosafe.clinical.grade` (timeline,
  episodes, summaries) and :func:`cytosafe.clinical.predict.predict` (Hay 2017, at each
  patient's latest hour).

And the grading step alone, the part this monitor made incremental: the new rows graded
from each patient's carried state (:func:`cytosafe.clinical.grading.grade_increment`)
against the touched patients' whole validated records graded again
(:func:`cytosafe.clinical.grading.grade_states`, what the monitor did before).

Two batches: one new vital-sign set for every patient, and one for 50 of them (a batch
touching a tenth of the ward). Incremental and from scratch give the same grades for the
new rows (checked). The garbage of the run before is collected before each timed call
(not timed), so that one path does not pay for the other's. Prints the times, the ratio
and whether the target (under 200 ms per batch for 500 patients) is met.

Usage: ``python benchmarks/bench_monitor.py [--patients 500] [--hours 72] [--runs 3]``
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import warnings
from pathlib import Path

import pandas as pd

from _measure import cpu
from cytosafe.clinical import grade
from cytosafe.clinical.grading import grade_increment, grade_states
from cytosafe.clinical.monitor import Monitor
from cytosafe.clinical.predict import predict
from cytosafe.errors import DataWarning
from cytosafe.schema.observations import Observations

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from generate_crs_cohort import simulate, simulate_labs

TARGET_S = 0.200


def cohort(n: int, hours: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The record so far (vitals and labs up to ``hours``) and the next vital-sign set."""
    truth: list[dict] = []
    vitals = simulate(n, hours=hours + 4, step=4.0, truth=truth)
    labs = simulate_labs(truth)
    t = pd.to_datetime(vitals["time"])
    start = vitals.groupby("patient_id")["time"].transform("min").pipe(pd.to_datetime)
    h = (t - start).dt.total_seconds() / 3600
    nxt = vitals[(h == hours + 4) & vitals["item"].isin(["temperature", "systolic_bp", "spo2"])]
    record = vitals[h <= hours]
    lab_h = (
        pd.to_datetime(labs["time"])
        - labs["patient_id"].map(start.groupby(vitals["patient_id"]).first())
    ).dt.total_seconds() / 3600
    record = pd.concat([record, labs[lab_h <= hours]], ignore_index=True).astype(str)
    return record, nxt.astype(str).reset_index(drop=True)


def _cpu(fn) -> tuple[float, object]:
    # collect the garbage of the run before (not timed), as timeit does before it times
    gc.collect()
    return cpu(fn)


def _stats(times: list[float]) -> dict[str, float]:
    return {"min": min(times), "median": statistics.median(times)}


def case(primed: Monitor, batch: pd.DataFrame, record: pd.DataFrame, runs: int) -> dict:
    """Time one batch: incremental, from scratch, and the grading step both ways."""
    everything = pd.concat([record, batch], ignore_index=True)
    touched = sorted(set(batch["patient_id"]))

    def scratch():
        res = grade(everything, "astct2019")
        pred = predict(everything, "hay2017")
        return res.timeline, pred

    inc, full, step_inc, step_full = [], [], [], []
    for _ in range(runs):
        m = copy.deepcopy(primed)
        t, update = _cpu(lambda m=m: m.process({"batch.csv": batch}))
        inc.append(t)
        t, (timeline, _) = _cpu(scratch)
        full.append(t)
        # the grading step alone: new rows from the carried state, or whole records again
        new_rows = m.window().iloc[-m.rows_graded_last :]
        obs = Observations(new_rows.reset_index(drop=True), pd.DataFrame(), set())
        carry = primed._carry.only(touched)
        t, _ = _cpu(lambda o=obs, c=carry: grade_increment(o, ["astct2019"], {}, c))
        step_inc.append(t)
        win = m.window()
        whole = Observations(win.loc[win["patient_id"].isin(touched)].reset_index(drop=True),
                             pd.DataFrame(), set())  # fmt: skip
        t, _ = _cpu(lambda w=whole: grade_states(w, ["astct2019"], {}))
        step_full.append(t)
    new = update.timeline.set_index(["patient_id", "time"])["grade"]
    ref = timeline.assign(patient_id=timeline["patient_id"].astype(str))
    ref = ref.set_index(["patient_id", "time"])["grade"].reindex(new.index)
    return {
        "patients_touched": len(touched),
        "batch_rows": len(batch),
        "rows_graded": int(m.rows_graded_last),
        "incremental_s": _stats(inc),
        "from_scratch_s": _stats(full),
        "ratio_median": statistics.median(full) / statistics.median(inc),
        "grading_step_incremental_s": _stats(step_inc),
        "grading_step_whole_records_s": _stats(step_full),
        "same_grades": bool((new.to_numpy() == ref.to_numpy()).all()),
        "alerts": len(update.alerts),
        "target_met": statistics.median(inc) < TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--hours", type=int, default=72)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--touched", type=int, default=50, help="patients in the small batch")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DataWarning)

    record, batch = cohort(args.patients, args.hours)
    primed = Monitor("astct2019", ["hay2017"])
    primed.process({"record.csv": record})
    few = sorted(set(batch["patient_id"]))[: args.touched]
    cases = {
        "every_patient": case(primed, batch, record, args.runs),
        "some_patients": case(primed, batch[batch["patient_id"].isin(few)], record, args.runs),
    }
    summary = {
        "patients": args.patients,
        "record_rows": len(record),
        **cases,
        "note": "SIMULATED cohort; CPU time",
    }
    print(json.dumps(summary, indent=2))
    for name, c in cases.items():
        inc, full = c["incremental_s"], c["from_scratch_s"]
        step, whole = c["grading_step_incremental_s"], c["grading_step_whole_records_s"]
        print(
            f"{name} ({c['patients_touched']} of {args.patients} patients, "
            f"{c['rows_graded']} rows graded): incremental {inc['median'] * 1000:.0f} ms "
            f"(min {inc['min'] * 1000:.0f}) vs from scratch {full['median'] * 1000:.0f} ms "
            f"(min {full['min'] * 1000:.0f}): {c['ratio_median']:.1f}x; grading step "
            f"{step['median'] * 1000:.0f} ms vs whole records {whole['median'] * 1000:.0f} ms; "
            f"target < {TARGET_S * 1000:.0f} ms {'met' if c['target_met'] else 'NOT met'}; "
            f"same grades: {c['same_grades']}"
        )


if __name__ == "__main__":
    main()
