"""Reading the translate knowledge files (``fih_dose.toml``, ``cytokine_release.toml``)."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Any

from cytosafe.errors import InputError

FIH_FILE = "fih_dose.toml"
MODEL_FILE = "cytokine_release.toml"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The parsed knowledge file ``cytosafe/data/<name>`` (cached; do not mutate)."""
    text = resources.files("cytosafe").joinpath("data", name).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - the shipped files parse
        raise InputError(f"not valid TOML: {exc}", file=name) from None


def references(*names: str) -> dict[str, str]:
    """Citation key -> full citation, over the given knowledge files (default: both)."""
    out: dict[str, str] = {}
    for name in names or (FIH_FILE, MODEL_FILE):
        out.update(load(name).get("references", {}))
    return out
