"""Units of the translate step: drug concentrations (mass and molar) and doses.

Drug concentrations are carried in ng/mL (= ug/L). Molar values convert through the
molecular weight: ``1 nM x MW (kDa) = MW ng/mL`` (1e-9 mol/L x MW x 1000 g/mol). Doses are
carried in mg/kg with the body weight alongside; a total dose (mg, ug) is divided by it.
An arbitrary or activity unit (IU/mL, U/mL, AU/mL; :mod:`cytosafe.schema.units`) converts
to neither: an IU is defined by a WHO International Standard's ampoule, not by a mass
(WHO TRS 932, Annex 2, 2006), so a potency in IU/mL is refused rather than converted.
"""

from __future__ import annotations

import math

from cytosafe.errors import InputError, UnitError
from cytosafe.schema.units import (
    ARBITRARY_UNITS,
    MASS_CONCENTRATION_TO_PG_PER_ML,
    MOLAR_TO_NM,
    canonical_unit,
)

__all__ = ["DOSE_UNITS", "dose_to_mg", "dose_to_mg_per_kg", "to_ng_per_ml"]

#: Dose units: factor to mg and whether the dose is per kg of body weight.
DOSE_UNITS: dict[str, tuple[float, bool]] = {
    "mg": (1.0, False),
    "ug": (1e-3, False),
    "ng": (1e-6, False),
    "g": (1e3, False),
    "mg/kg": (1.0, True),
    "ug/kg": (1e-3, True),
    "ng/kg": (1e-6, True),
}


def to_ng_per_ml(value: float, unit: str, *, mw_kda: float | None = None, **where) -> float:
    """``value`` in ``unit`` (mass or molar concentration) as ng/mL.

    A molar unit needs ``mw_kda``; without it a :class:`UnitError` names ``where``. An
    arbitrary unit (IU/mL, ...) is a :class:`UnitError`: no factor to a mass is assumed.
    """
    canon = canonical_unit(unit, **where)
    if canon in ARBITRARY_UNITS:
        raise UnitError(
            f"'{unit}' is an arbitrary unit ({ARBITRARY_UNITS[canon]}): it does not convert "
            "to a mass or molar concentration without a factor specific to the substance's "
            "own standard, which CytoSafe does not assume",
            expected="a mass (ng/mL) or molar (nM) concentration",
            **where,
        )
    if canon in MASS_CONCENTRATION_TO_PG_PER_ML:
        return float(value) * MASS_CONCENTRATION_TO_PG_PER_ML[canon] / 1000.0
    if mw_kda is None or not (mw_kda > 0):
        raise UnitError(
            f"'{unit}' is a molar unit; converting it to a mass concentration needs the "
            "molecular weight",
            expected="a molecular weight in kDa (e.g. 150 for an IgG)",
            **where,
        )
    return float(value) * MOLAR_TO_NM[canon] * float(mw_kda)


def _dose_unit(unit: object, **where) -> str:
    text = "" if unit is None else str(unit).strip().replace(" ", "")
    for old, new in (("µ", "u"), ("μ", "u"), ("mcg", "ug")):
        text = text.replace(old, new)
    text = text.lower()
    if text not in DOSE_UNITS:
        raise UnitError(
            f"unknown dose unit '{unit}'",
            expected="one of " + ", ".join(DOSE_UNITS),
            **where,
        )
    return text


def dose_to_mg(value: float, unit: str, body_weight_kg, **where):
    """A dose as mg (per subject): per-kg units are multiplied by ``body_weight_kg``."""
    factor, per_kg = DOSE_UNITS[_dose_unit(unit, **where)]
    return value * factor * (body_weight_kg if per_kg else 1.0)


def dose_to_mg_per_kg(value: float, unit: str, body_weight_kg: float, **where) -> float:
    """A dose as mg/kg: total units are divided by ``body_weight_kg``."""
    factor, per_kg = DOSE_UNITS[_dose_unit(unit, **where)]
    return value * factor / (1.0 if per_kg else body_weight_kg)


def is_per_kg(unit: str, **where) -> bool:
    """Whether a dose unit is per kg of body weight."""
    return DOSE_UNITS[_dose_unit(unit, **where)][1]


def check_positive(value: object, name: str, *, allow_zero: bool = False, **where) -> float:
    """``value`` as a finite float > 0 (or >= 0); otherwise an :class:`InputError`."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(
            f"{name} is not a number: {value!r}", expected="a number", **where
        ) from None
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise InputError(
            f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {v:g}",
            expected="a number >= 0" if allow_zero else "a number > 0",
            **where,
        )
    return v
