"""Curve models, the batched fitter, calibration (back-calculation, LLOQ/ULOQ) and potency."""

from cytosafe.curves.fit import (
    USABLE,
    WEIGHTINGS,
    FamilyChoice,
    FitLimits,
    FitResult,
    check_limits,
    choose_family,
    curve_weights,
    fit_curves,
)
from cytosafe.curves.models import (
    MODELS,
    FivePL,
    FourPL,
    Logistic4,
    MirrorFivePL,
    Model,
    curve_difference,
    get_model,
    vendor_curve,
)

__all__ = [
    "MODELS",
    "USABLE",
    "WEIGHTINGS",
    "FamilyChoice",
    "FitLimits",
    "FitResult",
    "FivePL",
    "FourPL",
    "Logistic4",
    "MirrorFivePL",
    "Model",
    "check_limits",
    "choose_family",
    "curve_difference",
    "curve_weights",
    "fit_curves",
    "get_model",
    "vendor_curve",
]
