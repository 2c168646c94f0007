"""Benchmark: ``cytosafe quantify`` on the MSD example, in CPU seconds (issue 16, item 4).

The first step of ``make demo`` (9 MSD plates x 8 analytes, 72 standard curves, the QC
report with every figure) runs as a fresh process, as a user types it; its CPU time (user +
system, from ``getrusage(RUSAGE_CHILDREN)``, so a child's children count too) is compared
with the issue's target of 1.5 s and with the baseline measured in the same run:
``python -c "import pandas"``, what any pandas tool pays to start. Prints the min and median
of the runs, the ratio to the baseline, the number of figures in the report
(:func:`cytosafe.report.page.figure_specs`), and which heavy libraries a quantification
loads (Numba, SciPy's ``stats``, plotly's Python package, SQLAlchemy, FastAPI, openpyxl:
none is needed by this run).

Every child reads compiled bytecode, as an installed copy does (:func:`bytecode_env`).
``--demo`` also times every step of ``make demo`` (the Makefile's recipe, its output
directory moved to a temporary one), each step once per run.

Usage: ``python benchmarks/bench_quantify.py [--runs 3] [--demo] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_CPU_S = 1.5
MSD = "examples/cra-study/msd"
#: Libraries a quantification of a small study should never import (issue 16, item 4).
HEAVY = ("numba", "scipy.stats", "plotly", "sqlalchemy", "fastapi", "openpyxl")


def _cytosafe() -> list[str]:
    script = Path(sys.executable).with_name("cytosafe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cytosafe.cli"]


def quantify_argv(out: Path) -> list[str]:
    """The first line of ``make demo``, writing into ``out`` (its summary printed, as there)."""
    plates = sorted(str(p.relative_to(ROOT)) for p in (ROOT / MSD).glob("plate_*.csv"))
    return [*_cytosafe(), "quantify", *plates, "--sample-map", f"{MSD}/samples.csv",
            "--study-id", "CRA-EX-001", "--out", str(out)]  # fmt: skip


#: The environment of every child: set by :func:`main` (:func:`bytecode_env`).
ENV: dict[str, str] = dict(os.environ)


def bytecode_env(cache: Path) -> dict[str, str]:
    """This environment, with compiled bytecode kept (under ``cache``) and read back.

    An installed package has its ``.pyc`` files (pip compiles them at install), so a user's
    run reads bytecode instead of compiling CytoSafe's modules each time. With
    ``PYTHONDONTWRITEBYTECODE`` set (as in some CI and sandboxed shells) a source checkout
    has none, and every run compiled about 50 modules (0.1 s of CPU) that no installed
    copy compiles; the warm-up run now writes them, into a folder of this benchmark's own
    (``PYTHONPYCACHEPREFIX``) rather than beside the sources. The baseline runs the same way.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def cpu_seconds(argv: list[str]) -> float:
    """CPU time (user + system) of one run of ``argv`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_modules(out: Path) -> list[str]:
    """The heavy libraries loaded by a quantification of the example, run in a child."""
    code = (
        "import sys\nfrom cytosafe.cli import app\n"
        f"sys.argv = {quantify_argv(out)[len(_cytosafe()) - 1 :]!r}\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True, env=ENV
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY"))
    return [m for m in line[6:].split(",") if m]


def demo_steps(out: Path) -> list[tuple[str, list[str]]]:
    """The commands of ``make demo`` (Makefile), writing under ``out`` instead of out/demo."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    bin_dir = str(Path(sys.executable).parent)
    steps = []
    for line in recipe:
        line = line.strip()
        if not line.startswith("$(BIN)/"):
            continue
        line = line.replace("$(BIN)", bin_dir).replace("out/demo", str(out))
        argv = shlex.split(line)
        expanded = []
        for arg in argv:  # the shell's globs (plate_*.csv)
            hits = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(arg)) if "*" in arg else []
            expanded.extend(hits or [arg])
        steps.append((_step_name(expanded[1:]), expanded))
    return steps


def _step_name(args: list[str]) -> str:
    """``quantify msd``, ``aop map``, ``grade observations.csv``: a demo step in a few words."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        if "/" in arg or "." in arg:
            path = Path(arg)
            words.append(path.parent.name if path.name.startswith("plate_") else path.name)
            break
        words.append(arg)
    return " ".join(words)


def _stats(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also time every make demo step")
    parser.add_argument("--json", action="store_true", help="also print BENCH lines (run_all)")
    args = parser.parse_args()
    from cytosafe.report.page import figure_specs

    global ENV
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ENV = bytecode_env(tmp / "pycache")
        baseline = [sys.executable, "-c", "import pandas"]
        cpu_seconds(baseline)  # warm the file cache and the .pyc files once
        cpu_seconds(quantify_argv(tmp / "warm"))
        base, ours = [], []
        for i in range(args.runs):  # interleaved: the machine's load hits both alike
            base.append(cpu_seconds(baseline))
            ours.append(cpu_seconds(quantify_argv(tmp / f"q{i}")))
        html = (tmp / "q0" / "report.html").read_text(encoding="utf-8")
        n_figures = len(figure_specs(html))
        heavy = heavy_modules(tmp / "heavy")
        (b_lo, b_mid), (lo, mid) = _stats(base), _stats(ours)
        load = os.getloadavg()
        print(f"CPU seconds over {args.runs} runs (min / median); load average {load[0]:.2f}")
        print("  (bytecode compiled once by a warm-up run and read back, as an installed copy)")
        print(f'  baseline: python -c "import pandas"      {b_lo:.3f} / {b_mid:.3f} s')
        verdict = "ok" if mid < TARGET_CPU_S else f"OVER the {TARGET_CPU_S} s target"
        print(
            f"  cytosafe quantify (MSD example)           {lo:.3f} / {mid:.3f} s"
            f"  x{lo / b_lo:.1f} / x{mid / b_mid:.1f} the baseline  {verdict}"
        )
        print(f"  report figures: {n_figures}")
        print("  heavy libraries a quantification loads: " + (", ".join(heavy) or "none"))
        rows = [
            {
                "benchmark": "quantify MSD example (CLI)",
                "baseline": 'python -c "import pandas"',
                "ours": [lo, mid],
                "base": [b_lo, b_mid],
                "parity": f"{n_figures} figures; target {TARGET_CPU_S} s: {verdict}",
            }
        ]
        if args.demo:
            steps = demo_steps(tmp / "demo")
            times: dict[str, list[float]] = {name: [] for name, _ in steps}
            for _ in range(args.runs):
                for name, argv in steps:
                    times[name].append(cpu_seconds(argv))
            print("make demo, step by step (CPU seconds, min / median):")
            for name, t in times.items():
                print(f"  {name:40s} {min(t):.3f} / {statistics.median(t):.3f} s")
            totals = [sum(t[i] for t in times.values()) for i in range(args.runs)]
            print(f"  {'all steps':40s} {min(totals):.3f} / {statistics.median(totals):.3f} s")
    if args.json:
        for row in rows:
            print("BENCH " + json.dumps(row))


if __name__ == "__main__":
    main()
