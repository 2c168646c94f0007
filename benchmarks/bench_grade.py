"""Benchmark: one million patient-hours graded by ASTCT 2019, vectorised vs per row.

Ours, timed in the same run as the baselines (CPU time, ``time.process_time``; min and
median of ``--runs``, interleaved so that a busy neighbour slows every method alike):

* **core**: the grade, criterion and estimates of every graded time under ASTCT 2019,
  from the validated observation table (:func:`cytosafe.clinical.grading.grade_table`:
  on this table the fused compiled kernel, one pass over the sorted observations with
  each patient's states carried; without Numba, or with ``CYTOSAFE_COMPILED=0``, the
  state table and the vectorised NumPy rules);
* **core, NumPy only**: the same call with ``CYTOSAFE_COMPILED=0`` (the reference path),
  checked to give the same grades, criteria and estimates;
* **whole grade()**: :func:`cytosafe.clinical.grade`, with the timeline, the episodes,
  the patient summary and the cohort table.

Baselines (they call nothing of CytoSafe's; all start from the same validated table):

* :func:`grade_per_row`, the per-row Python grader as it was written (walk the
  observations in time order, a dict of states per patient, grade at each time);
* :func:`grade_per_row_tuned`, the same rules tuned as a competent Python programmer
  tunes them (columns to lists once, states in locals, one integer code per item);
* for the whole grade(): each grader followed by :func:`summarise_per_row`, the episodes
  and patient summaries a competent user builds from its grades, in one pass over the
  graded times with the same episode rule (runs of grade >= 1 joined across quiet
  periods shorter than the gap).

The first core call of the process (Numba's import and the cached kernels' load, about
0.4 s) is made and printed before the timed runs.

Parity: the grade of every graded time (and its patient, in order) of both graders
against ours, and the baselines' patient summaries (maximum grade, onset, hour of the
maximum, episodes, duration, ongoing, follow-up) against ``grade().patients``.

Memory: the peak resident memory of ``grade()`` alone, in a fresh process that loads
the validated cohort (pickled by this run) and grades it once (``--peak-of``); the
memory the loaded input already held is printed beside it. The baselines never share
that process.

SIMULATED data (``examples/generate_crs_cohort.py``: vitals every hour).

Usage: ``python benchmarks/bench_grade.py [--patients 4167] [--hours 240] [--runs 3]``
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _measure import cpu, peak_mb, ratio_row, reset_peak, status_mb
from cytosafe.clinical import grade
from cytosafe.clinical.criteria import settings_for
from cytosafe.clinical.grading import grade_table
from cytosafe.clinical.observations import DEVICES, validate_observations

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from generate_crs_cohort import simulate

_PRESSORS = ("norepinephrine", "epinephrine", "dopamine", "phenylephrine")


def _astct(state: dict, masked: bool, cfg: dict, gate: list, hours: float) -> tuple[int, bool]:
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
    return grade if present else 0, signs


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


def grade_per_row(table, cfg: dict, devices) -> list[tuple[str, object, int, bool]]:
    """ASTCT 2019 grades at every observation time, one Python step per observation (the
    straightforward version: ``itertuples``, a dict of states, a tuple key per row).
    Returns ``(patient, time, grade, signs)`` per graded time (``signs``: fever, a
    vasopressor or oxygen support, which keep an episode going)."""
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
                out.append((*pending, *((5, True) if death_crs else
                                        _astct(state, masked, cfg, gate, h))))  # fmt: skip
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
        out.append((*pending, *((5, True) if death_crs else _astct(state, masked, cfg, gate, h))))
    return out


def grade_per_row_tuned(table, cfg: dict, devices) -> tuple[list, list, list, list]:
    """The same rules as :func:`grade_per_row`, tuned as a competent Python programmer
    would: whole columns to Python lists once, the settings and the states in local
    variables, one integer code per item looked up in a dict, the grade computed only
    when a (patient, time) ends. Returns the patient, time (ns), grade and signs of each
    graded time."""
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
        append_sign(signs)
        if not _crs_present(gate, t / 3.6e12, signs, fever, gap):
            return 0
        return worst if (fever or masked) and worst > 0 else int(fever)

    out_pid: list = []
    out_time: list[int] = []
    out_grade: list[int] = []
    out_sign: list[bool] = []
    append_pid, append_grade = out_pid.append, out_grade.append
    append_time, append_sign = out_time.append, out_sign.append
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
                append_time(cur_t)
                if death_crs:
                    append_grade(5)
                    append_sign(True)
                else:
                    append_grade(
                        grade(temp, sbp, flow, device, pressors, vaso, masked, gate, cur_t)
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
        append_time(cur_t)
        if death_crs:
            append_grade(5)
            append_sign(True)
        else:
            append_grade(grade(temp, sbp, flow, device, pressors, vaso, masked, gate, cur_t))
    return out_pid, out_time, out_grade, out_sign


def summarise_per_row(pids, times, grades, signs, gap: float) -> dict:
    """Episodes and patient summaries from per-row grades, in one pass over the graded
    times (what a user of a per-row grader writes beside it).

    An episode is a run of grade >= 1, joined to the one before unless a *break* lay
    between them: a time quiet (no fever, vasopressor or oxygen) for ``gap`` hours or
    more, or the first time with a sign after such a quiet period. It ends at the time
    after its last graded one (or at that one, ongoing, when it is the patient's last).
    Hours are counted from the patient's first time (the infusion, in this cohort).

    Returns ``{patient: (max_grade, onset, hours_of_max, n_episodes, duration, ongoing,
    followup)}``.
    """
    out = {}
    nan = math.nan
    cur = None
    t0 = max_g = onset = at_max = n_ep = dur = ep_on = last_pos = after = h = 0
    in_ep = broke = prev_quiet = prev_pos = False
    quiet_from = 0.0

    def close():
        n, d = n_ep, dur
        if in_ep:
            n += 1
            d += (after if after is not None else last_pos) - ep_on
        return (max_g, onset, at_max, n, d if n else nan, in_ep and prev_pos, h)

    for pid, t, g, sign in zip(pids, times, grades, signs, strict=True):
        if pid != cur:
            if cur is not None:
                out[cur] = close()
            cur, t0 = pid, t
            max_g, onset, at_max, n_ep, dur = 0, nan, nan, 0, 0.0
            in_ep = broke = prev_quiet = prev_pos = False
            ep_on, last_pos, after, quiet_from = 0.0, 0.0, None, 0.0
        h = (t - t0) / 3.6e12
        quiet = not (sign or g >= 1)
        if quiet:
            if not prev_quiet:
                quiet_from = h
            brk = h - quiet_from >= gap
        else:
            brk = prev_quiet and h - quiet_from >= gap
        prev_quiet = quiet
        if brk:
            broke = True
        if g >= 1:
            if g > max_g:
                max_g, at_max = g, h
            if onset != onset:  # NaN: the first time graded
                onset = h
            if not prev_pos and not (in_ep and not broke):
                if in_ep:  # the episode before ended at the time after its last grade
                    n_ep += 1
                    dur += after - ep_on
                in_ep, ep_on = True, h
            last_pos, after, broke, prev_pos = h, None, False, True
        else:
            if prev_pos:
                after = h
            prev_pos = False
    if cur is not None:
        out[cur] = close()
    return out


_SUMMARY = ("max_grade", "onset_hours", "hours_of_max_grade", "n_episodes", "duration_hours",
            "ongoing_at_last_observation", "followup_hours")  # fmt: skip


def _same_summaries(ours, theirs: dict) -> tuple[bool, int]:
    """Whether the baseline's summaries equal ours (NaN equal to NaN); patients agreeing."""
    mine = ours.set_index("patient_id")[list(_SUMMARY)]
    if set(mine.index) != set(theirs):
        return False, 0
    other = np.array([theirs[p] for p in mine.index], dtype=float)
    a = mine.to_numpy(dtype=float)
    same = ((a == other) | (np.isnan(a) & np.isnan(other))).all(axis=1)
    return bool(same.all()), int(same.sum())


def _columns(rows: list[tuple]) -> tuple[list, ...]:
    """The as-is grader's ``(patient, time, grade, signs)`` rows as four lists."""
    return (
        [r[0] for r in rows],
        [r[1].value for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


def _numpy_only(obs, settings):
    """The core on the NumPy path (``CYTOSAFE_COMPILED=0``: no compiled kernel)."""
    before = os.environ.get("CYTOSAFE_COMPILED")
    os.environ["CYTOSAFE_COMPILED"] = "0"
    try:
        return grade_table(obs.table, "astct2019", settings, obs.weight_assumed)
    finally:
        if before is None:
            del os.environ["CYTOSAFE_COMPILED"]
        else:
            os.environ["CYTOSAFE_COMPILED"] = before


def _peak_of(path: str) -> None:
    """In this fresh process: load the validated cohort, grade it once, print the peak
    resident memory while grading (the loaded input included) and what the input holds.
    Where the peak cannot be reset, it is the process's (loading included)."""
    with open(path, "rb") as fh:
        obs = pickle.load(fh)
    gc.collect()
    loaded = status_mb("VmRSS")
    reset = reset_peak()
    grade(obs, "astct2019")
    peak = status_mb("VmHWM") if reset else None
    if peak is None:
        peak = peak_mb()
    print(json.dumps({"input_mb": loaded or float("nan"), "peak_mb": peak}))


def _peak_in_fresh_process(obs) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "observations.pkl"
        with open(path, "wb") as fh:
            pickle.dump(obs, fh)
        proc = subprocess.run(
            [sys.executable, __file__, "--peak-of", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4167)
    parser.add_argument("--hours", type=int, default=240)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_of:
        _peak_of(args.peak_of)
        return
    raw = simulate(args.patients, hours=args.hours, step=1.0, seed=7)
    obs = validate_observations(raw)
    del raw
    patient_hours = args.patients * args.hours
    print(f"{patient_hours:,} patient-hours, {len(obs.table):,} observations (simulated)")
    memory = _peak_in_fresh_process(obs)

    grade(validate_observations(simulate(2, hours=24, seed=1)))  # warm up imports
    settings = settings_for("astct2019")
    # once per process: importing Numba and loading the cached kernels (said, not hidden)
    first, _ = cpu(lambda: grade_table(obs.table, "astct2019", settings, obs.weight_assumed))
    # The baselines' inputs (outside their timing): the settings and device list as data.
    cfg, devices = copy.deepcopy(settings), tuple(DEVICES)
    gap = float(cfg["episode_gap_hours"])
    keys = ("core", "core_numpy", "whole", "as_is", "tuned", "as_is_whole", "tuned_whole")
    times: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(args.runs):  # interleaved, so a busy neighbour slows every method alike
        t, graded = cpu(lambda: grade_table(obs.table, "astct2019", settings, obs.weight_assumed))
        times["core"].append(t)
        t, graded_numpy = cpu(lambda: _numpy_only(obs, settings))
        times["core_numpy"].append(t)
        t, whole = cpu(lambda: grade(obs, "astct2019"))
        times["whole"].append(t)
        t, slow = cpu(lambda: grade_per_row(obs.table, cfg, devices))
        times["as_is"].append(t)
        t_sum, slow_summary = cpu(lambda rows=slow: summarise_per_row(*_columns(rows), gap))
        times["as_is_whole"].append(t + t_sum)
        t, tuned = cpu(lambda: grade_per_row_tuned(obs.table, cfg, devices))
        times["tuned"].append(t)
        t_sum, tuned_summary = cpu(lambda cols=tuned: summarise_per_row(*cols, gap))
        times["tuned_whole"].append(t + t_sum)
    timeline = whole.timeline
    # The per-row baselines take the infusion as each patient's first charted time (true
    # of the simulated cohort); a pre-infusion baseline would need a second pass.
    assert not timeline["baseline"].any(), "rows before the infusion: the baselines lack them"
    g_fast = timeline["grade"].to_numpy()
    assert (graded.grade == g_fast).all(), "the core and grade() disagree"
    for name in ("grade", "criterion", "estimates"):  # the kernel and its NumPy reference
        a, b = getattr(graded, name), getattr(graded_numpy, name)
        same = np.array_equal(*((x.to_array() if hasattr(x, "to_array") else x) for x in (a, b)))
        assert same, f"the compiled and NumPy cores disagree on {name}"
    fast_pid = timeline["patient_id"].astype(str).to_numpy()

    def agreement(pids, grades) -> tuple[bool, int]:
        if len(grades) != len(g_fast):
            return False, 0
        same = (np.asarray(grades) == g_fast) & (np.asarray(pids, dtype=str) == fast_pid)
        return bool(same.all()), int(same.sum())

    ok_slow, n_slow = agreement([r[0] for r in slow], [r[2] for r in slow])
    ok_tuned, n_tuned = agreement(tuned[0], tuned[2])
    ok_sum_slow, n_sum_slow = _same_summaries(whole.patients, slow_summary)
    ok_sum_tuned, n_sum_tuned = _same_summaries(whole.patients, tuned_summary)
    n_patients = len(whole.patients)

    def row(ours: str, base: str, label: str, base_label: str, parity: str) -> dict:
        return ratio_row(
            f"grade {patient_hours:,} patient-hours ({label})",
            base_label,
            times[ours],
            times[base],
            parity,
            memory["peak_mb"],
            input_mb=memory["input_mb"],
        )

    def grades(ok: bool, n_ok: int) -> str:
        return f"{'identical' if ok else 'MISMATCH'} grades ({n_ok:,} / {len(g_fast):,})"

    def summaries(ok: bool, n_ok: int, ok_g: bool, n_g: int) -> str:
        return (
            f"{grades(ok_g, n_g)}, {'identical' if ok else 'MISMATCH'} patient summaries "
            f"({n_ok:,} / {n_patients:,})"
        )

    core, whole_ = "ASTCT core", "whole grade()"
    rows = [
        row("core", "as_is", core, "per-row Python as it was", grades(ok_slow, n_slow)),
        row("core", "tuned", core, "tuned per-row Python", grades(ok_tuned, n_tuned)),
        row("core_numpy", "tuned", core + ", NumPy only", "tuned per-row Python",
            grades(ok_tuned, n_tuned)),
        row("whole", "as_is_whole", whole_, "per-row Python as it was + per-row summaries",
            summaries(ok_sum_slow, n_sum_slow, ok_slow, n_slow)),
        row("whole", "tuned_whole", whole_, "tuned per-row Python + per-row summaries",
            summaries(ok_sum_tuned, n_sum_tuned, ok_tuned, n_tuned)),
    ]  # fmt: skip
    for r in rows:
        if args.json:
            print("BENCH " + json.dumps(r))
        else:
            print(
                f"{r['benchmark']} vs {r['baseline']}: {r['ours_cpu_s'][0]:.3f} s vs "
                f"{r['base_cpu_s'][0]:.2f} s CPU (min of {args.runs}) -> {r['ratio_min']:.1f}x "
                f"min, {r['ratio_median']:.1f}x median; {r['parity']}"
            )
    print(f"first core call of the process (Numba import and kernel load included): {first:.2f} s")
    w = times["whole"]
    print(
        f"grade() alone on {patient_hours:,} patient-hours: {min(w):.2f} s min, "
        f"{statistics.median(w):.2f} s median CPU; peak {memory['peak_mb']:.0f} MB in a fresh "
        f"process, of which {memory['input_mb']:.0f} MB the loaded observations"
    )
    if not (ok_slow and ok_tuned and ok_sum_slow and ok_sum_tuned):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
