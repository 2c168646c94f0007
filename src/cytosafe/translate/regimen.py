"""Dosing regimens and the regimen file of ``cytosafe simulate``.

A regimen is a list of doses, each with a day (day 1 = the first day of treatment, time 0;
an optional ``hour`` adds hours), an amount and unit (``mg``, ``ug``, ``mg/kg``,
``ug/kg``), a route (``iv`` or ``sc``) and, for IV, an infusion duration in hours (0 = a
bolus). Doses must be in time order and must not overlap (a dose may not start while the
previous IV infusion runs).

The regimen file (TOML) holds the whole simulation::

    title = "TA-1 step-up dosing (SIMULATED example)"
    simulated = true                       # label shown on every output

    [simulation]
    days = 28                              # simulated time
    subjects = 500                         # virtual subjects per regimen
    seed = 1
    threshold = 100                        # IL-6, pg/mL: share of subjects above it
    dt_hours = 0.25                        # integration step
    output_hours = 2                       # time-course spacing

    [model]                                # optional; defaults from cytokine_release.toml
    compartments = 2
    stimulation = "emax"                   # or "trimer"
    priming = true
    in_vitro_to_plasma = 1.0

    [potency]                              # optional: the in vitro EC50 sets the potency
    ec50 = 0.2                             # either a value ...
    unit = "ug/mL"
    # table = "potency.csv"                # ... or the potency table of `cytosafe quantify`
    # treatment = "TA-1"; analyte = "IL-6"; assay_format = "whole_blood"

    [parameters]                           # optional overrides: a number, or
    cl = 0.021                             # {value = ..., omega = ...}

    [[regimen]]
    name = "flat"
    target_dose = 10                       # optional; default the largest dose
    doses = [{day = 1, amount = 10, unit = "mg", route = "iv", infusion_hours = 4}]

    [search]                               # optional: search step-up schedules
    target_dose = 10
    unit = "mg"
    by_day = 15
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cytosafe.data import load
from cytosafe.errors import InputError
from cytosafe.translate.knowledge import FIH_FILE
from cytosafe.translate.model import (
    DoseSchedule,
    ModelSettings,
    check_parameters,
    default_parameters,
)
from cytosafe.translate.units import DOSE_UNITS, dose_to_mg, is_per_kg

__all__ = [
    "Dose",
    "Regimen",
    "RegimenFile",
    "SearchSpec",
    "load_regimen_file",
    "parse_regimen",
]


@dataclass(frozen=True)
class Dose:
    """One dose: time (h from the first dose day), amount in ``unit``, route, infusion h."""

    time_h: float
    amount: float
    unit: str
    route: str = "iv"
    infusion_hours: float = 0.0

    @property
    def day(self) -> float:
        return self.time_h / 24.0 + 1.0


@dataclass(frozen=True)
class Regimen:
    """A named list of doses and the dose it escalates to (``target_dose``, in its unit)."""

    name: str
    doses: tuple[Dose, ...]
    target_dose: float | None = None

    @property
    def target(self) -> float:
        return (
            self.target_dose if self.target_dose is not None else max(d.amount for d in self.doses)
        )

    def time_to_target_days(self) -> float:
        """Day of the first dose at or above the target dose (day 1 = first dose day)."""
        for d in self.doses:
            if d.amount >= self.target * (1 - 1e-9):
                return d.day
        return math.nan

    def schedule(self, body_weight_kg: np.ndarray) -> DoseSchedule:
        """The doses as a :class:`DoseSchedule` (ug per subject)."""
        bw = np.asarray(body_weight_kg, dtype=float)
        amounts = np.stack(
            [
                np.broadcast_to(dose_to_mg(d.amount, d.unit, bw) * 1000.0, bw.shape)
                for d in self.doses
            ]
        )
        return DoseSchedule(
            np.array([d.time_h for d in self.doses]),
            amounts,
            tuple(d.route for d in self.doses),
            np.array([d.infusion_hours if d.route == "iv" else 0.0 for d in self.doses]),
        )


@dataclass(frozen=True)
class SearchSpec:
    """A search over step-up schedules reaching ``target_dose`` by ``by_day``."""

    target_dose: float
    unit: str
    by_day: float
    route: str = "iv"
    infusion_hours: float = 4.0
    maintenance_interval_days: float = 7.0
    max_priming_doses: int = 3
    first_fractions: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    intervals_days: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 7.0)
    subjects: int = 200
    quantile: float = 0.95


@dataclass
class RegimenFile:
    """Everything a regimen file says (see the module docstring)."""

    path: str
    title: str
    simulated: bool
    days: float
    subjects: int
    seed: int
    threshold: float
    dt_hours: float
    output_hours: float
    settings: ModelSettings
    typical: dict[str, float]
    omega: dict[str, float]
    potency: dict[str, Any]
    regimens: list[Regimen]
    search: SearchSpec | None = None
    notes: list[str] = field(default_factory=list)


def _num(value: Any, *, file, fld, positive=False, nonneg=False, what="a number") -> float:
    if isinstance(value, bool):
        raise InputError(f"{value!r} is not a number", file=file, field=fld, expected=what)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{value!r} is not a number", file=file, field=fld, expected=what
        ) from None
    if not math.isfinite(v):
        raise InputError(f"{v} is not finite", file=file, field=fld, expected=what)
    if positive and v <= 0:
        raise InputError(f"must be positive, got {v:g}", file=file, field=fld, expected=what)
    if nonneg and v < 0:
        raise InputError(f"must not be negative, got {v:g}", file=file, field=fld, expected=what)
    return v


def _unit(value: Any, *, file, fld) -> str:
    text = "" if value is None else str(value).strip().replace(" ", "").lower()
    text = text.replace("µ", "u").replace("μ", "u").replace("mcg", "ug")
    if text not in DOSE_UNITS:
        raise InputError(
            f"unknown dose unit {value!r}",
            file=file,
            field=fld,
            expected="one of " + ", ".join(DOSE_UNITS),
        )
    return text


def parse_regimen(table: dict, *, number: int = 1, file: str | None = None) -> Regimen:
    """One ``[[regimen]]`` table as a :class:`Regimen`, with errors naming the dose."""
    where = f"regimen[{number}]"
    if not isinstance(table, dict):
        raise InputError("is not a table", file=file, field=where)
    name = str(table.get("name") or f"regimen {number}")
    raw = table.get("doses", table.get("dose"))
    if not isinstance(raw, list) or not raw:
        raise InputError(
            f"regimen '{name}' has no doses",
            file=file,
            field=f"{where}.doses",
            expected='a list of doses, e.g. doses = [{day = 1, amount = 10, unit = "mg"}]',
        )
    limit = float(load(FIH_FILE)["defaults"]["max_dose_mg_per_kg"])
    doses: list[Dose] = []
    for i, d in enumerate(raw, start=1):
        fld = f"{where}.doses[{i}]"
        label = f"dose {i} of regimen '{name}'"
        if not isinstance(d, dict):
            raise InputError(f"{label} is not a table", file=file, field=fld)
        unknown = set(d) - {"day", "hour", "amount", "unit", "route", "infusion_hours"}
        if unknown:
            raise InputError(
                f"{label} has unknown key(s) {', '.join(sorted(unknown))}",
                file=file,
                field=f"{fld}.{sorted(unknown)[0]}",
                expected="day, hour, amount, unit, route, infusion_hours",
            )
        for key in ("day", "amount", "unit"):
            if key not in d:
                raise InputError(f"{label} has no {key}", file=file, field=f"{fld}.{key}")
        day = _num(d["day"], file=file, fld=f"{fld}.day", what="a day >= 1 (day 1 = first dose)")
        if day < 1:
            raise InputError(
                f"{label} is on day {day:g}",
                file=file,
                field=f"{fld}.day",
                expected="a day >= 1 (day 1 = the first day of treatment)",
            )
        hour = _num(d.get("hour", 0.0), file=file, fld=f"{fld}.hour", nonneg=True)
        amount = _num(d["amount"], file=file, fld=f"{fld}.amount", what="a dose > 0")
        if amount <= 0:
            raise InputError(
                f"{label} has a {'negative' if amount < 0 else 'zero'} amount ({amount:g})",
                file=file,
                field=f"{fld}.amount",
                expected="a dose > 0",
            )
        unit = _unit(d["unit"], file=file, fld=f"{fld}.unit")
        if is_per_kg(unit):
            mgkg = dose_to_mg(amount, unit, 1.0)
            if mgkg > limit:
                raise InputError(
                    f"{label} is {amount:g} {unit} = {mgkg:g} mg/kg, above {limit:g} mg/kg: "
                    "is it a total dose in mg typed as mg/kg?",
                    file=file,
                    field=f"{fld}.unit",
                    expected=f'a per-kg dose up to {limit:g} mg/kg, or unit = "mg"',
                )
        elif dose_to_mg(amount, unit, 1.0) > limit * 400:
            raise InputError(
                f"{label} is {amount:g} {unit}, more than {limit * 400:g} mg in one dose",
                file=file,
                field=f"{fld}.amount",
                expected="a total dose in mg (check the unit: ug, mg)",
            )
        route = str(d.get("route", "iv")).lower()
        if route not in ("iv", "sc"):
            raise InputError(
                f"{label} has route {d.get('route')!r}",
                file=file,
                field=f"{fld}.route",
                expected="'iv' or 'sc'",
            )
        inf = _num(
            d.get("infusion_hours", 0.0), file=file, fld=f"{fld}.infusion_hours", nonneg=True
        )
        if route == "sc" and inf > 0:
            raise InputError(
                f"{label} is SC with an infusion duration",
                file=file,
                field=f"{fld}.infusion_hours",
                expected="no infusion_hours for an SC dose",
            )
        doses.append(Dose((day - 1) * 24.0 + hour, amount, unit, route, inf))
    for i in range(1, len(doses)):
        prev, cur = doses[i - 1], doses[i]
        if cur.time_h < prev.time_h:
            raise InputError(
                f"dose {i + 1} of regimen '{name}' (day {cur.day:g}) comes before dose {i} "
                f"(day {prev.day:g})",
                file=file,
                field=f"{where}.doses[{i + 1}].day",
                expected="doses in time order",
            )
        if cur.time_h < prev.time_h + prev.infusion_hours or cur.time_h == prev.time_h:
            raise InputError(
                f"dose {i + 1} of regimen '{name}' (day {cur.day:g}, hour "
                f"{(cur.time_h % 24):g}) overlaps dose {i} (day {prev.day:g}, "
                f"{prev.infusion_hours:g}-h infusion)",
                file=file,
                field=f"{where}.doses[{i + 1}].day",
                expected="each dose to start after the previous infusion has ended",
            )
    target = table.get("target_dose")
    if target is not None:
        target = _num(target, file=file, fld=f"{where}.target_dose", positive=True)
    return Regimen(name, tuple(doses), target)


def _search(spec: dict, file: str) -> SearchSpec:
    where = "search"
    for key in ("target_dose", "unit", "by_day"):
        if key not in spec:
            raise InputError(f"[search] has no {key}", file=file, field=f"{where}.{key}")
    known = set(SearchSpec.__dataclass_fields__)
    unknown = set(spec) - known
    if unknown:
        raise InputError(
            f"unknown key(s) {', '.join(sorted(unknown))}",
            file=file,
            field=f"{where}.{sorted(unknown)[0]}",
            expected=", ".join(sorted(known)),
        )
    kw: dict[str, Any] = {
        "target_dose": _num(
            spec["target_dose"], file=file, fld=f"{where}.target_dose", positive=True
        ),
        "unit": _unit(spec["unit"], file=file, fld=f"{where}.unit"),
        "by_day": _num(spec["by_day"], file=file, fld=f"{where}.by_day", positive=True),
    }
    if kw["by_day"] < 2:
        raise InputError(
            "by_day must leave room for a priming dose",
            file=file,
            field=f"{where}.by_day",
            expected="a day >= 2",
        )
    for key in ("infusion_hours", "maintenance_interval_days"):
        if key in spec:
            kw[key] = _num(spec[key], file=file, fld=f"{where}.{key}", nonneg=True)
    if "route" in spec:
        kw["route"] = str(spec["route"]).lower()
        if kw["route"] not in ("iv", "sc"):
            raise InputError("route", file=file, field=f"{where}.route", expected="'iv' or 'sc'")
    if "max_priming_doses" in spec:
        kw["max_priming_doses"] = int(
            _num(
                spec["max_priming_doses"],
                file=file,
                fld=f"{where}.max_priming_doses",
                positive=True,
            )
        )
    for key in ("first_fractions", "intervals_days"):
        if key in spec:
            vals = spec[key]
            if not isinstance(vals, list) or not vals:
                raise InputError("must be a list", file=file, field=f"{where}.{key}")
            kw[key] = tuple(_num(v, file=file, fld=f"{where}.{key}", positive=True) for v in vals)
    if any(f >= 1 for f in kw.get("first_fractions", ())):
        raise InputError(
            "a first-dose fraction of the target must be below 1",
            file=file,
            field=f"{where}.first_fractions",
            expected="fractions in (0, 1)",
        )
    if "subjects" in spec:
        kw["subjects"] = int(
            _num(spec["subjects"], file=file, fld=f"{where}.subjects", positive=True)
        )
    if "quantile" in spec:
        q = _num(spec["quantile"], file=file, fld=f"{where}.quantile")
        if not 0 < q <= 1:
            raise InputError("quantile", file=file, field=f"{where}.quantile", expected="in (0, 1]")
        kw["quantile"] = q
    return SearchSpec(**kw)


def load_regimen_file(path: str | Path) -> RegimenFile:
    """Read and validate a regimen file; every error names the file and the field."""
    path = Path(path)
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=file) from None
    known = {
        "title",
        "simulated",
        "simulation",
        "model",
        "potency",
        "parameters",
        "regimen",
        "search",
        "notes",
    }
    unknown = set(data) - known
    if unknown:
        raise InputError(
            f"unknown section(s) {', '.join(sorted(unknown))}",
            file=file,
            field=sorted(unknown)[0],
            expected=", ".join(sorted(known)),
        )
    sim = data.get("simulation", {})
    days = _num(sim.get("days", 28), file=file, fld="simulation.days", positive=True)
    subjects = _num(sim.get("subjects", 500), file=file, fld="simulation.subjects", positive=True)
    if subjects != int(subjects):
        raise InputError("must be a whole number", file=file, field="simulation.subjects")
    seed = int(_num(sim.get("seed", 0), file=file, fld="simulation.seed", nonneg=True))
    threshold = _num(
        sim.get("threshold", 100.0), file=file, fld="simulation.threshold", positive=True
    )
    dt = _num(sim.get("dt_hours", 0.25), file=file, fld="simulation.dt_hours", positive=True)
    out_h = _num(
        sim.get("output_hours", 2.0), file=file, fld="simulation.output_hours", positive=True
    )
    if dt > 2.0:
        raise InputError(
            f"dt_hours = {dt:g} is too coarse for IL-6 kinetics",
            file=file,
            field="simulation.dt_hours",
            expected="at most 2 h (default 0.25)",
        )

    m = ModelSettings.default()
    model = data.get("model", {})
    settings = ModelSettings(
        int(model.get("compartments", m.compartments)),
        str(model.get("stimulation", m.stimulation)),
        bool(model.get("priming", m.priming)),
        _num(
            model.get("in_vitro_to_plasma", m.in_vitro_to_plasma),
            file=file,
            fld="model.in_vitro_to_plasma",
        ),
    ).check(file=file)

    typical: dict[str, float] = {}
    omega: dict[str, float] = {}
    for name, v in data.get("parameters", {}).items():
        if isinstance(v, dict):
            if "value" in v:
                typical[name] = v["value"]
            if "omega" in v:
                omega[name] = _num(
                    v["omega"], file=file, fld=f"parameters.{name}.omega", nonneg=True
                )
                if omega[name] > 2:
                    raise InputError(
                        f"omega {omega[name]:g} is implausibly large",
                        file=file,
                        field=f"parameters.{name}.omega",
                        expected="a log-scale SD up to 2 (0.3 is about 30% CV)",
                    )
            if not set(v) <= {"value", "omega"}:
                raise InputError(
                    "unknown key", file=file, field=f"parameters.{name}", expected="value, omega"
                )
        else:
            typical[name] = v
    typical = check_parameters(typical, file=file)
    known_params = default_parameters()
    for name in omega:
        if name not in known_params:
            raise InputError(
                f"unknown model parameter '{name}'",
                file=file,
                field=f"parameters.{name}",
                expected="one of " + ", ".join(known_params),
            )

    potency = dict(data.get("potency", {}))
    if potency:
        if "ec50" in potency:
            _num(potency["ec50"], file=file, fld="potency.ec50", positive=True)
            if "unit" not in potency:
                raise InputError("an EC50 needs its unit", file=file, field="potency.unit")
        elif "table" in potency:
            tp = Path(str(potency["table"]))
            potency["table"] = str(tp if tp.is_absolute() else path.parent / tp)
        else:
            raise InputError(
                "[potency] needs ec50 (with unit) or table",
                file=file,
                field="potency",
            )
        if "ec50" in typical:
            raise InputError(
                "the EC50 is set twice ([potency] and [parameters] ec50)",
                file=file,
                field="parameters.ec50",
                expected="one of them",
            )

    regimens_raw = data.get("regimen")
    if not isinstance(regimens_raw, list) or not regimens_raw:
        raise InputError(
            "no regimen",
            file=file,
            field="regimen",
            expected="one or more [[regimen]] tables with doses",
        )
    regimens = [parse_regimen(r, number=i, file=file) for i, r in enumerate(regimens_raw, start=1)]
    names = [r.name for r in regimens]
    for i, nm in enumerate(names, start=1):
        if names.count(nm) > 1:
            raise InputError(
                f"regimen name '{nm}' is used twice",
                file=file,
                field=f"regimen[{i}].name",
                expected="distinct names",
            )
    for i, r in enumerate(regimens, start=1):
        last = r.doses[-1]
        if last.time_h + last.infusion_hours > days * 24:
            raise InputError(
                f"regimen '{r.name}' doses until day {last.day:g}, after the simulated "
                f"{days:g} days",
                file=file,
                field=f"regimen[{i}].doses[{len(r.doses)}].day",
                expected=f"doses within simulation.days = {days:g}, or more days",
            )
    search = _search(data["search"], file) if "search" in data else None
    if search is not None and search.by_day > days:
        raise InputError(
            f"by_day {search.by_day:g} is after the simulated {days:g} days",
            file=file,
            field="search.by_day",
        )
    return RegimenFile(
        path=file,
        title=str(data.get("title", path.stem)),
        simulated=bool(data.get("simulated", False)),
        days=days,
        subjects=int(subjects),
        seed=seed,
        threshold=threshold,
        dt_hours=dt,
        output_hours=out_h,
        settings=settings,
        typical=typical,
        omega=omega,
        potency=potency,
        regimens=regimens,
        search=search,
        notes=[str(n) for n in data.get("notes", [])],
    )
