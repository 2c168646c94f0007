"""Virtual populations under dosing regimens: peaks per dose, threshold shares, step-up search.

Every regimen is given to the *same* virtual subjects (one draw of the between-subject
variability, :func:`~cytosafe.translate.model.sample_population`), so differences between
regimens are differences of dosing, not of sampling. A population is simulated as one ODE
system (:func:`~cytosafe.translate.model.simulate`); a large one is cut into chunks of
subjects computed through Dask (``scheduler`` as Dask names it: ``"threads"`` (default),
``"processes"``, ``"synchronous"``, or a ``distributed.Client``); the chunks give the same
numbers as one call, because the subjects are drawn before they are split.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytosafe.translate.model import (
    DoseSchedule,
    ModelSettings,
    SimulationResult,
    sample_population,
    simulate,
)
from cytosafe.translate.regimen import Dose, Regimen, SearchSpec

__all__ = [
    "PopulationResult",
    "candidate_step_up_regimens",
    "regimen_summary",
    "search_step_up",
    "simulate_population",
    "time_course_bands",
]

QUANTILES = (0.05, 0.5, 0.95)


@dataclass
class PopulationResult:
    """Simulations of several regimens on one virtual population."""

    population: dict[str, np.ndarray]
    regimens: list[Regimen]
    results: dict[str, SimulationResult]
    settings: ModelSettings
    threshold: float
    days: float
    extra: dict = field(default_factory=dict)

    def per_dose(self) -> pd.DataFrame:
        """Peak IL-6 per regimen x dose: median and 90% interval, share above threshold."""
        rows = []
        for reg in self.regimens:
            res = self.results[reg.name]
            for i, d in enumerate(reg.doses):
                pk = res.peak_il6[i]
                q5, q50, q95 = np.quantile(pk, QUANTILES)
                c5, c50, c95 = np.quantile(res.peak_concentration[i], QUANTILES)
                rows.append(
                    {
                        "regimen": reg.name,
                        "dose_number": i + 1,
                        "day": d.day,
                        "amount": d.amount,
                        "unit": d.unit,
                        "route": d.route,
                        "infusion_hours": d.infusion_hours,
                        "peak_il6_median": q50,
                        "peak_il6_p05": q5,
                        "peak_il6_p95": q95,
                        "share_above_threshold": float(np.mean(pk > self.threshold)),
                        "cmax_median_ng_ml": c50,
                        "cmax_p05_ng_ml": c5,
                        "cmax_p95_ng_ml": c95,
                    }
                )
        return pd.DataFrame(rows)

    def comparison(self) -> pd.DataFrame:
        """One row per regimen (see :func:`regimen_summary`)."""
        return pd.concat(
            [regimen_summary(r, self.results[r.name], self.threshold) for r in self.regimens],
            ignore_index=True,
        )

    def subjects(self) -> pd.DataFrame:
        """Per subject x regimen: parameters, overall peak IL-6 and its dose."""
        frames = []
        base = pd.DataFrame(self.population)
        base.insert(0, "subject", np.arange(1, len(base) + 1))
        for reg in self.regimens:
            res = self.results[reg.name]
            f = base.copy()
            f.insert(0, "regimen", reg.name)
            f["peak_il6"] = res.peak_il6.max(axis=0)
            f["peak_dose_number"] = res.peak_il6.argmax(axis=0) + 1
            f["above_threshold"] = f["peak_il6"] > self.threshold
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def time_courses(self) -> pd.DataFrame:
        """Median and 90% bands of concentration and IL-6 over time, per regimen."""
        return pd.concat(
            [time_course_bands(r.name, self.results[r.name]) for r in self.regimens],
            ignore_index=True,
        )


def regimen_summary(reg: Regimen, res: SimulationResult, threshold: float) -> pd.DataFrame:
    """Per regimen: overall peak IL-6 (median, 90% interval), share of subjects above
    ``threshold`` at any time, the dose with the highest median peak, time to target."""
    overall = res.peak_il6.max(axis=0)
    q5, q50, q95 = np.quantile(overall, QUANTILES)
    med_by_dose = np.median(res.peak_il6, axis=1)
    first = res.peak_il6[0]
    return pd.DataFrame(
        [
            {
                "regimen": reg.name,
                "n_doses": len(reg.doses),
                "target_dose": reg.target,
                "unit": reg.doses[-1].unit,
                "time_to_target_day": reg.time_to_target_days(),
                "peak_il6_median": q50,
                "peak_il6_p05": q5,
                "peak_il6_p95": q95,
                "share_above_threshold": float(np.mean(overall > threshold)),
                "threshold_pg_ml": threshold,
                "first_dose_peak_median": float(np.median(first)),
                "dose_with_highest_median_peak": int(np.argmax(med_by_dose)) + 1,
                "n_subjects": overall.size,
            }
        ]
    )


def time_course_bands(name: str, res: SimulationResult) -> pd.DataFrame:
    """Quantiles (5%, 50%, 95%) of concentration and IL-6 at each output time."""
    cq = np.quantile(res.concentration, QUANTILES, axis=1)
    iq = np.quantile(res.il6, QUANTILES, axis=1)
    return pd.DataFrame(
        {
            "regimen": name,
            "time_h": res.times_h,
            "day": res.times_h / 24.0 + 1.0,
            "concentration_p05": cq[0],
            "concentration_median": cq[1],
            "concentration_p95": cq[2],
            "il6_p05": iq[0],
            "il6_median": iq[1],
            "il6_p95": iq[2],
        }
    )


def _concat(parts: list[SimulationResult]) -> SimulationResult:
    if len(parts) == 1:
        return parts[0]
    cat = lambda name, axis=1: np.concatenate([getattr(p, name) for p in parts], axis=axis)  # noqa: E731
    return SimulationResult(
        parts[0].times_h,
        cat("concentration"),
        cat("il6"),
        cat("peak_il6"),
        cat("peak_time_h"),
        cat("peak_concentration"),
        cat("final_state"),
        cat("dosed_ug", 0),
    )


def _run(population, reg, settings, t_end_h, dt_h, output_step_h, chunk_size, scheduler):
    n = len(population["cl"])
    schedule = reg.schedule(population["body_weight"])
    kw = {"t_end_h": t_end_h, "settings": settings, "dt_h": dt_h, "output_step_h": output_step_h}
    if chunk_size is None or n <= chunk_size:
        return simulate(population, schedule, **kw)
    import dask

    tasks = []
    for start in range(0, n, chunk_size):
        idx = slice(start, min(start + chunk_size, n))
        part = {k: v[idx] for k, v in population.items()}
        tasks.append(dask.delayed(simulate)(part, schedule.subset(idx), **kw))
    if scheduler is not None and not isinstance(scheduler, str):
        parts = [f.result() for f in scheduler.compute(tasks)]
    else:
        parts = list(dask.compute(*tasks, scheduler=scheduler or "threads"))
    return _concat(parts)


def simulate_population(
    regimens: list[Regimen],
    *,
    n_subjects: int = 500,
    typical: dict[str, float] | None = None,
    omega: dict[str, float] | None = None,
    settings: ModelSettings | None = None,
    days: float = 28.0,
    threshold: float = 100.0,
    seed: int | None = 0,
    dt_h: float = 0.25,
    output_step_h: float = 2.0,
    chunk_size: int | None = 5000,
    scheduler=None,
    population: dict[str, np.ndarray] | None = None,
) -> PopulationResult:
    """Simulate every regimen on one virtual population of ``n_subjects``.

    Parameters
    ----------
    regimens:
        :class:`~cytosafe.translate.regimen.Regimen` objects (distinct names).
    typical, omega:
        Overrides of the typical values and between-subject SDs (log scale).
    threshold:
        IL-6 (pg/mL) for the share of subjects above it.
    chunk_size, scheduler:
        Populations larger than ``chunk_size`` are split into chunks computed by Dask.
    population:
        Subjects already drawn (as :func:`sample_population` returns); overrides
        ``n_subjects``, ``typical``, ``omega`` and ``seed``.
    """
    settings = settings or ModelSettings.default()
    pop = population or sample_population(n_subjects, typical, omega=omega, seed=seed)
    results = {
        reg.name: _run(pop, reg, settings, days * 24.0, dt_h, output_step_h, chunk_size, scheduler)
        for reg in regimens
    }
    return PopulationResult(pop, list(regimens), results, settings, threshold, days)


def candidate_step_up_regimens(spec: SearchSpec, days: float) -> list[Regimen]:
    """Step-up schedules reaching the target by ``spec.by_day``.

    For ``k`` priming doses (1..``max_priming_doses``), a first dose of ``f`` x target
    (``first_fractions``) and an interval ``d`` (``intervals_days``): priming doses on days
    ``1, 1+d, ..`` rising geometrically from ``f`` x target towards the target, the target
    on day ``1 + k d`` (at most ``by_day``), then the target every
    ``maintenance_interval_days`` to the end of the simulation.
    """
    out = []
    for k, f, d in itertools.product(
        range(1, spec.max_priming_doses + 1), spec.first_fractions, spec.intervals_days
    ):
        target_day = 1 + k * d
        if target_day > spec.by_day:
            continue
        # Geometric steps: f, f^((k-1)/k), ..., up to (not including) 1.
        fractions = [f ** (1 - j / k) for j in range(k)]
        days_list = [1 + j * d for j in range(k)] + [target_day]
        amounts = [spec.target_dose * x for x in fractions] + [spec.target_dose]
        t = target_day + spec.maintenance_interval_days
        while spec.maintenance_interval_days > 0 and t <= days - 1e-9:
            days_list.append(t)
            amounts.append(spec.target_dose)
            t += spec.maintenance_interval_days
        inf = spec.infusion_hours if spec.route == "iv" else 0.0
        if any(b - a < inf / 24.0 for a, b in itertools.pairwise(days_list)):
            continue
        doses = tuple(
            Dose((dy - 1) * 24.0, float(_round(a)), spec.unit, spec.route, inf)
            for dy, a in zip(days_list, amounts, strict=True)
        )
        name = f"step-up {k}x from {f:g}x every {d:g} d"
        out.append(Regimen(name, doses, spec.target_dose))
    return out


def _round(x: float) -> float:
    """Three significant digits: doses a pharmacy can prepare."""
    if x <= 0:
        return x
    return float(f"{x:.3g}")


def flat_regimen(spec: SearchSpec, days: float) -> Regimen:
    """The target dose from day 1, every ``maintenance_interval_days``."""
    inf = spec.infusion_hours if spec.route == "iv" else 0.0
    days_list, t = [1.0], 1.0 + spec.maintenance_interval_days
    while spec.maintenance_interval_days > 0 and t <= days - 1e-9:
        days_list.append(t)
        t += spec.maintenance_interval_days
    doses = tuple(
        Dose((dy - 1) * 24.0, spec.target_dose, spec.unit, spec.route, inf) for dy in days_list
    )
    return Regimen("flat (search reference)", doses, spec.target_dose)


def search_step_up(
    spec: SearchSpec,
    *,
    typical: dict[str, float] | None = None,
    omega: dict[str, float] | None = None,
    settings: ModelSettings | None = None,
    days: float = 28.0,
    threshold: float = 100.0,
    seed: int | None = 0,
    dt_h: float = 0.25,
) -> pd.DataFrame:
    """Rank step-up schedules by the ``spec.quantile`` of the subjects' highest IL-6 peak.

    Every candidate of :func:`candidate_step_up_regimens` (and the flat regimen, for
    reference) is simulated on the same ``spec.subjects`` virtual subjects. Ties are broken
    by the earlier time to target and fewer doses. Returns one row per candidate, best
    first, with ``rank``, ``objective`` (pg/mL) and the schedule in words.
    """
    settings = settings or ModelSettings.default()
    cands = candidate_step_up_regimens(spec, days)
    flat = flat_regimen(spec, days)
    pop = sample_population(spec.subjects, typical, omega=omega, seed=seed)
    regs = [flat, *cands]
    peaks = _stacked_peaks(regs, pop, settings, days * 24.0, dt_h)
    rows = []
    for reg, pk in zip(regs, peaks, strict=True):
        overall = pk.max(axis=0)
        rows.append(
            {
                "regimen": reg.name,
                "objective": float(np.quantile(overall, spec.quantile)),
                "objective_quantile": spec.quantile,
                "peak_il6_median": float(np.median(overall)),
                "share_above_threshold": float(np.mean(overall > threshold)),
                "time_to_target_day": reg.time_to_target_days(),
                "n_priming_doses": sum(d.amount < spec.target_dose for d in reg.doses),
                "schedule": "; ".join(
                    f"day {d.day:g}: {d.amount:g} {d.unit}"
                    for d in reg.doses
                    if d.day <= reg.time_to_target_days() + 1e-9
                ),
                "is_flat_reference": reg is flat,
            }
        )
    table = pd.DataFrame(rows).sort_values(
        ["objective", "time_to_target_day", "n_priming_doses"], kind="stable"
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs["regimens"] = {r.name: r for r in [flat, *cands]}
    return table.reset_index(drop=True)


def _stacked_peaks(regs, pop, settings, t_end_h, dt_h) -> list[np.ndarray]:
    """Peak IL-6 per dose (k, n) of every regimen, all simulated as ONE system.

    The population is repeated once per regimen and the regimens' doses are stacked as
    per-subject dose times (shorter regimens padded with doses at infinity), so that the
    whole search is one vectorised integration rather than one per candidate.
    """
    n = len(pop["cl"])
    kmax = max(len(r.doses) for r in regs)
    big = {k: np.tile(v, len(regs)) for k, v in pop.items()}
    times = np.full((kmax, n * len(regs)), np.inf)
    amounts = np.zeros_like(times)
    durs = np.zeros_like(times)
    routes = {d.route for r in regs for d in r.doses}
    if len(routes) > 1:  # pragma: no cover - candidates share the search's route
        raise ValueError("stacked regimens must share one route")
    for i, r in enumerate(regs):
        sch = r.schedule(pop["body_weight"]).for_subjects(n)
        cols = slice(i * n, (i + 1) * n)
        k = len(r.doses)
        times[:k, cols] = sch.times_h
        amounts[:k, cols] = sch.amounts_ug
        durs[:k, cols] = sch.durations_h
    schedule = DoseSchedule(times, amounts, (routes.pop(),) * kmax, durs)
    res = simulate(big, schedule, t_end_h=t_end_h, settings=settings, dt_h=dt_h, output_step_h=24.0)
    return [res.peak_il6[: len(r.doses), i * n : (i + 1) * n] for i, r in enumerate(regs)]
