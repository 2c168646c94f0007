"""Seeded simulation of a cytokine release assay with planted responders (known truth).

SIMULATED data for tests, benchmarks and teaching: every culture's true concentration is
``baseline x (1 + (fold - 1) x x^h / (x^h + ec50^h))`` times a log-normal culture error,
every well's signal a 4PL of the concentration in the well with a proportional noise.
Each donor's cultures fill 96-well plates that each carry the donor's own negative
control, 8 standard levels and a blank in duplicate, as a CRA plate layout does.
:func:`simulate_study` returns the tidy measurement table, the matching
:class:`~cytosafe.hazard.design.StudyDesign` and the truth (responders at the top
concentration: true fold change >= 2 over the true medium concentration and true
concentration >= the kit's nominal LLOQ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytosafe.hazard.design import HazardSettings, StudyDesign, TreatmentDesign

__all__ = ["SimTreatment", "default_treatments", "simulate_study"]

KIT = {"a": 100.0, "b": 1.0, "c": 2000.0, "d": 1.0e6}
STANDARDS = 10000.0 / 3.0 ** np.arange(8)  # 10000 ... 4.57 pg/mL
NOMINAL_LLOQ = float(STANDARDS[-1])


@dataclass(frozen=True)
class SimTreatment:
    """A simulated treatment: role, concentrations and the release it causes.

    ``fold`` is the plateau fold over baseline in responding donors and analytes;
    ``analytes`` which analytes respond (``None``: all); ``responders`` the fraction
    of donors that respond (the first donors in order).
    """

    name: str
    role: str
    concentrations: tuple[float, ...]
    fold: float = 1.0
    ec50: float = 1.0
    analytes: tuple[str, ...] | None = None
    responders: float = 1.0
    benchmark: bool = False
    expect_response_in: tuple[str, ...] | None = None


def default_treatments(n_concentrations: int = 5) -> list[SimTreatment]:
    """Medium, isotype, anti-CD3, a releasing and a silent test article."""
    conc = tuple(float(x) for x in np.logspace(-2, 2, n_concentrations))
    return [
        SimTreatment("medium", "negative_control", (0.0,)),
        SimTreatment("isotype", "isotype_control", (10.0,)),
        SimTreatment("anti-CD3", "positive_control", (1.0,), fold=60.0, ec50=0.05),
        SimTreatment(
            "TA-hot", "test", conc, fold=40.0, ec50=1.0, analytes=("IL-2", "IL-6", "IFN-g", "TNF")
        ),
        SimTreatment("TA-cold", "test", conc),
    ]


_WELLS = [f"{r}{c:02d}" for c in range(1, 13) for r in "ABCDEFGH"]


def simulate_study(
    *,
    n_donors: int = 6,
    analytes: tuple[str, ...] = ("IL-2", "IL-6", "IL-8", "IFN-g", "TNF", "IL-10"),
    treatments: list[SimTreatment] | None = None,
    assay_format: str = "whole_blood",
    baseline: float = 40.0,
    culture_cv: float = 0.12,
    signal_cv: float = 0.04,
    seed: int = 1,
    study_id: str = "SIM-001",
) -> tuple[pd.DataFrame, StudyDesign, pd.DataFrame]:
    """Simulate a CRA study; returns ``(measurements, design, truth)``.

    ``truth`` has one row per donor x treatment x analyte at the treatment's top
    concentration with ``true_fold_change`` and ``responder``.
    """
    rng = np.random.default_rng(seed)
    treatments = treatments or default_treatments()
    donors = [f"D{i + 1:02d}" for i in range(n_donors)]
    base = baseline * np.exp(rng.normal(0, 0.4, (n_donors, len(analytes))))
    cultures, truth = [], []
    for di, donor in enumerate(donors):
        for t in treatments:
            responds = di < round(t.responders * n_donors)
            for x in t.concentrations:
                for ai, analyte in enumerate(analytes):
                    active = (
                        responds and t.fold > 1 and (t.analytes is None or analyte in t.analytes)
                    )
                    frac = x / (x + t.ec50) if x > 0 else 0.0
                    expected = base[di, ai] * (1 + ((t.fold - 1) * frac if active else 0.0))
                    true = expected * np.exp(rng.normal(0, culture_cv))
                    cultures.append((donor, t.name, t.role, x, analyte, true))
                    if x == max(t.concentrations) and t.role != "negative_control":
                        truth.append(
                            (donor, t.name, t.role, x, analyte, expected / base[di, ai], expected)
                        )
    cult = pd.DataFrame(
        cultures,
        columns=[
            "donor_id",
            "treatment",
            "treatment_role",
            "treatment_concentration",
            "analyte",
            "true_concentration",
        ],
    )
    tr = pd.DataFrame(
        truth,
        columns=[
            "donor_id",
            "treatment",
            "treatment_role",
            "treatment_concentration",
            "analyte",
            "true_fold_change",
            "true_concentration",
        ],
    )
    tr["responder"] = (tr["true_fold_change"] >= 2) & (tr["true_concentration"] >= NOMINAL_LLOQ)

    # Plates: per donor, chunks of 38 cultures plus the donor's medium on every plate.
    neg = [t.name for t in treatments if t.role == "negative_control"]
    samples = cult[
        ["donor_id", "treatment", "treatment_role", "treatment_concentration"]
    ].drop_duplicates()
    rows = []
    plate_no = 0
    for _, g in samples.groupby("donor_id", sort=True):
        medium = g[g["treatment"].isin(neg)]
        others = g[~g["treatment"].isin(neg)]
        chunks = [others.iloc[i : i + 38] for i in range(0, max(len(others), 1), 38)]
        for chunk in chunks:
            plate_no += 1
            plate = f"P{plate_no:03d}"
            layout = pd.concat([medium, chunk], ignore_index=True)
            for k, s in enumerate(layout.itertuples(index=False)):
                for rep in (1, 2):
                    rows.append(
                        (
                            plate,
                            _WELLS[18 + 2 * k + rep - 1],
                            "sample",
                            np.nan,
                            s.donor_id,
                            s.treatment,
                            s.treatment_role,
                            s.treatment_concentration,
                            rep,
                        )
                    )
            for lvl, conc in enumerate(STANDARDS):
                for rep in (1, 2):
                    rows.append(
                        (
                            plate,
                            _WELLS[lvl + 8 * (rep - 1)],
                            "standard",
                            conc,
                            None,
                            None,
                            None,
                            np.nan,
                            rep,
                        )
                    )
            for rep in (1, 2):
                rows.append(
                    (plate, _WELLS[16 + rep - 1], "blank", np.nan, None, None, None, np.nan, rep)
                )
    wells = pd.DataFrame(
        rows,
        columns=[
            "plate_id",
            "well",
            "sample_type",
            "standard_concentration",
            "donor_id",
            "treatment",
            "treatment_role",
            "treatment_concentration",
            "replicate",
        ],
    )
    m = wells.merge(pd.DataFrame({"analyte": list(analytes)}), how="cross")
    key = ["donor_id", "treatment", "treatment_concentration", "analyte"]
    m = m.merge(cult[[*key, "true_concentration"]], on=key, how="left")
    x = np.where(
        m["sample_type"] == "standard", m["standard_concentration"], m["true_concentration"]
    )
    x = np.where(m["sample_type"] == "blank", 0.0, x)
    a, b, c, d = KIT["a"], KIT["b"], KIT["c"], KIT["d"]
    signal = d + (a - d) / (1 + (np.maximum(x, 0) / c) ** b)
    signal = signal * np.exp(rng.normal(0, signal_cv, len(signal)))
    m["signal"] = np.round(signal, 1)
    m["study_id"] = study_id
    m["assay_format"] = np.where(m["sample_type"] == "sample", assay_format, None)
    m["incubation_h"] = np.where(m["sample_type"] == "sample", 24.0, np.nan)
    m["treatment_unit"] = np.where(
        (m["sample_type"] == "sample") & (m["treatment_concentration"] > 0), "ug/mL", None
    )
    m["dilution_factor"] = 1.0
    m = m.drop(columns="true_concentration")
    design = StudyDesign(
        study_id=study_id,
        title="SIMULATED study (cytosafe.hazard.simulate)",
        treatments={
            t.name: TreatmentDesign(
                name=t.name,
                role=t.role,
                concentrations=t.concentrations,
                unit="ug/mL" if max(t.concentrations) > 0 else "",
                formats=(assay_format,),
                benchmark=t.benchmark,
                expect_response_in=t.expect_response_in,
            )
            for t in treatments
        },
        donors=tuple(donors),
        analytes=tuple(analytes),
        settings=HazardSettings(),
        source="simulation",
    )
    return m, design, tr
