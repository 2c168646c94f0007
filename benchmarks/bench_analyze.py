"""End-to-end benchmark of ``cytosafe analyze``: 20 donors x 12 treatments x 8 concentrations
x 10 analytes (SIMULATED, seeded), from a tidy export and a study file to tables and report.

Target (issue 3): under 10 s on a 2-core machine, report under 15 MB.

    python benchmarks/bench_analyze.py [--pdf] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cytosafe.hazard.simulate import SimTreatment, simulate_study

ANALYTES = ("IL-2", "IL-6", "IL-8", "IL-10", "TNF", "IFN-g", "IL-1b", "GM-CSF", "IL-4", "IL-17A")
CONC = tuple(float(x) for x in np.logspace(-3, 2, 8))


def treatments() -> list[SimTreatment]:
    """Medium plus 12 treatments at 8 concentrations each."""
    out = [SimTreatment("medium", "negative_control", (0.0,))]
    out.append(SimTreatment("isotype", "isotype_control", CONC))
    out.append(SimTreatment("anti-CD3", "positive_control", CONC, fold=80.0, ec50=0.01))
    out.append(
        SimTreatment("CD28-SA", "positive_control", CONC, fold=20.0, ec50=1.0, responders=0.8)
    )
    out.append(SimTreatment("low-risk-mAb", "test", CONC, fold=1.5, ec50=10.0, benchmark=True))
    for i in range(8):
        fold = (1.0, 1.0, 3.0, 5.0, 10.0, 20.0, 40.0, 60.0)[i]
        out.append(
            SimTreatment(
                f"TA-{i + 1}",
                "test",
                CONC,
                fold=fold,
                ec50=0.1 * 3**i,
                analytes=ANALYTES[: 3 + i],
                responders=0.5 + 0.06 * i,
            )
        )
    return out


STUDY = """[study]
id = "BENCH-001"
title = "SIMULATED benchmark study"
{treatments}
[analysis]
inputs = ["measurements.csv"]
model = "4PL"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", action="store_true", help="also print the PDF (timed apart)")
    parser.add_argument("--keep", type=Path, help="write the study and results here")
    args = parser.parse_args(argv)

    from cytosafe import analyze
    from cytosafe.io.tidy import write_tidy

    t0 = time.perf_counter()
    tr = treatments()
    m, _, _ = simulate_study(
        n_donors=20, analytes=ANALYTES, treatments=tr, seed=2026, study_id="BENCH-001"
    )
    t_sim = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_tidy(m, folder / "measurements.csv")
        blocks = []
        for t in tr:
            blocks.append(
                f'\n[[treatment]]\nname = "{t.name}"\nrole = "{t.role}"\n'
                f"concentrations = {list(t.concentrations)}\n"
                f'unit = "{"ug/mL" if max(t.concentrations) > 0 else ""}"\n'
                + ("benchmark = true\n" if t.benchmark else "")
            )
        (folder / "study.toml").write_text(
            STUDY.format(treatments="".join(blocks)), encoding="utf-8"
        )
        n_plates = m["plate_id"].nunique()
        print(
            f"study: 20 donors x {len(tr) - 1} treatments x {len(CONC)} concentrations x "
            f"{len(ANALYTES)} analytes; {n_plates} plates, {len(m):,} well x analyte rows "
            f"(simulated in {t_sim:.1f} s)"
        )
        t = time.perf_counter()
        result = analyze(folder / "study.toml", out=folder / "analysis", pdf=args.pdf)
        total = time.perf_counter() - t
        timings = dict(result.timings)
        pdf_time = timings.pop("pdf", None)
        wall = total - (pdf_time or 0.0)
        print(f"wall time (analyze, without PDF): {wall:.2f} s on {os.cpu_count()} CPU(s)")
        for stage, sec in timings.items():
            print(f"  {stage:<10} {sec:6.2f} s  {100 * sec / wall:5.1f}%")
        if pdf_time is not None:
            print(
                f"  pdf        {pdf_time:6.2f} s  (headless Chromium; not in the wall time above)"
            )
        size = (folder / "analysis" / "report.html").stat().st_size
        print(f"report.html: {size / 1e6:.1f} MB")
        if args.pdf:
            print(f"report.pdf: {(folder / 'analysis' / 'report.pdf').stat().st_size / 1e6:.1f} MB")
        hz = result.hazard.hazard
        print(
            "hazard calls: " + ", ".join(f"{r.treatment} {r.hazard_class}" for r in hz.itertuples())
        )
        ok = wall < 10 and size < 15e6
        print("target (< 10 s, < 15 MB): " + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
