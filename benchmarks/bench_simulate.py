"""Benchmark: the vectorised population simulation against a per-subject solve_ivp loop.

10,000 virtual subjects, 28 days, a step-up regimen of four IV infusions (0.1, 1, 10,
10 mg, weekly, 4 h each), the default model (two compartments, Emax stimulation, priming
pool). The same subjects are simulated, in the same run, by:

* vectorised: :func:`cytosafe.translate.simulate` over all subjects at once (step 0.25 h;
  exact PK steps, RK4 on the pool and IL-6), through the kernel ``--kernel`` chooses
  (``auto``: the compiled one from 2,000 subjects where Numba is installed; ``numpy``
  measures the NumPy path);
* baselines: what a competent SciPy user writes and which calls nothing of CytoSafe's: the
  model's right-hand side for ONE subject in plain Python floats (:func:`subject_rhs`)
  and :func:`scipy.integrate.solve_ivp` (LSODA, ``rtol=1e-6``), restarted at every infusion
  start and end, per subject, over ``--loop-subjects`` subjects evenly spread over the
  population (default 300); its CPU time per subject is scaled to the whole population
  (printed as such). Two absolute tolerances, each a row: ``atol=1e-9`` (the reference
  row of the README) and SciPy's default ``atol=1e-6`` (what a user who sets only ``rtol``
  gets; about a fifth faster, and still within 2e-5 of a tight solution).

CPU time (``time.process_time``), 3 runs each, interleaved; the ratio is baseline /
vectorised at the minimum and at the median. Parity: the largest difference in IL-6
(relative) and in concentration (relative to each subject's peak) between the two over
the compared subjects, against the tolerance stated in cytosafe.translate.model (1e-3).

    python benchmarks/bench_simulate.py [--subjects 10000] [--loop-subjects 300] [--runs 3]
        [--kernel auto|numpy|compiled]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from scipy.integrate import solve_ivp

from _measure import peak_mb, ratio_row
from cytosafe.translate import Dose, ModelSettings, Regimen, sample_population, simulate
from cytosafe.translate.model import _use_compiled

REGIMEN = Regimen(
    "step-up",
    (
        Dose(0.0, 0.1, "mg", "iv", 4.0),
        Dose(7 * 24.0, 1.0, "mg", "iv", 4.0),
        Dose(14 * 24.0, 10.0, "mg", "iv", 4.0),
        Dose(21 * 24.0, 10.0, "mg", "iv", 4.0),
    ),
)
TOLERANCE = 1e-3
#: The baselines' absolute tolerances: the README's reference row, and SciPy's default.
ATOLS = {"atol 1e-9": 1e-9, "default atol": 1e-6}


# --- the baseline: plain Python and SciPy, nothing from CytoSafe ----------------------


def subject_rhs(t, y, rate, P):
    """Two-compartment PK with an Emax T-cell stimulus, a priming pool and IL-6."""
    ad, a1, a2, _, pool, il6 = y
    c = max(a1 / P["v1"], 0.0)
    ch = c ** P["hill"]
    s = P["emax"] * ch / (ch + P["ec50h"])
    k10, k12, k21 = P["cl"] / P["v1"], P["q"] / P["v1"], P["q"] / P["v2"]
    absorbed = P["ka"] * ad
    return [
        -absorbed,
        absorbed + rate - (k10 + k12) * a1 + k21 * a2,
        k12 * a1 - k21 * a2,
        k10 * a1,
        P["k_rec"] * (1.0 - pool) - P["k_dep"] * s * pool,
        P["k_el"] * (P["baseline"] - il6) + P["k_prod"] * s * pool,
    ]


def simulate_subject(P, starts, amounts, hours, t_end, t_out, atol=1e-9):
    """Concentration (ng/mL) and IL-6 (pg/mL) at ``t_out`` for one subject's infusions."""
    P = dict(P, ec50h=P["ec50"] ** P["hill"])
    ends = [s + h for s, h in zip(starts, hours, strict=True)]
    # Only the span simulated: a dose starting or ending after t_end would add a segment
    # whose first output (t_end) is already the last one.
    cuts = sorted({0.0, t_end, *(t for t in (*starts, *ends) if t < t_end)})
    y = [0.0, 0.0, 0.0, 0.0, 1.0, P["baseline"]]
    conc, il6 = [], []
    for a, b in itertools.pairwise(cuts):
        rate = sum(
            amt / h for s, e, amt, h in zip(starts, ends, amounts, hours, strict=True) if s <= a < e
        )
        keep = [t for t in t_out if a <= t < b]
        sol = solve_ivp(
            subject_rhs, (a, b), y, method="LSODA", rtol=1e-6, atol=atol,
            t_eval=[*keep, b], args=(rate, P),
        )  # fmt: skip
        conc.extend(sol.y[1, :-1] / P["v1"])
        il6.extend(sol.y[5, :-1])
        y = sol.y[:, -1]
    if t_out and t_out[-1] == t_end:
        conc.append(y[1] / P["v1"])
        il6.append(y[5])
    return np.array(conc), np.array(il6)


# --- measurement -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=28.0)
    parser.add_argument("--loop-subjects", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kernel", choices=("auto", "numpy", "compiled"), default="auto")
    args = parser.parse_args()

    n = args.subjects
    n_loop = min(args.loop_subjects, n)
    t_end = args.days * 24.0
    settings = ModelSettings.default()
    pop = sample_population(n, seed=args.seed)
    schedule = REGIMEN.schedule(pop["body_weight"])
    idx = np.linspace(0, n - 1, n_loop).round().astype(int)
    # The baseline's inputs as plain Python data (outside its timing).
    subjects = [{k: float(v[i]) for k, v in pop.items()} for i in idx]
    starts = [float(t) for t in schedule.times_h]
    hours = [float(h) for h in schedule.durations_h]
    amounts = [[float(a) for a in schedule.amounts_ug[:, i]] for i in idx]
    t_out = [float(t) for t in np.arange(0.0, t_end + 1e-9, 1.0)]

    kernel = "compiled" if _use_compiled(args.kernel, n) else "numpy"
    t_vec, t_loop = [], {name: [] for name in ATOLS}
    ref = {}
    for _ in range(args.runs):  # interleaved, so a busy neighbour slows every method alike
        t0 = time.process_time()
        vec = simulate(
            pop, schedule, t_end_h=t_end, settings=settings, output_step_h=1.0, kernel=args.kernel
        )
        t_vec.append(time.process_time() - t0)
        for name, atol in ATOLS.items():
            t0 = time.process_time()
            ref[name] = [
                simulate_subject(P, starts, amt, hours, t_end, t_out, atol)
                for P, amt in zip(subjects, amounts, strict=True)
            ]
            t_loop[name].append((time.process_time() - t0) * n / n_loop)

    ok = True
    rows = []
    for name in ATOLS:
        max_il6 = max_conc = 0.0
        for j, i in enumerate(idx):
            c, il6 = ref[name][j]
            max_il6 = max(max_il6, float(np.max(np.abs(vec.il6[:, i] - il6) / il6)))
            max_conc = max(max_conc, float(np.max(np.abs(vec.concentration[:, i] - c)) / c.max()))
        ok &= max(max_il6, max_conc) < TOLERANCE
        base = t_loop[name]
        rows.append(
            ratio_row(
                f"simulate {n:,} subjects x {args.days:g} days ({kernel} kernel)",
                f"solve_ivp per subject (LSODA, rtol 1e-6, {name}, plain-Python RHS; "
                f"{n_loop} subjects scaled to {n:,})",
                t_vec,
                base,
                f"IL-6 within {max_il6:.1e} rel., conc. {max_conc:.1e} of peak "
                f"({'OK' if max(max_il6, max_conc) < TOLERANCE else 'ABOVE'} tol. "
                f"{TOLERANCE:g})",
                peak_mb(),
            )
        )
    for row in rows:
        if args.json:
            print("BENCH " + json.dumps(row))
        else:
            print(
                f"{row['benchmark']}: vectorised {row['ours_cpu_s'][0]:.2f} s CPU, baseline "
                f"{row['base_cpu_s'][0]:.1f} s ({row['baseline']}); ratio "
                f"{row['ratio_min']:.0f}x min, {row['ratio_median']:.0f}x median of "
                f"{args.runs}; {row['parity']}; peak {row['peak_mb']:.0f} MB"
            )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
