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
import copy
import json
import resource
import statistics
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


def _astct(state: dict, masked: bool, cfg: dict, gate: list, hours: float) -> int:
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
    grade = worst if (fever or masked) and worst > 0 else (1 if fever else 0)
    signs = fever or n > 0 or vaso or (device is not None and device != "room_air")
    present = _crs_present(gate, hours, signs, fever, cfg["episode_gap_hours"])
    return grade if present else 0


def _crs_present(gate: list, hours: float, signs: bool, fever: bool, gap: float) -> bool:
    """ASTCT's "fever at the onset" gate for one graded time of one patient.

    CRS is present from the first fever after the infusion until it resolves (``gap``
    hours afebrile, off vasopressors and off oxygen); after a resolution only from the
    next fever. ``gate`` is the patient's running ``[quiet before, quiet since, fever in
    this segment]``, updated in place.
    """
    if not signs:
        if not gate[0]:
            gate[1] = hours
        brk = hours - gate[1] >= gap
    else:
        brk = gate[0] and hours - gate[1] >= gap
    gate[0] = not signs
    if brk and signs:
        gate[2] = False
    if fever:
        gate[2] = True
    return gate[2] and not (brk and not signs)


def grade_per_row(table, cfg: dict, devices) -> list[tuple[str, object, int]]:
    """ASTCT 2019 grades at every observation time, one Python step per observation (the
    straightforward version: ``itertuples``, a dict of states, a tuple key per row)."""
    masking = set(cfg["fever_masking"]["treatments"])
    out = []
    state: dict = {}
    gate = [False, 0.0, False]
    fever_seen = masked = False
    current = None
    death_crs = False
    rows = table[["patient_id", "time", "item", "value", "value_num"]].itertuples(index=False)
    pending = None
    for pid, t, item, value, num in rows:
        key = (pid, t)
        if key != current:
            if pending is not None:
                h = pending[1].value / 3.6e12
                out.append((*pending, 5 if death_crs else _astct(state, masked, cfg, gate, h)))
            if current is None or pid != current[0]:
                state, fever_seen, masked = {}, False, False
                gate = [False, 0.0, False]
            current, pending, death_crs = key, key, False
        if item == "oxygen_device":
            state[item] = devices[int(num)]
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
        h = pending[1].value / 3.6e12
        out.append((*pending, 5 if death_crs else _astct(state, masked, cfg, gate, h)))
    return out


def grade_per_row_tuned(table, cfg: dict, devices) -> tuple[list, list]:
    """The same rules as :func:`grade_per_row`, tuned as a competent Python programmer
    would: whole columns to Python lists once, the settings and the states in local
    variables, one integer code per item looked up in a dict, the grade computed only
    when a (patient, time) ends. Returns the patient of each graded time and its grade."""
    fever_c = cfg["fever_c"]
    sbp_below = cfg["hypotension_sbp_below"]
    low_flow_max = cfg["low_flow_max_l_min"]
    device_grade = [cfg["device_grade"][d] for d in devices]
    nasal = devices.index("nasal_cannula")
    codes = {"temperature": 0, "systolic_bp": 1, "oxygen_flow": 2, "oxygen_device": 3}
    codes |= {"vasopressin": 4, "death": 5} | dict.fromkeys(_PRESSORS, 6)
    codes |= {t: 7 for t in cfg["fever_masking"]["treatments"] if t not in codes}
    pids = table["patient_id"].tolist()
    times = table["time"].to_numpy().view("int64").tolist()
    items = table["item"].tolist()
    nums = table["value_num"].tolist()
    values = table["value"].tolist()

    gap = cfg["episode_gap_hours"]
    room_air = devices.index("room_air")

    def grade(temp, sbp, flow, device, pressors, vaso, masked, gate, t) -> int:
        fever = temp is not None and temp >= fever_c
        n = sum(1 for v in pressors.values() if v > 0)
        if n >= 2:
            hyp = 4
        elif n == 1 or vaso:
            hyp = 3
        elif sbp is not None and sbp < sbp_below:
            hyp = 2
        else:
            hyp = 0
        oxy = 0 if device is None else device_grade[device]
        if device == nasal and flow is not None and flow > low_flow_max and oxy < 3:
            oxy = 3
        worst = hyp if hyp > oxy else oxy
        signs = fever or n > 0 or vaso or (device is not None and device != room_air)
        if not _crs_present(gate, t / 3.6e12, signs, fever, gap):
            return 0
        return worst if (fever or masked) and worst > 0 else int(fever)

    out_pid: list = []
    out_grade: list[int] = []
    append_pid, append_grade = out_pid.append, out_grade.append
    get = codes.get
    cur_pid = cur_t = None
    temp = sbp = flow = device = None
    pressors: dict = {}
    gate = [False, 0.0, False]
    vaso = fever_seen = masked = death_crs = False
    for pid, t, item, num, value in zip(pids, times, items, nums, values, strict=True):
        if t != cur_t or pid != cur_pid:
            if cur_pid is not None:
                append_pid(cur_pid)
                append_grade(
                    5
                    if death_crs
                    else grade(temp, sbp, flow, device, pressors, vaso, masked, gate, cur_t)
                )
            if pid != cur_pid:
                temp = sbp = flow = device = None
                pressors = {}
                vaso = fever_seen = masked = False
                gate = [False, 0.0, False]
            cur_pid, cur_t, death_crs = pid, t, False
        code = get(item)
        if code is None:
            continue
        if code == 0:
            temp = num
            if num >= fever_c:
                fever_seen = True
        elif code == 1:
            sbp = num
        elif code == 2:
            flow = num
        elif code == 3:
            device = int(num)
        elif code == 4:
            vaso = num > 0
        elif code == 5:
            death_crs = str(value).strip().lower() in ("crs", "cytokine release syndrome")
        elif code == 6:
            pressors[item] = num
        elif fever_seen:  # a fever-masking treatment after a fever
            masked = True
    if cur_pid is not None:
        append_pid(cur_pid)
        append_grade(
            5 if death_crs else grade(temp, sbp, flow, device, pressors, vaso, masked, gate, cur_t)
        )
    return out_pid, out_grade


def _cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4167)
    parser.add_argument("--hours", type=int, default=240)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    raw = simulate(args.patients, hours=args.hours, step=1.0, seed=7)
    obs = validate_observations(raw)
    patient_hours = args.patients * args.hours
    print(f"{patient_hours:,} patient-hours, {len(obs.table):,} observations (simulated)")

    grade(validate_observations(simulate(2, hours=24, seed=1)))  # warm up imports
    settings = settings_for("astct2019")
    # The baselines' inputs (outside their timing): the settings and device list as data.
    cfg, devices = copy.deepcopy(settings), tuple(DEVICES)
    times: dict[str, list[float]] = {k: [] for k in ("core", "whole", "as_is", "tuned")}
    for _ in range(args.runs):  # interleaved, so a busy neighbour slows every method alike
        t, (graded, _) = _cpu(
            lambda: grade_arrays(build_states(obs.table, obs.weight_assumed), "astct2019", settings)
        )
        times["core"].append(t)
        t, whole = _cpu(lambda: grade(obs, "astct2019"))
        times["whole"].append(t)
        t, slow = _cpu(lambda: grade_per_row(obs.table, cfg, devices))
        times["as_is"].append(t)
        t, tuned = _cpu(lambda: grade_per_row_tuned(obs.table, cfg, devices))
        times["tuned"].append(t)
    fast = grade_states(obs, ["astct2019"], None)
    # The per-row baselines take the infusion as each patient's first charted time (true
    # of the simulated cohort); a pre-infusion baseline would need a second pass.
    assert not fast["baseline"].any(), "rows before the infusion: the baselines lack them"
    assert (whole.timeline["grade"].to_numpy() == fast["grade"].to_numpy()).all()
    assert (graded.grade == fast["grade"].to_numpy()).all()

    g_fast = fast["grade"].to_numpy()
    fast_pid = fast["patient_id"].astype(str).to_numpy()

    def agreement(pids, grades) -> tuple[bool, int]:
        if len(grades) != len(g_fast):
            return False, 0
        same = (np.asarray(grades) == g_fast) & (np.asarray(pids, dtype=str) == fast_pid)
        return bool(same.all()), int(same.sum())

    ok_slow, n_slow = agreement([r[0] for r in slow], [r[2] for r in slow])
    ok_tuned, n_tuned = agreement(*tuned)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def row(ours: str, base: str, label: str, base_label: str, ok: bool, n_ok: int) -> dict:
        a, b = times[ours], times[base]
        return {
            "benchmark": f"grade {patient_hours:,} patient-hours ({label})",
            "baseline": base_label,
            "ours_cpu_s": [min(a), statistics.median(a)],
            "base_cpu_s": [min(b), statistics.median(b)],
            "ratio_min": min(b) / min(a),
            "ratio_median": statistics.median(b) / statistics.median(a),
            "parity": f"{'identical' if ok else 'MISMATCH'} grades ({n_ok:,} / {len(fast):,})",
            "peak_mb": peak,
        }

    core, whole_ = "ASTCT core", "whole grade()"
    rows = [
        row("core", "as_is", core, "per-row Python as it is", ok_slow, n_slow),
        row("core", "tuned", core, "tuned per-row Python", ok_tuned, n_tuned),
        row("whole", "as_is", whole_, "per-row Python as it is", ok_slow, n_slow),
        row("whole", "tuned", whole_, "tuned per-row Python", ok_tuned, n_tuned),
    ]
    for r in rows:
        if args.json:
            print("BENCH " + json.dumps(r))
        else:
            print(
                f"{r['benchmark']} vs {r['baseline']}: {r['ours_cpu_s'][0]:.2f} s vs "
                f"{r['base_cpu_s'][0]:.2f} s CPU (min of {args.runs}) -> {r['ratio_min']:.1f}x "
                f"min, {r['ratio_median']:.1f}x median; {r['parity']}; peak {peak:.0f} MB"
            )
    if not (ok_slow and ok_tuned):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
