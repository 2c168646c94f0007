"""CytoSafe's cited knowledge files, and the one way every package reads them.

The files beside this module are the single source of each fact they hold (assay formats,
drug modalities, the CRS AOP and its quantitative models, grading criteria, responder
rules, first-in-human dose constants, the cytokine-release model), each entry with its
citation. This module is on the bottom layer (it imports only :mod:`cytosafe.errors`), so
every analysis package can read them without importing another:

* :func:`load` — a shipped TOML file by name, parsed once and cached;
* :func:`path` — the path of a shipped file, for non-TOML files (the MaBoSS model
  ``crs_mechanism.bnd`` / ``.cfg``) and for messages;
* :func:`read_toml` — any knowledge file by path (a user's own AOP or knowledge base),
  checking its ``schema`` and ``version``;
* :class:`Fields`, :func:`entries`, :func:`unique_keys` — typed access to the entries of a
  knowledge file, whose errors name the file, the entry and the field.

Examples
--------
>>> from cytosafe import data
>>> data.load("hazard_rules.toml")["version"]
1
>>> data.path("crs_mechanism.bnd").name
'crs_mechanism.bnd'
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from cytosafe.data.fields import STATUSES, Fields, entries, unique_keys
from cytosafe.errors import InputError

__all__ = ["STATUSES", "Fields", "entries", "load", "path", "read_toml", "unique_keys"]


def path(name: str) -> Path:
    """The path of the file ``name`` shipped in ``cytosafe/data``.

    Raises
    ------
    InputError
        No such file is shipped.
    """
    where = Path(str(resources.files(__name__) / name))
    if not where.is_file():
        raise InputError(
            "is not a shipped data file", file=name, expected=", ".join(_shipped_names())
        )
    return where


@functools.cache
def load(name: str, *, schema: str | None = None) -> dict[str, Any]:
    """The shipped TOML file ``name``, parsed once and cached.

    The same dictionary is returned to every caller: read it, do not change it (take a
    :func:`copy.deepcopy` to build on it).

    Parameters
    ----------
    name:
        A file name of ``cytosafe/data`` (``"fih_dose.toml"``).
    schema:
        When given, the ``schema`` the file must declare.

    Raises
    ------
    InputError
        The file is not shipped, not valid TOML, or declares another schema.
    """
    return _parse(path(name), schema=schema)


def read_toml(file: str | Path, *, schema: str | None = None) -> dict[str, Any]:
    """Parse a knowledge file (shipped or a user's own); check ``schema`` and ``version``.

    Unlike :func:`load` the result is not cached and the file must carry a non-empty
    ``version`` string, as the knowledge bases a user may replace do.

    Raises
    ------
    InputError
        The file is missing or not valid TOML (the parser's line and column are kept), it
        declares another schema, or it has no version.
    """
    data = _parse(Path(file), schema=schema)
    if not isinstance(data.get("version"), str) or not data["version"]:
        raise InputError(
            "has no version", file=str(file), field="version", expected="a version string"
        )
    return data


def _parse(file: Path, *, schema: str | None) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("file not found", file=str(file)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(file)) from None
    if schema is not None and data.get("schema") != schema:
        raise InputError(
            f"declares schema {data.get('schema')!r}",
            file=str(file),
            field="schema",
            expected=repr(schema),
        )
    return data


def _shipped_names() -> list[str]:
    return sorted(
        p.name
        for p in resources.files(__name__).iterdir()
        if p.name.endswith((".toml", ".bnd", ".cfg"))
    )
