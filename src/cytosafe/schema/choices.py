"""The options of calibration, named once: curve models, weightings, blank handling, covariance.

Each is a :class:`enum.StrEnum`, so a member *is* its string value (``Weighting.Y2 ==
"1/y2"``) and settings stored as plain strings stay readable. Settings classes validate
against these enumerations; the CLI, the web forms and the reports read their choices and
their wording from here, so adding a weighting means adding one member and its phrases.

Each member carries a short ``label`` (for a choice list) and a ``method`` phrase (for the
methods section of a report); where the reports word the same option two ways, the second
wording is a further attribute (:attr:`Weighting.brief`, :attr:`CurveModel.family`) rather
than a copy in the report. The sources of the methods are cited where they are applied
(:mod:`cytosafe.curves.models`, :mod:`cytosafe.curves.fit`,
:mod:`cytosafe.curves.calibration`).

Examples
--------
>>> Weighting("1/y2").method
'weighted least squares (weights 1/y²)'
>>> str(Weighting.Y2), Weighting.Y2 == "1/y2"
('1/y2', True)
"""

from __future__ import annotations

from enum import StrEnum

from cytosafe.errors import InputError

__all__ = ["BlankHandling", "Covariance", "CurveModel", "Weighting", "parse_choice"]


class _Choice(StrEnum):
    """A string option with a label for lists and a phrase for methods text."""

    label: str
    method: str

    def __new__(cls, value: str, *phrases: str):
        member = str.__new__(cls, value)
        member._value_ = value
        return member

    def __init__(self, value: str, label: str, method: str) -> None:
        self.label = label
        self.method = method

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The accepted strings, in declaration order."""
        return tuple(m.value for m in cls)


class CurveModel(_Choice):
    """Standard-curve model families of :mod:`cytosafe.curves.models`.

    ``method`` names the model in a calibration sentence ("a five-parameter logistic (5PL)
    model"); ``family`` names it as a concentration-response family in the potency
    sentence ("a four-parameter log-logistic model", drc's ``LL.4``; Ritz et al. 2015).
    ``5PL`` and ``5PL-mirror`` are the two asymmetric 5PL families (``(1 + u)^-g`` and
    ``(u / (1 + u))^g``), which agree only at ``g = 1``; the mapping of the vendors'
    printed coefficients is in :mod:`cytosafe.curves.models`. ``5PL-auto`` is not a
    model but a choice between the two forms, per curve, by AIC
    (:func:`cytosafe.curves.calibration.calibrate`); standard curves only.
    Names are matched without regard to case (``"5pl"`` is ``5PL``), as
    :func:`cytosafe.curves.models.get_model` does.
    """

    family: str

    FIVE_PL = (
        "5PL",
        "5PL (asymmetric logistic)",
        "five-parameter logistic",
        "five-parameter log-logistic",
    )
    FIVE_PL_MIRROR = (
        "5PL-mirror",
        "5PL, mirror form (as xPONENT and Bio-Plex Manager)",
        "five-parameter logistic in the mirror form a + (d - a)(u/(1 + u))^g, "
        "u = (x/c)^b (the 5PL with a negative slope, as xPONENT and Bio-Plex Manager print "
        "it)",
        "five-parameter log-logistic (mirror form)",
    )
    FIVE_PL_AUTO = (
        "5PL-auto",
        "5PL, form chosen per curve (AIC)",
        "five-parameter logistic in whichever of its two asymmetric forms, (1 + u)^-g or "
        "(u/(1 + u))^g, fits each curve better (smaller AIC; xPONENT's signed-slope Logistic "
        "5P spans both)",
        "five-parameter log-logistic (either form)",
    )
    FOUR_PL = (
        "4PL",
        "4PL (symmetric logistic)",
        "four-parameter logistic",
        "four-parameter log-logistic",
    )
    L4 = (
        "L4",
        "L4 (logistic in linear concentration, drc L.4)",
        "four-parameter logistic in linear concentration",
        "four-parameter logistic",
    )

    def __init__(self, value: str, label: str, method: str, family: str) -> None:
        super().__init__(value, label, method)
        self.family = family

    @classmethod
    def _missing_(cls, value: object) -> CurveModel | None:
        if isinstance(value, str):
            for member in cls:
                if member.value.upper() == value.upper():
                    return member
        return None


class Weighting(_Choice):
    """Weights of the least-squares fit (:func:`cytosafe.curves.fit.curve_weights`).

    ``label`` is the QC report's wording of the settings table ("weighted by 1/y²"),
    ``method`` its methods sentence and ``brief`` the parenthesis of the hazard report's
    methods ("weights 1/y²").
    """

    brief: str

    NONE = ("none", "unweighted", "unweighted least squares", "unweighted")
    Y = ("1/y", "weighted by 1/y", "weighted least squares (weights 1/y)", "weights 1/y")
    Y2 = ("1/y2", "weighted by 1/y²", "weighted least squares (weights 1/y²)", "weights 1/y²")
    VAR = (
        "1/var",
        "weighted by the reciprocal of the replicate variance",
        "weighted least squares (weights 1/replicate variance)",
        "weights 1/variance",
    )

    def __init__(self, value: str, label: str, method: str, brief: str) -> None:
        super().__init__(value, label, method)
        self.brief = brief


class BlankHandling(_Choice):
    """How blank wells enter a standard curve (:mod:`cytosafe.curves.calibration`)."""

    ZERO_STANDARD = (
        "zero_standard",
        "blanks as the zero standard",
        "blanks enter the fit as a standard at concentration 0 (as MSD Discovery Workbench "
        "treats the zero calibrator)",
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


#: What each enumeration is called in messages.
_NOUNS = {
    CurveModel: "curve model",
    Weighting: "weighting",
    BlankHandling: "blank handling",
    Covariance: "covariance",
}


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
            f"unknown {_NOUNS.get(kind, field.replace('_', ' '))} '{value}'",
            field=field,
            expected=" | ".join(kind.values()),
        ) from None
