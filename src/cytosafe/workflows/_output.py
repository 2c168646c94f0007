"""Writing a run's output directory: tables as CSV, settings as JSON, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError

__all__ = ["check_out", "write_settings", "write_tables"]


def check_out(out: str | Path) -> Path:
    """``out`` as a path, or an :class:`InputError` when it names something not a directory."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    return out


def write_tables(folder: Path, tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Write each table as ``<name>.csv`` (UTF-8, ``\\n`` line ends); return the file names."""
    names = []
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        names.append(f"{name}.csv")
    return names


def write_settings(folder: Path, settings: Mapping) -> str:
    """Write the run's settings as ``settings.json``; return the file name."""
    with (folder / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
        json.dump(settings, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
    return "settings.json"
