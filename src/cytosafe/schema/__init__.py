"""Tidy table definitions, units and validation (the contract between the layers).

The measurement table (:mod:`~cytosafe.schema.measurements`) is what every instrument reader
returns; the observation table (:mod:`~cytosafe.schema.observations`) what every clinical
reader returns and grading reads.
"""

from cytosafe.schema.measurements import (
    MEASUREMENT_COLUMNS,
    SAMPLE_TYPES,
    TREATMENT_ROLES,
    Column,
    validate_measurements,
)
from cytosafe.schema.observations import (
    OBSERVATION_COLUMNS,
    Observations,
    validate_observations,
)
from cytosafe.schema.units import CONCENTRATION_UNIT, canonical_unit, to_pg_per_ml
from cytosafe.schema.wells import (
    PLATE_FORMATS,
    normalize_well,
    plate_format_for,
    well_index,
    well_name,
)

__all__ = [
    "CONCENTRATION_UNIT",
    "MEASUREMENT_COLUMNS",
    "OBSERVATION_COLUMNS",
    "PLATE_FORMATS",
    "SAMPLE_TYPES",
    "TREATMENT_ROLES",
    "Column",
    "Observations",
    "canonical_unit",
    "normalize_well",
    "plate_format_for",
    "to_pg_per_ml",
    "validate_measurements",
    "validate_observations",
    "well_index",
    "well_name",
]
