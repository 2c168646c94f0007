"""Units of concentration, read from instrument exports and converted to the house units.

Cytokine concentrations are stored in pg/mL (the unit of every commercial cytokine
multiplex kit). Mass concentrations convert by SI prefixes; the spellings vendors write
(``pg/ml``, ``pg/mL``, ``µg/mL``, ``ug/ml``, ``ng/L``) are all accepted. Molar units are
kept for test-article (treatment) concentrations, where no conversion across mass and molar
is made without a molecular weight.

Arbitrary and activity units (:data:`ARBITRARY_UNITS`: IU/mL, U/mL, AU/mL, ...) are kept
as written, unconverted and labelled with their canonical spelling; they are never taken
for pg/mL. An international unit (IU) is defined by the contents of an ampoule of a WHO
International Standard, not by a mass (WHO Expert Committee on Biological
Standardization, *Recommendations for the preparation, characterization and establishment
of international and other standards and reference reagents for biological substances*,
WHO Technical Report Series 932, Annex 2, 2006): converting IU to a mass needs the
specific activity of the analyte's own standard, which differs between analytes and
between successive standards (for IL-6 the first International Standard, NIBSC code
89/548; Gaines Das RE, Poole S, J Immunol Methods 1993;160:147-153). Kit units (U, AU) are
the kit maker's own and convert to nothing. CytoSafe assumes no such factor:
:func:`to_pg_per_ml` refuses these units, and :func:`analyte_unit` says how a reader
stores a value given in any unit.
"""

from __future__ import annotations

import math

from cytosafe.errors import UnitError

__all__ = [
    "ARBITRARY_UNITS",
    "CONCENTRATION_UNIT",
    "MASS_CONCENTRATION_TO_PG_PER_ML",
    "MOLAR_TO_NM",
    "analyte_unit",
    "canonical_unit",
    "is_arbitrary",
    "to_pg_per_ml",
]

#: The unit in which CytoSafe stores every cytokine (analyte) concentration given in a
#: mass unit.
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

#: Arbitrary and activity units, canonical spelling -> what the unit is. Values in them
#: are kept as written (module notes): no factor to a mass exists without the analyte's
#: own standard.
ARBITRARY_UNITS: dict[str, str] = {
    "IU/mL": "international units per mL (a WHO International Standard's unit)",
    "mIU/mL": "milli-international units per mL",
    "uIU/mL": "micro-international units per mL",
    "IU/L": "international units per L",
    "U/mL": "units (of activity, or of the kit's calibrator) per mL",
    "mU/mL": "milli-units per mL",
    "U/L": "units per L",
    "kU/L": "kilo-units per L",
    "AU/mL": "arbitrary units per mL (the kit's calibrator)",
    "kAU/L": "kilo-arbitrary units per L",
}

#: Numerators of :data:`ARBITRARY_UNITS` in any case -> their canonical spelling.
_ARBITRARY_NUMERATORS = {
    "iu": "IU",
    "miu": "mIU",
    "uiu": "uIU",
    "u": "U",
    "mu": "mU",
    "ku": "kU",
    "au": "AU",
    "kau": "kAU",
}


def canonical_unit(unit: object, **where: object) -> str:
    """Return the canonical spelling of a concentration unit (``'pg/ml'`` -> ``'pg/mL'``,
    ``'iu/ml'`` -> ``'IU/mL'``).

    Mass (:data:`MASS_CONCENTRATION_TO_PG_PER_ML`), molar (:data:`MOLAR_TO_NM`) and
    arbitrary units (:data:`ARBITRARY_UNITS`) are known. Raises :class:`UnitError`
    (naming ``where``) for a unit CytoSafe does not know.
    """
    text = "" if unit is None or (isinstance(unit, float) and math.isnan(unit)) else str(unit)
    text = text.strip().replace(" ", "")
    for old, new in (("µ", "u"), ("μ", "u"), ("mcg", "ug")):
        text = text.replace(old, new)
    if "/" in text:
        num, den = text.split("/", 1)
        den = {"ml": "mL", "l": "L", "ul": "uL", "dl": "dL"}.get(den.lower(), den)
        if num.lower() in _ARBITRARY_NUMERATORS:
            num = _ARBITRARY_NUMERATORS[num.lower()]
        else:
            num = num[:-1] + "g" if num.lower().endswith("g") else num
            num = num.lower() if num.lower() in {"fg", "pg", "ng", "ug", "mg", "g"} else num
        text = f"{num}/{den}"
    else:
        lowered = text.lower()
        molar = {"fm": "fM", "pm": "pM", "nm": "nM", "um": "uM", "mm": "mM", "m": "M"}
        text = molar.get(lowered, text)
    if text in MASS_CONCENTRATION_TO_PG_PER_ML or text in MOLAR_TO_NM or text in ARBITRARY_UNITS:
        return text
    raise UnitError(
        f"unknown concentration unit '{unit}'",
        expected="one of "
        + ", ".join([*MASS_CONCENTRATION_TO_PG_PER_ML, *MOLAR_TO_NM, *ARBITRARY_UNITS]),
        **where,
    )


def is_arbitrary(unit: object) -> bool:
    """Whether ``unit`` is an arbitrary or activity unit (:data:`ARBITRARY_UNITS`); an
    unknown or empty unit is not."""
    try:
        return canonical_unit(unit) in ARBITRARY_UNITS
    except UnitError:
        return False


def _arbitrary_refusal(unit: object, canon: str, **where: object) -> UnitError:
    return UnitError(
        f"'{unit}' is an arbitrary unit ({ARBITRARY_UNITS[canon]}): it converts to a mass "
        "only through a factor specific to the analyte's own standard, which CytoSafe does "
        "not assume (WHO TRS 932, Annex 2)",
        expected="a mass concentration such as pg/mL or ng/mL, or the value kept in "
        f"{canon} (concentration_unit)",
        **where,
    )


def to_pg_per_ml(unit: object, **where: object) -> float:
    """The factor that converts a value in ``unit`` to pg/mL.

    Molar units are refused (a molecular weight would be needed), and so are arbitrary
    units (module notes): a :class:`UnitError` naming ``where``.
    """
    canon = canonical_unit(unit, **where)
    if canon in ARBITRARY_UNITS:
        raise _arbitrary_refusal(unit, canon, **where)
    if canon not in MASS_CONCENTRATION_TO_PG_PER_ML:
        raise UnitError(
            f"'{unit}' is a molar unit; cytokine concentrations need a mass unit",
            expected="a mass concentration such as pg/mL or ng/mL",
            **where,
        )
    return MASS_CONCENTRATION_TO_PG_PER_ML[canon]


def analyte_unit(unit: object, **where: object) -> tuple[str, float]:
    """How an analyte concentration given in ``unit`` is stored: ``(stored unit, factor)``.

    A mass unit is converted: ``("pg/mL", factor to pg/mL)``. An arbitrary unit is kept:
    ``(its canonical spelling, 1.0)``. An empty unit (``None``, NaN, ``""``) means pg/mL.
    A molar or unknown unit is a :class:`UnitError` naming ``where``.

    >>> analyte_unit("ng/ml")
    ('pg/mL', 1000.0)
    >>> analyte_unit("iu/ml")
    ('IU/mL', 1.0)
    """
    if unit is None or (isinstance(unit, float) and math.isnan(unit)) or not str(unit).strip():
        return CONCENTRATION_UNIT, 1.0
    canon = canonical_unit(unit, **where)
    if canon in ARBITRARY_UNITS:
        return canon, 1.0
    return CONCENTRATION_UNIT, to_pg_per_ml(unit, **where)
