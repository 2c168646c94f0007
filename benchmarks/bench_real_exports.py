"""CytoSafe's back-calculated concentrations against the vendors' own, on real exports.

For each real export in ``../shared/data/real-exports/`` (see its SOURCES.md) that carries
the vendor's back-calculated concentrations, CytoSafe reads the file, calibrates it with
the vendor's model under three weightings, and prints the median and 90th percentile of
``|CytoSafe / vendor - 1|`` over the samples the vendor quantified, the share of those
samples CytoSafe leaves without a number, and the time. The baseline, measured in the
same run, is the unweighted fit of the same model: what a spreadsheet or a default
``curve_fit`` gives. ``tests/test_real_exports.py`` holds the limits.

Run: ``python benchmarks/bench_real_exports.py``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from cytosafe.curves.calibration import CalibrationSettings, calibrate
from cytosafe.io import read

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-exports"

#: file: (software, the vendor's model, blank handling)
FILES = {
    "tidy-data-4.csv": ("MSD Discovery Workbench 4.0.12", "4PL", "zero_standard"),
    "pone.0187901.s001.csv": ("Luminex xPONENT 3.1", "5PL", "subtract"),
    "pnLINCO20070302A.xls": ("Bio-Plex Manager 4.1", "4PL", "subtract"),
    "10JAN07_plate_1.xls": ("Bio-Plex Manager 4.1", "5PL", "subtract"),
}
WEIGHTINGS = ("1/y2", "1/y", "none")


def agreement(table, model: str, blank: str, weighting: str) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    wells = calibrate(
        table, CalibrationSettings(model=model, blank=blank, weighting=weighting)
    ).wells
    elapsed = time.perf_counter() - start
    use = (
        (wells["sample_type"] == "sample")
        & np.isfinite(wells["vendor_concentration"])
        & (wells["vendor_concentration"] > 0)
        & wells["vendor_flag"].isna()
    )
    ratio = wells.loc[use, "concentration"] / wells.loc[use, "vendor_concentration"]
    return np.abs(ratio.to_numpy(dtype=float) - 1.0), elapsed


def main() -> int:
    missing = [name for name in FILES if not (REAL / name).is_file()]
    if missing:
        print(f"missing real exports in {REAL}: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{'file':24} {'software':32} {'model':5} {'weights':7} {'n':>5} "
          f"{'median':>8} {'p90':>8} {'no number':>9} {'time':>7}")  # fmt: skip
    for name, (software, model, blank) in FILES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = read(REAL / name)
            rows = {w: agreement(table, model, blank, w) for w in WEIGHTINGS}
        for weighting, (err, elapsed) in rows.items():
            print(
                f"{name[:24]:24} {software:32} {model:5} {weighting:7} {err.size:5d} "
                f"{100 * np.nanmedian(err):7.2f}% {100 * np.nanquantile(err, 0.9):7.2f}% "
                f"{100 * np.isnan(err).mean():8.2f}% {elapsed:6.2f}s"
            )
        base = np.nanmedian(rows["none"][0])
        best = np.nanmedian(rows["1/y2"][0])
        print(f"{'':24} median error, unweighted / 1/y^2: {base / best:.1f}x\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
