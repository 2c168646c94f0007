"""The benchmarks against their baselines, as one table (``make bench``).

Runs ``bench_fit.py``, ``bench_grade.py`` and ``bench_simulate.py`` (each in a fresh
process, so each one's peak memory is its own) and the bounded-memory fits of
``bench_fit.py --memory``, and prints one table: benchmark, baseline, CPU seconds of ours
and of the baseline (min of the runs), the CPU ratio baseline / ours at the minimum and the
median of the runs, the parity check and the process's peak resident memory. Every
baseline is what a competent user writes and calls nothing of CytoSafe's (see each
script's docstring).

Usage: ``python benchmarks/run_all.py [--runs 3] [--quick] [--memory 100000 1000000]``
(``--quick``: small sizes, for a smoke run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> list[dict]:
    cmd = [sys.executable, str(HERE / script), "--json", *args]
    print("$ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line[6:]) for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode or not rows:
        rows.append(
            {
                "benchmark": script,
                "baseline": "FAILED",
                "parity": (proc.stderr.strip().splitlines() or ["no output"])[-1][:80],
            }
        )
    return rows


def _fmt_time(v) -> str:
    return f"{v[0]:.2f}" if v else "-"


def table(rows: list[dict]) -> str:
    head = ("benchmark", "baseline", "ours CPU s", "base CPU s", "ratio min / median",
            "parity", "peak MB")  # fmt: skip
    lines = []
    for r in rows:
        if "ratio_min" in r:
            ratio = f"{r['ratio_min']:.1f}x / {r['ratio_median']:.1f}x"
        elif "us_per_curve" in r:
            ratio = f"{r['us_per_curve']:.0f} us per curve"
        else:
            ratio = "-"
        lines.append(
            (
                r["benchmark"],
                r.get("baseline", "-"),
                _fmt_time(r.get("ours_cpu_s")),
                _fmt_time(r.get("base_cpu_s")),
                ratio,
                r.get("parity", "-"),
                f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-",
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(x).ljust(w) for x, w in zip(li, widths, strict=True)) for li in lines]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory", type=int, nargs="*", default=None)
    args = ap.parse_args()
    runs = ["--runs", str(args.runs)]
    rows: list[dict] = []
    if args.quick:
        rows += run("bench_fit.py", "--curves", "300", *runs)
        rows += run("bench_grade.py", "--patients", "200", *runs)
        rows += run("bench_simulate.py", "--subjects", "1000", "--loop-subjects", "10", *runs)
        memory = [20_000] if args.memory is None else args.memory
    else:
        rows += run("bench_fit.py", "--curves", "1000", "10000", *runs)
        rows += run("bench_grade.py", *runs)
        rows += run("bench_simulate.py", *runs)
        memory = [100_000, 1_000_000] if args.memory is None else args.memory
    for n in memory:
        rows += run("bench_fit.py", "--memory", str(n))
    print(
        f"{datetime.date.today()} · {platform.python_implementation()} "
        f"{platform.python_version()} · {os.cpu_count()} CPUs · CPU time (process_time), "
        f"{args.runs} runs each"
    )
    print(table(rows))
    if any(r.get("baseline") == "FAILED" for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
