"""Tidy table definitions, units and validation (the contract between the layers).

The measurement table (:mod:`~cytosafe.schema.measurements`) is what every instrument reader
returns; the observation table (:mod:`~cytosafe.schema.observations`) what every clinical
reader returns and grading reads; :mod:`~cytosafe.schema.choices` names the options of
calibration once.

The names below are imported on first use (PEP 562), so that a light module such as
:mod:`cytosafe.schema.choices`, which the command line reads at start, does not load
pandas with the package.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "MEASUREMENT_COLUMNS": "measurements",
    "SAMPLE_TYPES": "measurements",
    "TREATMENT_ROLES": "measurements",
    "Column": "measurements",
    "validate_measurements": "measurements",
    "OBSERVATION_COLUMNS": "observations",
    "Observations": "observations",
    "validate_observations": "observations",
    "CONCENTRATION_UNIT": "units",
    "canonical_unit": "units",
    "to_pg_per_ml": "units",
    "PLATE_FORMATS": "wells",
    "normalize_well": "wells",
    "plate_format_for": "wells",
    "well_index": "wells",
    "well_name": "wells",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
