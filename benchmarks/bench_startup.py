"""Benchmark: how long the command line takes to start, in CPU seconds.

``cytosafe --help`` and ``cytosafe --version`` must answer at once (issue 13's target:
under 0.3 s of CPU each). Each command runs as a fresh process, as a user types it; its
CPU time (user + system, from ``getrusage(RUSAGE_CHILDREN)``) is compared with the
baseline measured in the same run: ``python -c "import cytosafe"``, the cost of starting
Python and importing the bare package. Prints min and median of the runs and the ratio of
each to the baseline, and which heavy libraries ``--help`` loaded (there should be none).

Usage: ``python benchmarks/bench_startup.py [--runs 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

TARGET_CPU_S = 0.3
HEAVY = ("numpy", "pandas", "scipy", "sqlalchemy", "fastapi", "plotly", "statsmodels")


def _cytosafe() -> list[str]:
    script = Path(sys.executable).with_name("cytosafe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cytosafe.cli"]


def cpu_seconds(argv: list[str]) -> float:
    """CPU time (user + system) of one run of ``argv`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_modules_loaded() -> list[str]:
    """The heavy libraries that importing the CLI (as ``--help`` does) loads."""
    code = f"import sys, cytosafe.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cases = {
        'baseline: python -c "import cytosafe"': [sys.executable, "-c", "import cytosafe"],
        "cytosafe --help": [*_cytosafe(), "--help"],
        "cytosafe --version": [*_cytosafe(), "--version"],
    }
    for argv in cases.values():  # warm the file cache and the .pyc files once
        cpu_seconds(argv)
    times = {name: [cpu_seconds(argv) for _ in range(args.runs)] for name, argv in cases.items()}
    base = times['baseline: python -c "import cytosafe"']
    print(f"CPU seconds over {args.runs} runs (min / median), ratio to the baseline:")
    for name, t in times.items():
        lo, mid = min(t), statistics.median(t)
        ratio = f"  ×{lo / min(base):.1f} / ×{mid / statistics.median(base):.1f}"
        verdict = ""
        if name.startswith("cytosafe"):
            verdict = "  ok" if mid < TARGET_CPU_S else f"  OVER the {TARGET_CPU_S} s target"
        print(f"  {name:40s} {lo:.3f} / {mid:.3f} s{ratio}{verdict}")
    heavy = heavy_modules_loaded()
    print("heavy libraries loaded by the CLI at start: " + (", ".join(heavy) or "none"))


if __name__ == "__main__":
    main()
