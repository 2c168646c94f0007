"""Grading scales, one module each, all with the same small interface.

Every scale module has ``NAME``, ``KIND`` (``"CRS"`` or ``"ICANS"``) and
``grade(states, derived, settings) -> Graded``: a vectorised function of the state table
of all patients (:mod:`cytosafe.clinical.states`), the shared derived quantities
(:func:`cytosafe.clinical.scales._common.derive`) and the settings of the criteria file
(:func:`cytosafe.clinical.criteria.settings_for`). Its docstring cites the source and
quotes the criteria; its thresholds live in ``data/clinical_scales.toml``.

| scale | source |
|---|---|
| ``astct2019`` (default) | Lee DW et al., Biol Blood Marrow Transplant 2019;25:625 |
| ``lee2014`` | Lee DW et al., Blood 2014;124:188 |
| ``ctcae5`` | NCI CTCAE v5.0 (2017) |
| ``penn`` | Porter D et al., J Hematol Oncol 2018;11:35 |
| ``mskcc`` | Park JH et al., N Engl J Med 2018;378:449 |
| ``cartox`` | Neelapu SS et al., Nat Rev Clin Oncol 2018;15:47 |
| ``icans`` | Lee DW et al., Biol Blood Marrow Transplant 2019;25:625 (ICANS) |
"""

from __future__ import annotations

from types import ModuleType

from cytosafe.clinical.scales import astct2019, cartox, ctcae5, icans, lee2014, mskcc, penn
from cytosafe.errors import InputError

__all__ = ["DEFAULT_SCALE", "SCALES", "get_scale"]

DEFAULT_SCALE = "astct2019"
SCALES: dict[str, ModuleType] = {
    m.NAME: m for m in (astct2019, lee2014, ctcae5, penn, mskcc, cartox, icans)
}


def get_scale(name: str) -> ModuleType:
    """The module of scale ``name``; an unknown name is an :class:`InputError`."""
    key = str(name).strip().lower()
    if key not in SCALES:
        raise InputError(
            f"unknown grading scale '{name}'", field="scale", expected=" | ".join(SCALES)
        )
    return SCALES[key]
