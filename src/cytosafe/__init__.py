"""CytoSafe: cytokine release syndrome risk from the plate to the patient.

The public face of the package. Analysis stages are plain functions from tidy tables to
tidy tables; see ``cytosafe.io`` (readers), ``cytosafe.curves`` (fitting, calibration,
potency), :func:`quantify` (the whole quantification step, from
:mod:`cytosafe.quantification`) and :func:`analyze` (a study from its exports to its hazard
call and report, the workflow :func:`cytosafe.workflows.run_analysis`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cytosafe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from cytosafe.errors import CytoSafeError, InputError, SchemaError, UnitError

__all__ = [
    "CytoSafeError",
    "InputError",
    "SchemaError",
    "UnitError",
    "__version__",
    "analyze",
    "quantify",
    "read",
]

#: Public functions imported on first use, so that ``import cytosafe`` stays light:
#: name -> (module, attribute).
_LAZY = {
    "analyze": ("cytosafe.workflows", "run_analysis"),
    "quantify": ("cytosafe.quantification", "quantify"),
    "read": ("cytosafe.io", "read"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'cytosafe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
