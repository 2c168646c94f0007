"""CytoSafe: cytokine release syndrome risk from the plate to the patient.

The public face of the package. Analysis stages are plain functions from tidy tables to
tidy tables; see ``cytosafe.io`` (readers), ``cytosafe.curves`` (fitting, calibration,
potency), :func:`quantify` (the whole quantification step, from
:mod:`cytosafe.quantification`) and :func:`analyze` (a study from its exports to its hazard
call and report, the workflow :func:`cytosafe.workflows.run_analysis`).
"""

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


def _installed_version() -> str:
    """The installed distribution's version, as ``importlib.metadata.version`` gives it.

    Read from the one ``cytosafe-*.dist-info/METADATA`` of the first ``sys.path`` entry
    that holds one, without importing :mod:`importlib.metadata` (which costs ~0.035 s of
    every command: issue 16, item 4); anything else (several, an egg, a zip) asks it.
    """
    import os
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found = [
            n
            for n in names
            if n.lower().startswith(("cytosafe-", "cytosafe.")) and n.endswith("-info")
        ]
        if not found:
            continue
        if len(found) == 1 and found[0].endswith(".dist-info"):
            try:
                with open(os.path.join(entry or ".", found[0], "METADATA"), encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
                        if not line.strip():
                            break  # the end of the headers
            except OSError:
                pass
        break
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cytosafe")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        # Looked up on first use and kept: most commands never print it.
        globals()["__version__"] = value = _installed_version()
        return value
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'cytosafe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})
