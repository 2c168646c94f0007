"""Translation to people: first-in-human dose and simulated cytokine release under regimens.

* :mod:`~cytosafe.translate.fih` — MABEL from in vitro potency (the most sensitive assay
  of a potency table, or an ECx given by hand) and from receptor occupancy (simple and
  target-depletion binding), converted to a dose under documented PK assumptions; the
  NOAEL-based MRSD with FDA 2005 body-surface-area scaling for comparison;
* :mod:`~cytosafe.translate.model` — a mechanistic cytokine-release model (PK, T-cell
  stimulation, a priming pool, IL-6) integrated over a whole virtual population at once;
* :mod:`~cytosafe.translate.population` — virtual populations, regimen comparison, the
  step-up schedule search, Dask for large populations;
* :mod:`~cytosafe.translate.regimen` — regimens and the regimen file of
  ``cytosafe simulate``;
* :mod:`~cytosafe.translate.knowledge` — the knowledge files and their bibliography
  (:func:`references`).
"""

from cytosafe.translate.fih import (
    DoseEstimate,
    concentration_for_occupancy,
    fih_dose,
    human_equivalent_dose,
    mabel_from_occupancy,
    mabel_from_potency,
    most_sensitive,
    mrsd_from_noael,
    occupancy_at_dose,
    receptor_occupancy,
    receptor_occupancy_quadratic,
    species_table,
)
from cytosafe.translate.knowledge import references
from cytosafe.translate.model import (
    DoseSchedule,
    ModelSettings,
    default_parameters,
    sample_population,
    simulate,
    simulate_ivp,
)
from cytosafe.translate.population import (
    PopulationResult,
    search_step_up,
    simulate_population,
)
from cytosafe.translate.regimen import Dose, Regimen, load_regimen_file
from cytosafe.translate.simulation import SimulationRun, run_regimen_file

__all__ = [
    "Dose",
    "DoseEstimate",
    "DoseSchedule",
    "ModelSettings",
    "PopulationResult",
    "Regimen",
    "SimulationRun",
    "concentration_for_occupancy",
    "default_parameters",
    "fih_dose",
    "human_equivalent_dose",
    "load_regimen_file",
    "mabel_from_occupancy",
    "mabel_from_potency",
    "most_sensitive",
    "mrsd_from_noael",
    "occupancy_at_dose",
    "receptor_occupancy",
    "receptor_occupancy_quadratic",
    "references",
    "run_regimen_file",
    "sample_population",
    "search_step_up",
    "simulate",
    "simulate_ivp",
    "simulate_population",
    "species_table",
]
