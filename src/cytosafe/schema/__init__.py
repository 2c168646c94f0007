"""Tidy table definitions, units and validation (the contract between the layers)."""

from cytosafe.schema.measurements import (
    MEASUREMENT_COLUMNS,
    SAMPLE_TYPES,
    TREATMENT_ROLES,
    Column,
    validate_measurements,
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
    "PLATE_FORMATS",
    "SAMPLE_TYPES",
    "TREATMENT_ROLES",
    "Column",
    "canonical_unit",
    "normalize_well",
    "plate_format_for",
    "to_pg_per_ml",
    "validate_measurements",
    "well_index",
    "well_name",
]
