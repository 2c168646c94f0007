"""Benchmark: ``cytosafe analyze`` of the 60-plate study with 1 and 2 worker processes.

The study is ``bench_analyze.py``'s (20 donors x 12 treatments x 8 concentrations x 10
analytes, SIMULATED, seeded; imported, not copied). Each run is a fresh process, as a user
starts the command, running :func:`cytosafe.workflows.run_analysis` with ``workers=N``
(tables, settings and report written). Parallelism is about wall time, so the claim is the
wall-time ratio 1 worker / N workers; CPU time (user + system of the run and every process
it started, from ``getrusage(RUSAGE_CHILDREN)``) is printed too: the workers' start-up is
paid in CPU. Min and median of the runs; the runs alternate between the worker counts so
that a shared machine's load falls on both alike. Also prints the quantification stage's
own wall time (the part that is split by plate) and checks that every table is
byte-identical to one worker's.

Usage: ``python benchmarks/bench_workers.py [--runs 3] [--workers 1 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare(folder: Path) -> Path:
    """Write bench_analyze's simulated study (tidy export + study file) into ``folder``."""
    sys.path.insert(0, str(HERE))
    from bench_analyze import ANALYTES, STUDY, treatments
    from cytosafe.hazard.simulate import simulate_study
    from cytosafe.io.tidy import write_tidy

    tr = treatments()
    m, _, _ = simulate_study(
        n_donors=20, analytes=ANALYTES, treatments=tr, seed=2026, study_id="BENCH-001"
    )
    write_tidy(m, folder / "measurements.csv")
    blocks = [
        f'\n[[treatment]]\nname = "{t.name}"\nrole = "{t.role}"\n'
        f"concentrations = {list(t.concentrations)}\n"
        f'unit = "{"ug/mL" if max(t.concentrations) > 0 else ""}"\n'
        + ("benchmark = true\n" if t.benchmark else "")
        for t in tr
    ]
    (folder / "study.toml").write_text(STUDY.format(treatments="".join(blocks)), encoding="utf-8")
    print(f"study: {m['plate_id'].nunique()} plates, {len(m):,} well x analyte rows")
    return folder / "study.toml"


def one(study: Path, out: Path, workers: int) -> None:
    """A single run (in the child process): analyze, then stop the forkserver so that its
    workers' CPU time is counted in this process's children."""
    import multiprocessing.forkserver as forkserver

    from cytosafe.workflows import run_analysis

    t = time.perf_counter()
    result = run_analysis(study, out=out, workers=workers)
    wall = time.perf_counter() - t
    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:  # private in 3.11: without it the workers' CPU is not counted
        stop()
    print("RUN " + json.dumps({"wall": wall, **result.timings}))


def measure(study: Path, out: Path, workers: int) -> dict:
    """Wall and CPU time of one fresh process running the analysis."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--one", str(study), str(out), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RUN "))
    return {"wall": wall, "cpu": cpu, **{f"in_{k}": v for k, v in json.loads(line[4:]).items()}}


def same_tables(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.csv"))
    return bool(names) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--one":
        one(Path(argv[1]), Path(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        study = prepare(folder)
        runs: dict[int, list[dict]] = {n: [] for n in args.workers}
        for i in range(args.runs):
            for n in args.workers:
                runs[n].append(measure(study, folder / f"out-{n}-{i}", n))
        first = args.workers[0]
        identical = all(
            same_tables(folder / f"out-{first}-0", folder / f"out-{n}-{i}")
            for n in args.workers
            for i in range(args.runs)
        )
    print(f"{os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.1f}; {args.runs} runs each")
    print(
        f"{'workers':>7}  {'wall min':>8} {'median':>7}  {'CPU min':>8} {'median':>7}  "
        f"{'quantify stage min':>18} {'median':>7}"
    )
    summary = {}
    for n, rows in runs.items():
        wall = [r["wall"] for r in rows]
        cpu = [r["cpu"] for r in rows]
        q = [r["in_quantify"] for r in rows]
        summary[n] = (min(wall), statistics.median(wall))
        print(
            f"{n:>7}  {min(wall):7.2f}s {statistics.median(wall):6.2f}s  {min(cpu):7.2f}s "
            f"{statistics.median(cpu):6.2f}s  {min(q):17.2f}s {statistics.median(q):6.2f}s"
        )
    base = summary[first]
    for n in args.workers[1:]:
        print(
            f"wall-time ratio {first} / {n} workers: {base[0] / summary[n][0]:.2f}x (min), "
            f"{base[1] / summary[n][1]:.2f}x (median)"
        )
    print("tables byte-identical to " + f"{first} worker(s): " + ("yes" if identical else "NO"))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
