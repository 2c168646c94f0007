"""The small error hierarchy of CytoSafe.

Every error a user can cause names *where* the problem is (file, row or well, field) and
*what* was expected, so that the message alone is enough to fix the input. The CLI prints
these without a traceback and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "CytoSafeError",
    "DataWarning",
    "FitError",
    "InputError",
    "SchemaError",
    "UnitError",
]


class CytoSafeError(Exception):
    """Base class of every error CytoSafe raises on purpose."""


class InputError(CytoSafeError, ValueError):
    """Bad user input: a malformed file, an impossible value, a missing well.

    Parameters
    ----------
    message:
        What is wrong, in the user's words.
    file, row, well, field:
        Where it is. ``row`` is the 1-based line number in the file when known (the
        header is line 1 for a plain CSV); ``well`` is the plate well (``A01``).
    expected:
        What would have been accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        well: str | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.well = well
        self.field = field
        self.expected = expected
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.well:
            where.append(f"well {self.well}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text

    def located(self, **where: object) -> InputError:
        """Return a copy with missing location parts filled in (existing parts win)."""
        parts = {k: getattr(self, k) for k in ("file", "row", "well", "field", "expected")}
        for key, value in where.items():
            if parts.get(key) is None and value is not None:
                parts[key] = value
        return type(self)(self.message, **parts)


class SchemaError(InputError):
    """A table does not follow the tidy contract (missing column, wrong type, bad value)."""


class ConflictError(InputError):
    """The input clashes with what is already stored: a study id or user name that exists
    (also when another user created it a moment before). The web app answers 409."""


class UnitError(InputError):
    """A unit is unknown, or not convertible to the unit a field requires."""


class FitError(CytoSafeError):
    """A fit could not be set up (not: a curve did not converge, which is a status)."""


class DataWarning(UserWarning):
    """Data that can be used but deserves a look (e.g. a non-monotonic standard series)."""
