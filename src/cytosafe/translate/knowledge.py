"""The translate knowledge files and their bibliography.

``fih_dose.toml`` holds the constants of the first-in-human dose (species scaling of FDA
2005 Table 1, distribution volumes, defaults) and ``cytokine_release.toml`` the structure
and parameters of the cytokine-release model, each with its source; both are read through
:func:`cytosafe.data.load`.
"""

from __future__ import annotations

from cytosafe import data

__all__ = ["FIH_FILE", "MODEL_FILE", "references"]

FIH_FILE = "fih_dose.toml"
MODEL_FILE = "cytokine_release.toml"


def references(*names: str) -> dict[str, str]:
    """Citation key -> full citation, over the given knowledge files (default: both).

    Examples
    --------
    >>> "FDA 2005" in references()
    True
    """
    out: dict[str, str] = {}
    for name in names or (FIH_FILE, MODEL_FILE):
        out.update(data.load(name).get("references", {}))
    return out
