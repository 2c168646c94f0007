"""A regimen file, run: potency in, population simulated, regimens compared, step-up searched."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.translate.fih import most_sensitive
from cytosafe.translate.model import default_parameters, plasma_ec50
from cytosafe.translate.population import (
    PopulationResult,
    search_step_up,
    simulate_population,
)
from cytosafe.translate.regimen import RegimenFile, load_regimen_file
from cytosafe.translate.units import to_ng_per_ml

__all__ = ["SimulationRun", "resolve_potency", "run_regimen_file"]


@dataclass
class SimulationRun:
    """Everything ``cytosafe simulate`` computes from one regimen file."""

    spec: RegimenFile
    typical: dict[str, float]
    potency: dict
    result: PopulationResult
    search: pd.DataFrame | None = None
    parameters: pd.DataFrame = field(default_factory=pd.DataFrame)


def resolve_potency(spec: RegimenFile) -> tuple[float | None, dict]:
    """The plasma EC50 (ng/mL) the regimen file asks for, and where it came from."""
    pot = spec.potency
    if not pot:
        return None, {"source": "model default (cytokine_release.toml)"}
    mw = spec.typical.get("mw_kda", default_parameters()["mw_kda"].value)
    if "ec50" in pot:
        value, unit = float(pot["ec50"]), str(pot["unit"])
        source = str(pot.get("source", "given in the regimen file"))
        n = None
    else:
        path = Path(pot["table"])
        try:
            table = pd.read_csv(path)
        except FileNotFoundError:
            raise InputError(
                "potency table not found", file=str(path), field="potency.table"
            ) from None
        for key in ("analyte", "assay_format"):
            if key in pot:
                if key not in table or pot[key] not in set(table[key]):
                    raise InputError(
                        f"{key} '{pot[key]}' is not in the potency table",
                        file=spec.path,
                        field=f"potency.{key}",
                    )
                table = table[table[key] == pot[key]]
        best = most_sensitive(table, treatment=pot.get("treatment"), measure="ec50")
        value, unit, source, n = (
            best["value"],
            best["unit"],
            f"{path}: {best['description']}",
            best["n_donors"],
        )
    in_vitro = to_ng_per_ml(value, unit, mw_kda=mw, file=spec.path, field="potency.unit")
    ec50 = plasma_ec50(in_vitro, spec.settings)
    return ec50, {
        "in_vitro_ec50": value,
        "in_vitro_unit": unit,
        "in_vitro_ec50_ng_ml": in_vitro,
        "in_vitro_to_plasma": spec.settings.in_vitro_to_plasma,
        "plasma_ec50_ng_ml": ec50,
        "source": source,
        "n_donors": n,
    }


def parameter_table(typical: dict[str, float], omega: dict[str, float]) -> pd.DataFrame:
    """Every model parameter as used: value, unit, BSV, range, source (default or file)."""
    rows = []
    for name, p in default_parameters().items():
        rows.append(
            {
                "parameter": name,
                "value": typical.get(name, p.value),
                "unit": p.unit,
                "omega": omega.get(name, p.omega),
                "min": p.min,
                "max": p.max,
                "description": p.description,
                "source": "regimen file" if name in typical else p.source,
            }
        )
    return pd.DataFrame(rows)


def run_regimen_file(
    path: str | Path | RegimenFile,
    *,
    subjects: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = 5000,
    scheduler=None,
    search: bool = True,
    potency_table: str | Path | None = None,
) -> SimulationRun:
    """Read a regimen file and simulate it (see :mod:`cytosafe.translate.regimen`).

    ``potency_table`` (a ``potency.csv`` of ``cytosafe quantify``) replaces the file's
    EC50 by the most sensitive assay of that table, filtered by the file's
    ``[potency]`` ``treatment``, ``analyte`` and ``assay_format`` when given.
    """
    spec = path if isinstance(path, RegimenFile) else load_regimen_file(path)
    if potency_table is not None:
        keep = {
            k: v for k, v in spec.potency.items() if k in ("treatment", "analyte", "assay_format")
        }
        spec.potency = {**keep, "table": str(potency_table)}
    typical = dict(spec.typical)
    ec50, provenance = resolve_potency(spec)
    if ec50 is not None:
        p = default_parameters()["ec50"]
        if not p.min <= ec50 <= p.max:
            raise InputError(
                f"plasma EC50 {ec50:g} ng/mL is outside its physical range",
                file=spec.path,
                field="potency.ec50",
                expected=f"{p.min:g}..{p.max:g} ng/mL",
            )
        typical["ec50"] = ec50
    if spec.settings.stimulation == "trimer":
        _check_trimer(typical, spec.path)
    n = subjects or spec.subjects
    result = simulate_population(
        spec.regimens,
        n_subjects=n,
        typical=typical,
        omega=spec.omega,
        settings=spec.settings,
        days=spec.days,
        threshold=spec.threshold,
        seed=spec.seed if seed is None else seed,
        dt_h=spec.dt_hours,
        output_step_h=spec.output_hours,
        chunk_size=chunk_size,
        scheduler=scheduler,
    )
    table = None
    if search and spec.search is not None:
        table = search_step_up(
            spec.search,
            typical=typical,
            omega=spec.omega,
            settings=spec.settings,
            days=spec.days,
            threshold=spec.threshold,
            seed=spec.seed,
            dt_h=spec.dt_hours,
        )
    return SimulationRun(
        spec, typical, provenance, result, table, parameter_table(typical, spec.omega)
    )


def _check_trimer(typical: dict[str, float], file: str) -> None:
    """The trimer form needs the EC50 on the rising limb (below the trimer's maximum)."""
    p = {k: v.value for k, v in default_parameters().items()} | typical
    top = (p["kd_target"] * p["kd_cd3"]) ** 0.5 * p["mw_kda"]  # ng/mL
    if p["ec50"] >= top:
        raise InputError(
            f"plasma EC50 {p['ec50']:g} ng/mL is at or beyond the trimer maximum "
            f"(sqrt(Kd_target x Kd_CD3) = {top:.4g} ng/mL): the trimer model cannot reach "
            "half its maximal stimulation on the rising limb",
            file=file,
            field="parameters.ec50",
            expected="an EC50 below sqrt(kd_target x kd_cd3) x MW, or the test article's own Kd values",
        )
