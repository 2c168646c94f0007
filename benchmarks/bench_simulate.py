"""Benchmark: the vectorised population simulation against a per-subject solve_ivp loop.

10,000 virtual subjects, 28 days, a step-up regimen of four IV infusions (0.1, 1, 10,
10 mg, weekly), the default two-compartment model with priming. The same subjects are
simulated twice in one run:

* vectorised: :func:`cytosafe.translate.simulate`, one RK4 system over all subjects
  (step 0.25 h);
* loop: :func:`cytosafe.translate.simulate_ivp` per subject (SciPy ``solve_ivp``, LSODA,
  ``rtol=1e-6``, ``atol=1e-9``, restarted at every dose), over ``--loop-subjects``
  subjects (default: all); with fewer, the loop's time is extrapolated linearly to the
  whole population and the printout says so.

Prints both times, the ratio (target: at least 20x) and the largest difference in IL-6
(relative) and in concentration (relative to each subject's peak) over the compared
subjects, against the tolerance stated in cytosafe.translate.model (1e-3 relative).

    python benchmarks/bench_simulate.py                       # the full comparison
    python benchmarks/bench_simulate.py --loop-subjects 1000  # quicker, extrapolated
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cytosafe.translate import (
    Dose,
    ModelSettings,
    Regimen,
    sample_population,
    simulate,
    simulate_ivp,
)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=28.0)
    parser.add_argument("--loop-subjects", type=int, default=None, help="default: all subjects")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    n = args.subjects
    n_loop = min(args.loop_subjects or n, n)
    t_end = args.days * 24.0
    settings = ModelSettings.default()
    pop = sample_population(n, seed=args.seed)
    schedule = REGIMEN.schedule(pop["body_weight"])

    t0 = time.perf_counter()
    vec = simulate(pop, schedule, t_end_h=t_end, settings=settings, output_step_h=1.0)
    t_vec = time.perf_counter() - t0

    idx = np.linspace(0, n - 1, n_loop).round().astype(int)
    max_il6, max_conc = 0.0, 0.0
    t0 = time.perf_counter()
    for i in idx:
        ref = simulate_ivp(
            {k: v[i] for k, v in pop.items()},
            schedule.subset([i]),
            t_end_h=t_end,
            settings=settings,
            output_step_h=1.0,
            rtol=1e-6,
            atol=1e-9,
        )
        max_il6 = max(max_il6, float(np.max(np.abs(vec.il6[:, i] - ref.il6[:, 0]) / ref.il6[:, 0])))
        c = ref.concentration[:, 0]
        max_conc = max(max_conc, float(np.max(np.abs(vec.concentration[:, i] - c)) / c.max()))
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * n / n_loop

    print(
        f"subjects: {n}, days: {args.days:g}, regimen: {REGIMEN.name} ({len(REGIMEN.doses)} IV doses)"
    )
    print(f"vectorised RK4 (dt 0.25 h):          {t_vec:8.2f} s")
    if n_loop == n:
        print(f"per-subject solve_ivp loop (LSODA):  {t_loop:8.2f} s")
    else:
        print(
            f"per-subject solve_ivp loop (LSODA):  {t_loop:8.2f} s for {n_loop} subjects, "
            f"{t_loop_all:.1f} s extrapolated to {n}"
        )
    ratio = t_loop_all / t_vec
    print(f"ratio: {ratio:.1f}x (target >= 20x) {'OK' if ratio >= 20 else 'BELOW TARGET'}")
    print(
        f"largest difference over {n_loop} subjects: IL-6 {max_il6:.2e} relative, "
        f"concentration {max_conc:.2e} of the peak (tolerance {TOLERANCE:g}) "
        f"{'OK' if max(max_il6, max_conc) < TOLERANCE else 'ABOVE TOLERANCE'}"
    )


if __name__ == "__main__":
    main()
