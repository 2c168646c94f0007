"""Curve models, the batched fitter, calibration (back-calculation, LLOQ/ULOQ) and potency."""

from cytosafe.curves.fit import WEIGHTINGS, FitResult, curve_weights, fit_curves
from cytosafe.curves.models import MODELS, FivePL, FourPL, Logistic4, Model, get_model

__all__ = [
    "MODELS",
    "WEIGHTINGS",
    "FitResult",
    "FivePL",
    "FourPL",
    "Logistic4",
    "Model",
    "curve_weights",
    "fit_curves",
    "get_model",
]
