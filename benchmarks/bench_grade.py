"""Benchmark: one million patient-hours graded by ASTCT 2019, vectorised vs per row.

The vectorised engine (:func:`cytosafe.clinical.grading.grade_states`: the state table and
the ASTCT rules over all patients at once, giving the timeline with grade, criterion and
estimates; the whole :func:`cytosafe.clinical.grade` with episodes and summaries is timed
too) against a straightforward per-row Python implementation of the same
ASTCT 2019 rules (:func:`grade_per_row`: walk the observations in time order, keep each
patient's states in a dict, grade at each observation time), both starting from the same
validated observation table, in the same run. Prints both times, the ratio (target: at
least 50x) and checks that both agree on every row. SIMULATED data
(``examples/generate_crs_cohort.py``: vitals every hour).

Usage: ``python benchmarks/bench_grade.py [--patients 4167] [--hours 240]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from cytosafe.clinical import grade
from cytosafe.clinical.criteria import settings_for
from cytosafe.clinical.grading import grade_arrays, grade_states
from cytosafe.clinical.observations import DEVICES, validate_observations
from cytosafe.clinical.states import build_states

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from generate_crs_cohort import simulate

_PRESSORS = ("norepinephrine", "epinephrine", "dopamine", "phenylephrine")


def _astct(state: dict, masked: bool, cfg: dict) -> int:
    temp = state.get("temperature")
    fever = temp is not None and temp >= cfg["fever_c"]
    n = sum(1 for p in _PRESSORS if state.get(p, 0.0) > 0)
    vaso = state.get("vasopressin", 0.0) > 0
    if n >= 2:
        hyp = 4
    elif n == 1 or vaso:
        hyp = 3
    elif (
        state.get("systolic_bp") is not None and state["systolic_bp"] < cfg["hypotension_sbp_below"]
    ):
        hyp = 2
    else:
        hyp = 0
    device = state.get("oxygen_device")
    oxy = 0 if device is None else cfg["device_grade"][device]
    flow = state.get("oxygen_flow")
    if device == "nasal_cannula" and flow is not None and flow > cfg["low_flow_max_l_min"]:
        oxy = max(oxy, 3)
    worst = max(hyp, oxy)
    if (fever or masked) and worst > 0:
        return worst
    return 1 if fever else 0


def grade_per_row(table) -> list[tuple[str, object, int]]:
    """ASTCT 2019 grades at every observation time, one Python step per observation."""
    cfg = settings_for("astct2019")
    masking = set(cfg["fever_masking"]["treatments"])
    out = []
    state: dict = {}
    fever_seen = masked = False
    current = None
    death_crs = False
    rows = table[["patient_id", "time", "item", "value", "value_num"]].itertuples(index=False)
    pending = None
    for pid, t, item, value, num in rows:
        key = (pid, t)
        if key != current:
            if pending is not None:
                out.append((*pending, 5 if death_crs else _astct(state, masked, cfg)))
            if current is None or pid != current[0]:
                state, fever_seen, masked = {}, False, False
            current, pending, death_crs = key, key, False
        if item == "oxygen_device":
            state[item] = DEVICES[int(num)]
        elif item in ("temperature", "systolic_bp", "oxygen_flow", "vasopressin", *_PRESSORS):
            state[item] = num
        elif item == "death":
            death_crs = str(value).strip().lower() in ("crs", "cytokine release syndrome")
        if item == "temperature" and num >= cfg["fever_c"]:
            fever_seen = True
        if item in masking and fever_seen:
            masked = True
        # fever seen at this same time counts for a treatment charted at the same time
    if pending is not None:
        out.append((*pending, 5 if death_crs else _astct(state, masked, cfg)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4167)
    parser.add_argument("--hours", type=int, default=240)
    args = parser.parse_args()
    raw = simulate(args.patients, hours=args.hours, step=1.0, seed=7)
    obs = validate_observations(raw)
    patient_hours = args.patients * args.hours
    print(f"{patient_hours:,} patient-hours, {len(obs.table):,} observations (simulated)")

    grade(validate_observations(simulate(2, hours=24, seed=1)))  # warm up imports
    settings = settings_for("astct2019")
    t0 = time.perf_counter()
    states = build_states(obs.table, obs.weight_assumed)
    graded, _ = grade_arrays(states, "astct2019", settings)
    t_core = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = grade_states(obs, ["astct2019"], None)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole = grade(obs, "astct2019")
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = grade_per_row(obs.table)
    t_slow = time.perf_counter() - t0
    assert (whole.timeline["grade"].to_numpy() == fast["grade"].to_numpy()).all()
    assert (graded.grade == fast["grade"].to_numpy()).all()

    g_fast = fast["grade"].to_numpy()
    g_slow = np.array([r[2] for r in slow])
    same_keys = len(slow) == len(fast) and all(
        a[0] == b for a, b in zip(slow, fast["patient_id"], strict=True)
    )
    agree = same_keys and bool((g_fast == g_slow).all())
    n_agree = int((g_fast == g_slow).sum()) if len(g_slow) == len(g_fast) else 0
    print(f"per-row Python, ASTCT grade per observation time : {t_slow:7.2f} s")
    print(
        f"vectorised: grade + criterion + estimates per row  : {t_core:7.2f} s "
        f"-> {t_slow / t_core:5.1f}x (target >= 50x)"
    )
    print(
        f"vectorised: the timeline table (grade_states)      : {t_fast:7.2f} s "
        f"-> {t_slow / t_fast:5.1f}x"
    )
    print(
        f"vectorised: whole grade() with episodes, patients, cohort: {t_whole:.2f} s "
        f"-> {t_slow / t_whole:.1f}x"
    )
    print(
        f"agreement: {'every row' if agree else 'MISMATCH'} ({n_agree:,} / {len(fast):,} graded times)"
    )
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
