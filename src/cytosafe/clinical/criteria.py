"""The grading criteria as data: ``cytosafe/data/clinical_scales.toml``, loaded once.

The TOML file is the single source of every threshold the scales apply, each with the
source it comes from (see the comments at its top). This module only reads it and merges
a caller's options over its defaults.
"""

from __future__ import annotations

import copy
from typing import Any

from cytosafe import data
from cytosafe.errors import InputError

__all__ = ["criteria", "criteria_version", "reference", "settings_for"]

_FILE = "clinical_scales.toml"


def _load() -> dict[str, Any]:
    return data.load(_FILE)


def criteria() -> dict[str, Any]:
    """A deep copy of the whole criteria file (callers may not change the cached one)."""
    return copy.deepcopy(_load())


def criteria_version() -> int:
    """The version of the criteria file (bumped whenever a criterion or default changes)."""
    return int(_load()["version"])


def reference(key: str) -> str:
    """The full citation of a reference key of the criteria file (``"ASTCT 2019"``)."""
    return _load()["references"][key]


def _value(entry: Any) -> Any:
    """A ``[common.x]`` table is ``value`` plus its source; tables of numbers stay tables."""
    if isinstance(entry, dict) and "value" in entry:
        return entry["value"]
    if isinstance(entry, dict):
        return {k: v for k, v in entry.items() if k not in ("source", "text", "kind")}
    return entry


def settings_for(scale: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings a scale grades with: shared defaults, the scale's own, then ``overrides``.

    Parameters
    ----------
    scale:
        A scale name of the criteria file (``"astct2019"``).
    overrides:
        Caller's options; every key must be a known setting (a typo is an error, not a
        silently ignored option). Table-valued settings (``fio2_device_estimate``,
        ``high_dose_vasopressors``) are merged key by key.

    Raises
    ------
    InputError
        For an unknown option.
    """
    crit = _load()
    out: dict[str, Any] = {k: copy.deepcopy(_value(v)) for k, v in crit["common"].items()}
    own = crit["scale"][scale]
    for key, value in own.items():
        if key in ("title", "version", "source", "criteria", "notes", "onset"):
            continue
        out[key] = copy.deepcopy(value)
    for key, value in (overrides or {}).items():
        if key not in out:
            raise InputError(
                f"unknown grading option '{key}' for scale {scale}",
                field="options",
                expected=", ".join(sorted(out)),
            )
        if isinstance(out[key], dict) and isinstance(value, dict):
            unknown = set(value) - set(out[key])
            if unknown:
                raise InputError(
                    f"unknown key(s) {sorted(unknown)} in option '{key}'",
                    field="options",
                    expected=", ".join(sorted(out[key])),
                )
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
