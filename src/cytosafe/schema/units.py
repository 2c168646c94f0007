"""Units of concentration, read from instrument exports and converted to the house units.

Cytokine concentrations are stored in pg/mL (the unit of every commercial cytokine
multiplex kit). Mass concentrations convert by SI prefixes; the spellings vendors write
(``pg/ml``, ``pg/mL``, ``µg/mL``, ``ug/ml``, ``ng/L``) are all accepted. Molar units are
kept for test-article (treatment) concentrations, where no conversion across mass and molar
is made without a molecular weight.
"""

from __future__ import annotations

import math

from cytosafe.errors import UnitError

__all__ = [
    "CONCENTRATION_UNIT",
    "MASS_CONCENTRATION_TO_PG_PER_ML",
    "MOLAR_TO_NM",
    "canonical_unit",
    "to_pg_per_ml",
]

#: The unit in which CytoSafe stores every cytokine (analyte) concentration.
CONCENTRATION_UNIT = "pg/mL"

#: Factors that convert a mass concentration to pg/mL (SI prefixes; 1 mL = 1e-3 L).
MASS_CONCENTRATION_TO_PG_PER_ML: dict[str, float] = {
    "fg/mL": 1e-3,
    "pg/mL": 1.0,
    "ng/mL": 1e3,
    "ug/mL": 1e6,
    "mg/mL": 1e9,
    "g/mL": 1e12,
    "pg/L": 1e-3,
    "ng/L": 1.0,
    "ug/L": 1e3,
    "mg/L": 1e6,
    "g/L": 1e9,
    "pg/uL": 1e3,
    "ng/uL": 1e6,
}

#: Factors that convert a molar concentration to nM (test-article concentrations).
MOLAR_TO_NM: dict[str, float] = {"fM": 1e-6, "pM": 1e-3, "nM": 1.0, "uM": 1e3, "mM": 1e6, "M": 1e9}


def canonical_unit(unit: object, **where: object) -> str:
    """Return the canonical spelling of a concentration unit (``'pg/ml'`` -> ``'pg/mL'``).

    Raises :class:`UnitError` (naming ``where``) for a unit CytoSafe does not know.
    """
    text = "" if unit is None or (isinstance(unit, float) and math.isnan(unit)) else str(unit)
    text = text.strip().replace(" ", "")
    for old, new in (("µ", "u"), ("μ", "u"), ("mcg", "ug")):
        text = text.replace(old, new)
    if "/" in text:
        num, den = text.split("/", 1)
        den = {"ml": "mL", "l": "L", "ul": "uL", "dl": "dL"}.get(den.lower(), den)
        num = num[:-1] + "g" if num.lower().endswith("g") else num
        num = num.lower() if num.lower() in {"fg", "pg", "ng", "ug", "mg", "g"} else num
        text = f"{num}/{den}"
    else:
        lowered = text.lower()
        molar = {"fm": "fM", "pm": "pM", "nm": "nM", "um": "uM", "mm": "mM", "m": "M"}
        text = molar.get(lowered, text)
    if text in MASS_CONCENTRATION_TO_PG_PER_ML or text in MOLAR_TO_NM:
        return text
    raise UnitError(
        f"unknown concentration unit '{unit}'",
        expected="one of " + ", ".join([*MASS_CONCENTRATION_TO_PG_PER_ML, *MOLAR_TO_NM]),
        **where,
    )


def to_pg_per_ml(unit: object, **where: object) -> float:
    """The factor that converts a value in ``unit`` to pg/mL; molar units are refused."""
    canon = canonical_unit(unit, **where)
    if canon not in MASS_CONCENTRATION_TO_PG_PER_ML:
        raise UnitError(
            f"'{unit}' is a molar unit; cytokine concentrations need a mass unit",
            expected="a mass concentration such as pg/mL or ng/mL",
            **where,
        )
    return MASS_CONCENTRATION_TO_PG_PER_ML[canon]
