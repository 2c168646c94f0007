"""Typed access to the entries of a knowledge file, with errors that name the entry.

A :class:`Fields` view of one table entry of a knowledge file (read with
:func:`cytosafe.data.read_toml`) reads typed fields and raises
:class:`~cytosafe.errors.InputError` naming the file, the entry (section, position and
key) and the field, with what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cytosafe.errors import InputError

__all__ = ["STATUSES", "Fields", "entries", "unique_keys"]

#: How far a claim was checked against its cited source.
STATUSES = ("confirmed", "unconfirmed")

_MISSING = object()


class Fields:
    """Typed access to one entry of a knowledge file, with located errors.

    Parameters
    ----------
    table:
        The entry (a TOML table).
    file:
        The file it was read from.
    where:
        The entry's name in messages, e.g. ``format[3] 'pbmc_aqueous'``.
    """

    def __init__(self, table: Any, file: str | Path, where: str) -> None:
        self.file = str(file)
        self.where = where
        if not isinstance(table, dict):
            self.fail("is not a table", field=None, expected="a TOML table")
        self.table = table

    def fail(self, message: str, *, field: str | None, expected: str | None = None) -> None:
        name = self.where if field is None else f"{self.where}.{field}"
        raise InputError(f"{self.where}: {message}", file=self.file, field=name, expected=expected)

    def get(
        self,
        field: str,
        kind: type | tuple[type, ...],
        *,
        default: Any = _MISSING,
        expected: str | None = None,
    ) -> Any:
        """The value of ``field``, of type ``kind`` (``default`` when absent, if given)."""
        if field not in self.table:
            if default is not _MISSING:
                return default
            self.fail("missing field", field=field, expected=expected or _kind_name(kind))
        value = self.table[field]
        # bool is an int in Python; a number field must not accept true/false.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            self.fail(f"{value!r} is a boolean", field=field, expected=expected or _kind_name(kind))
        if not isinstance(value, kind):
            self.fail(
                f"{value!r} has the wrong type", field=field, expected=expected or _kind_name(kind)
            )
        return value

    def text(self, field: str, *, default: Any = _MISSING) -> str:
        value = self.get(field, str, default=default)
        if value is not None and value is not default and not value.strip():
            self.fail("is empty", field=field, expected="non-empty text")
        return value

    def number(self, field: str, *, lo: float | None = None, hi: float | None = None) -> float:
        value = float(self.get(field, (int, float)))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(f"{value} is out of range", field=field, expected=f"a number in [{lo}, {hi}]")
        return value

    def choice(self, field: str, allowed: Iterable[str], *, default: Any = _MISSING) -> str:
        allowed = tuple(allowed)
        value = self.get(field, str, default=default)
        if value is default and default is not _MISSING:
            return value
        if value not in allowed:
            self.fail(f"{value!r} is not allowed", field=field, expected=" or ".join(allowed))
        return value

    def strings(self, field: str, *, default: Any = _MISSING, nonempty: bool = False) -> tuple:
        value = self.get(field, list, default=default)
        if value is default and default is not _MISSING:
            return tuple(value) if isinstance(value, list | tuple) else value
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"item {i} is {item!r}", field=field, expected="a list of strings")
        if nonempty and not value:
            self.fail("is empty", field=field, expected="at least one entry")
        return tuple(value)

    def citations(self, known: Callable[[str], bool], field: str = "citations") -> tuple[str, ...]:
        """The entry's citation keys: at least one, each a key of the bibliography."""
        keys = self.strings(field, nonempty=True)
        for key in keys:
            if not known(key):
                self.fail(
                    f"cites {key!r}, which is not in the bibliography",
                    field=field,
                    expected="keys of crs_references.toml",
                )
        return keys

    def status(self) -> str:
        return self.choice("status", STATUSES)

    def entries(self, field: str, *, required: bool = False) -> list[Fields]:
        """The sub-entries ``[[<where>.field]]`` as :class:`Fields` views."""
        items = self.get(field, list, default=None)
        if items is None:
            if required:
                self.fail("missing", field=field, expected="at least one entry")
            return []
        return [
            Fields(item, self.file, f"{self.where}.{field}[{i}]") for i, item in enumerate(items)
        ]


def entries(data: dict, section: str, file: str | Path, *, required: bool = True) -> list[Fields]:
    """The top-level ``[[section]]`` entries of a file, named ``section[i] 'key'``."""
    items = data.get(section)
    if items is None:
        if required:
            raise InputError(
                f"has no [[{section}]] entries", file=str(file), field=section, expected="entries"
            )
        return []
    if not isinstance(items, list):
        raise InputError("is not an array of tables", file=str(file), field=section)
    out = []
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        out.append(Fields(item, file, f"{section}[{i}]" + (f" {key!r}" if key else "")))
    return out


def unique_keys(items: list[Fields], field: str = "key") -> dict[str, Fields]:
    """Map each entry's key to it; duplicate keys are an error naming the second one."""
    seen: dict[str, Fields] = {}
    for item in items:
        key = item.text(field)
        if key in seen:
            item.fail(f"duplicate key {key!r}", field=field, expected="unique keys")
        seen[key] = item
    return seen


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "an integer", float: "a number", list: "a list", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))
