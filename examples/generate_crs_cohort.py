"""Generate the SIMULATED example CRS cohort in ``examples/crs-cohort/``.

SIMULATED DATA - NOT REAL PATIENTS. Every value is drawn from a seeded random generator
to look like the vital-sign and treatment charts of patients after a CAR-T infusion, so
that ``cytosafe grade`` has something to grade (``make demo``). The same seed always gives
the same bytes.

``labs.csv`` holds SIMULATED laboratory kinetics of the same patients (for ``cytosafe
predict``), drawn from a second random stream seeded from the same seed, after the vital
signs, so ``observations.csv`` is byte for byte what it was before laboratory values were
added. Their link to severity is made up and stated in :func:`simulate_labs`; it is no
model of real patients.

Usage: ``python examples/generate_crs_cohort.py [--patients 60] [--seed 20240501] [--out DIR]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-05-01T08:00")
COLUMNS = ["patient_id", "time", "item", "value", "unit"]


def simulate(
    n_patients: int,
    *,
    hours: int = 240,
    step: float = 4.0,
    seed: int = 20240501,
    truth: list[dict] | None = None,
) -> pd.DataFrame:
    """A simulated observation table (see the module docstring): vitals every ``step`` hours.

    ``truth``, when given, receives each patient's simulated course (start, peak grade,
    onset, length, worst hour); it draws nothing, so the table is the same with or without.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    times = np.arange(0.0, hours + 1e-9, step)
    for i in range(n_patients):
        pid = f"SIM-{i + 1:04d}"
        start = T0 + pd.Timedelta(days=int(rng.integers(0, 60)))

        def add(h: float, item: str, value: object, unit: str = "", pid=pid, start=start) -> None:
            rows.append(
                (pid, (start + pd.Timedelta(hours=float(h))).isoformat(), item, value, unit)
            )

        add(0, "infusion", "SIM-CAR-T")
        add(0, "weight", round(float(rng.normal(75, 12)), 1), "kg")
        peak = int(rng.choice([0, 1, 2, 3, 4], p=[0.2, 0.35, 0.25, 0.15, 0.05]))
        onset = float(np.clip(rng.lognormal(np.log(40), 0.5), 6, 150))
        length = float(rng.uniform(48, 144))
        worst_at = onset + length * float(rng.uniform(0.2, 0.5))
        device, rate_ne, rate_epi = "room_air", 0.0, 0.0
        toci_given = False
        died = peak == 4 and rng.random() < 0.3
        if truth is not None:
            truth.append(
                dict(pid=pid, start=start, peak=peak, onset=onset, length=length, worst=worst_at)
            )
        for h in times:
            in_crs = peak > 0 and onset <= h < onset + length
            severe = in_crs and h >= worst_at and h < worst_at + length * 0.4
            if died and h > worst_at + 24:
                add(h, "death", "CRS")
                break
            temp = rng.normal(36.8, 0.25)
            if in_crs and not toci_given:
                temp = rng.normal(38.7, 0.5)
            elif in_crs:
                temp = rng.normal(37.6, 0.4)
            add(h, "temperature", round(float(temp), 1), "C")
            sbp = rng.normal(118, 8) - (30 if severe and peak >= 2 else 0)
            add(h, "systolic_bp", round(float(sbp)), "mmHg")
            add(
                h,
                "spo2",
                round(float(np.clip(rng.normal(97 - (5 if severe else 0), 1.5), 80, 100))),
                "%",
            )
            want = "room_air"
            if severe and peak == 2:
                want = "nasal_cannula"
            elif severe and peak == 3:
                want = "simple_face_mask"
            elif severe and peak == 4:
                want = "bipap"
            if want != device:
                add(h, "oxygen_device", want)
                if want == "nasal_cannula":
                    add(h, "oxygen_flow", int(rng.integers(1, 7)), "L/min")
                device = want
            ne = round(float(rng.uniform(3, 25)), 1) if severe and peak >= 3 else 0.0
            if (ne > 0) != (rate_ne > 0):
                add(h, "norepinephrine", ne, "ug/min")
                rate_ne = ne
            epi = 5.0 if severe and peak == 4 else 0.0
            if epi != rate_epi:
                add(h, "epinephrine", epi, "ug/min")
                rate_epi = epi
            if in_crs and not toci_given and h >= onset + 8 and peak >= 2:
                add(h + 0.5, "tocilizumab", 8, "mg/kg")
                toci_given = True
            if in_crs and temp >= 38.5 and rng.random() < 0.3:
                add(h + 0.25, "antipyretic", 1000, "mg")
    return pd.DataFrame(rows, columns=COLUMNS)


#: Laboratory draws, hours after the infusion: (hours, items). Before the infusion: the
#: lymphodepletion day (-120 h) and day -1; cytokines early (12, 24, 36 h).
LAB_SCHEDULE = (
    (-120.0, ("ldh", "crp", "platelets", "ferritin", "creatinine")),
    (-24.0, ("ldh", "crp", "platelets", "ferritin", "creatinine")),
    (12.0, ("il6", "mcp1", "ifng")),
    (24.0, ("ldh", "crp", "platelets", "ferritin", "creatinine", "il6", "mcp1", "ifng")),
    (36.0, ("il6", "mcp1", "ifng")),
    (72.0, ("ldh", "crp", "platelets", "ferritin", "creatinine", "il6")),
)
LAB_UNITS = {"ldh": "U/L", "crp": "mg/L", "platelets": "10^9/L", "ferritin": "ng/mL",
             "creatinine": "mg/dL", "il6": "pg/mL", "mcp1": "pg/mL", "ifng": "pg/mL"}  # fmt: skip
#: Median of each value in a patient without CRS, and its log-normal spread.
LAB_BASE = {"ldh": (230.0, 0.25), "crp": (8.0, 0.6), "platelets": (150.0, 0.35),
            "ferritin": (400.0, 0.6), "creatinine": (0.9, 0.2), "il6": (8.0, 0.6),
            "mcp1": (500.0, 0.4), "ifng": (10.0, 0.6)}  # fmt: skip
#: Made-up severity link: log(value) rises by ``slope x peak grade`` once CRS has begun
#: (the draw is at or after 12 h before onset); platelets fall (negative slope).
#: Pre-infusion values carry half of it for LDH, CRP and platelets (an inflamed baseline).
LAB_SLOPE = {"ldh": 0.15, "crp": 0.8, "platelets": -0.15, "ferritin": 0.5,
             "creatinine": 0.06, "il6": 0.9, "mcp1": 0.55, "ifng": 0.7}  # fmt: skip


def simulate_labs(truth: list[dict], *, seed: int = 20240501) -> pd.DataFrame:
    """SIMULATED laboratory values of the patients in ``truth`` (see :func:`simulate`).

    The link to severity is made up for the demo and stated here, nothing more: each
    value is log-normal around :data:`LAB_BASE`; once CRS has begun (a draw at or after 12 h
    before the simulated onset) its log rises by ``LAB_SLOPE[item] x peak grade`` (platelets
    fall); values before the infusion carry half of that rise for LDH, CRP and platelets.
    The random stream is its own (``default_rng([seed, 1])``), so the vital signs of
    :func:`simulate` do not change.
    """
    rng = np.random.default_rng([seed, 1])
    rows: list[tuple] = []
    for t in truth:
        for h, items in LAB_SCHEDULE:
            for item in items:
                median, spread = LAB_BASE[item]
                if h < 0:
                    rise = 0.5 * t["peak"] if item in ("ldh", "crp", "platelets") else 0.0
                else:
                    rise = float(t["peak"]) if t["peak"] > 0 and h >= t["onset"] - 12 else 0.0
                value = median * np.exp(LAB_SLOPE[item] * rise + rng.normal(0.0, spread))
                when = (t["start"] + pd.Timedelta(hours=h)).isoformat()
                rows.append((t["pid"], when, item, float(f"{value:.3g}"), LAB_UNITS[item]))
    return pd.DataFrame(rows, columns=COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "crs-cohort")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    truth: list[dict] = []
    table = simulate(args.patients, seed=args.seed, truth=truth)
    table.to_csv(args.out / "observations.csv", index=False, lineterminator="\n")
    labs = simulate_labs(truth, seed=args.seed)
    labs.to_csv(args.out / "labs.csv", index=False, lineterminator="\n")
    (args.out / "README.md").write_text(
        "# Example CRS cohort - SIMULATED\n\n"
        "**Simulated data, not real patients.** Written by `examples/generate_crs_cohort.py` "
        f"(seed {args.seed}, {args.patients} patients, vitals every 4 h for 10 days after a "
        "CAR-T infusion) in the CytoSafe observation-table format "
        "(`patient_id, time, item, value, unit`). Grade it with\n\n"
        "    cytosafe grade examples/crs-cohort/observations.csv --scale astct2019 --out out/crs\n"
        "\n"
        "`labs.csv` holds **simulated** laboratory values of the same patients (LDH, CRP, "
        "platelets, ferritin, creatinine before the infusion and on days 1 and 3; IL-6, "
        "MCP-1 and IFN-gamma at 12, 24 and 36 h). Their link to severity is made up for the "
        "demo (`simulate_labs` in the generator states it): values rise with the simulated "
        "peak grade once CRS has begun. They are drawn from a second random stream, so "
        "`observations.csv` is unchanged by them. Try a published predictor on it with\n\n"
        "    cytosafe predict examples/crs-cohort/observations.csv examples/crs-cohort/labs.csv "
        "--predictor hay2017 --out out/predict\n\n"
        "Predictors support a clinician's judgement and do not replace it; on simulated "
        "data their performance says nothing about real patients.\n",
        encoding="utf-8",
    )
    print(f"wrote {len(table)} observations of {args.patients} simulated patients to {args.out}")


if __name__ == "__main__":
    main()
