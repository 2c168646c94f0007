"""The options of calibration, named once: curve models, weightings, blank handling, covariance.

Each is a :class:`enum.StrEnum`, so a member *is* its string value (``Weighting.Y2 ==
"1/y2"``) and settings stored as plain strings stay readable. Settings classes validate
against these enumerations; the CLI, the web forms and the reports read their choices and
their wording from here, so adding a weighting means adding one member and its phrases.

Each member carries a short ``label`` (for a choice list) and a ``method`` phrase (for the
methods section of a report). The sources of the methods are cited where they are applied
(:mod:`cytosafe.curves.fit`, :mod:`cytosafe.curves.calibration`).
"""

from __future__ import annotations

from enum import StrEnum

from cytosafe.errors import InputError

__all__ = ["BlankHandling", "Covariance", "CurveModel", "Weighting", "parse_choice"]


class _Choice(StrEnum):
    """A string option with a label for lists and a phrase for methods text."""

    label: str
    method: str

    def __new__(cls, value: str, label: str, method: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.method = method
        return member

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The accepted strings, in declaration order."""
        return tuple(m.value for m in cls)


class CurveModel(_Choice):
    """Standard-curve model families of :mod:`cytosafe.curves.models`."""

    FIVE_PL = ("5PL", "5PL (asymmetric logistic)", "five-parameter logistic")
    FOUR_PL = ("4PL", "4PL (symmetric logistic)", "four-parameter logistic")
    L4 = ("L4", "L4 (log-logistic, drc LL.4)", "four-parameter log-logistic")


class Weighting(_Choice):
    """Weights of the least-squares fit (:func:`cytosafe.curves.fit.weights_for`)."""

    NONE = ("none", "unweighted", "unweighted least squares")
    Y = ("1/y", "weighted by 1/y", "weighted least squares (weights 1/y)")
    Y2 = ("1/y2", "weighted by 1/y²", "weighted least squares (weights 1/y²)")
    VAR = (
        "1/var",
        "weighted by the reciprocal of the replicate variance",
        "weighted least squares (weights 1/replicate variance)",
    )


class BlankHandling(_Choice):
    """How blank wells enter a standard curve (:mod:`cytosafe.curves.calibration`)."""

    ZERO_STANDARD = (
        "zero_standard",
        "blanks as the zero standard",
        "blanks enter the fit as the zero calibrator (as MSD Discovery Workbench treats the "
        "zero calibrator)",
    )
    SUBTRACT = (
        "subtract",
        "subtract the mean blank",
        "the plate's mean blank signal is subtracted from every signal before fitting (as "
        "xPONENT's net MFI)",
    )
    IGNORE = (
        "ignore",
        "blanks in QC only",
        "blanks are reported in QC only and do not enter the fit",
    )


class Covariance(_Choice):
    """The parameter covariance of a fit (:mod:`cytosafe.curves.fit`)."""

    EXPECTED = (
        "expected",
        "expected (Gauss-Newton)",
        "σ²(JᵀWJ)⁻¹ (Gauss-Newton, as R nls and SciPy curve_fit)",
    )
    OBSERVED = ("observed", "observed (full Hessian)", "the inverse of the full Hessian (as R drc)")


def parse_choice(kind: type[_Choice], value: object, *, field: str) -> _Choice:
    """``value`` as a member of ``kind``, or an :class:`InputError` listing the choices.

    Examples
    --------
    >>> parse_choice(Weighting, "1/y2", field="weighting") is Weighting.Y2
    True
    """
    try:
        return kind(value)
    except ValueError:
        raise InputError(
            f"unknown {field.replace('_', ' ')} '{value}'",
            field=field,
            expected=" | ".join(kind.values()),
        ) from None
