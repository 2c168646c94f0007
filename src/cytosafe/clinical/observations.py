"""The observation table, for the callers of its former home.

The contract moved to the bottom layer, :mod:`cytosafe.schema.observations`, so that the
clinical readers of :mod:`cytosafe.io` need not import :mod:`cytosafe.clinical`; every name
is importable from here as before.
"""

from cytosafe.schema.observations import (
    CONSCIOUSNESS,
    DEVICES,
    EVENT_ITEMS,
    ITEMS,
    MOTOR,
    OBSERVATION_COLUMNS,
    RAISED_ICP,
    SEIZURE,
    TREATMENTS,
    VASOPRESSORS,
    Item,
    Observations,
    read_observations,
    validate_observations,
)

__all__ = [
    "CONSCIOUSNESS",
    "DEVICES",
    "EVENT_ITEMS",
    "ITEMS",
    "MOTOR",
    "OBSERVATION_COLUMNS",
    "RAISED_ICP",
    "SEIZURE",
    "TREATMENTS",
    "VASOPRESSORS",
    "Item",
    "Observations",
    "read_observations",
    "validate_observations",
]
