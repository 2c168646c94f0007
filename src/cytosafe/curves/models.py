"""Curve models as small objects: value, analytic Jacobian, inverse, self-starter, names.

Borrowed from R ``drc`` (Ritz et al., PLOS ONE 2015;10:e0146021): a model family carries its
function, derivatives and starting values, and the fitter (:mod:`cytosafe.curves.fit`)
knows nothing about any particular curve. Every method works on *batches*: ``x`` and
``y`` are ``(n_curves, n_points)`` arrays and parameters ``(n_curves, n_params)``.

The immunoassay parameterisation is used (as in xPONENT, Bio-Plex Manager and MSD
Discovery Workbench, and in Gottschalk & Dunn, Anal Biochem 2005;343:54-65 for the 5PL)::

    4PL:  f(x) = d + (a - d) / (1 + (x/c)^b)
    5PL:  f(x) = d + (a - d) / (1 + (x/c)^b)^g

``a`` is the response at zero concentration, ``d`` the response at infinite concentration,
``c`` the inflection point (the EC50 of the 4PL), ``b > 0`` the slope and ``g > 0`` the
asymmetry. The direction of the curve is carried by ``a`` versus ``d`` (``a < d``: rising),
so ``b`` stays positive and a zero concentration is allowed (``f(0) = a``). drc's ``LL.4``
maps as ``drc b = b, c = d, d = a, e = c``.

Positive parameters (``b``, ``c``, ``g``) are fitted on the log scale, which keeps them
positive without bounds; at the optimum the reported covariance is transformed back
exactly (the gradient vanishes there).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["MODELS", "FivePL", "FourPL", "Logistic4", "Model", "get_model"]

_FLOOR = np.finfo(float).tiny


class Model:
    """A curve family. Subclasses set ``name``, ``names``, ``positive`` and implement
    :meth:`f` and :meth:`jac`; :meth:`inverse`, :meth:`dfdx` and :meth:`start` make it usable
    for calibration and potency.
    """

    name: str = "model"
    names: tuple[str, ...] = ()
    #: Which parameters are constrained positive (fitted on the log scale).
    positive: tuple[bool, ...] = ()
    #: Formula shown in reports and methods sections.
    formula: str = ""

    @property
    def n_params(self) -> int:
        return len(self.names)

    def f(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Model value, ``(n, m)`` from ``x (n, m)`` and ``p (n, k)``."""
        raise NotImplementedError

    def jac(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Jacobian with respect to the parameters, ``(n, m, k)``."""
        raise NotImplementedError

    def dfdx(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Derivative with respect to ``x`` (needed for inverse-prediction intervals)."""
        raise NotImplementedError(f"{self.name} has no dfdx")

    def inverse(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``x`` such that ``f(x) = y``; NaN where ``y`` is outside the asymptotes."""
        raise NotImplementedError(f"{self.name} has no inverse")

    def start(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Starting values ``(n, k)`` from the data."""
        raise NotImplementedError(f"{self.name} has no self-starter")

    def start_candidates(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Several starting points ``(s, n, k)``; the fitter keeps the best fit of each curve."""
        return self.start(x, y, mask)[None]

    # Internal (unconstrained) parameterisation used by the fitter.
    def to_internal(self, p: np.ndarray) -> np.ndarray:
        pos = np.asarray(self.positive, dtype=bool)
        theta = np.array(p, dtype=float, copy=True)
        theta[..., pos] = np.log(np.maximum(theta[..., pos], _FLOOR))
        return theta

    def from_internal(self, theta: np.ndarray) -> np.ndarray:
        pos = np.asarray(self.positive, dtype=bool)
        p = np.array(theta, dtype=float, copy=True)
        p[..., pos] = np.exp(np.clip(theta[..., pos], -700.0, 700.0))
        return p

    def internal_scale(self, p: np.ndarray) -> np.ndarray:
        """d p / d theta, per parameter: ``p`` for log-scaled parameters, 1 otherwise."""
        pos = np.asarray(self.positive, dtype=bool)
        return np.where(pos, p, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _log_ratio(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(x / c)`` where ``x > 0``, and the mask of ``x > 0`` (``x = 0`` is allowed)."""
    pos = x > 0
    lx = np.log(np.where(pos, x, 1.0))
    return np.where(pos, lx - np.log(c), 0.0), pos


class FivePL(Model):
    """Five-parameter logistic (asymmetric) in log concentration.

    ``f(x) = d + (a - d) / (1 + (x/c)^b)^g`` (Gottschalk & Dunn 2005). With ``g = 1`` it is
    the 4PL.
    """

    name = "5PL"
    names = ("a", "b", "c", "d", "g")
    positive = (False, True, True, False, True)
    formula = "f(x) = d + (a - d) / (1 + (x/c)^b)^g"

    def _parts(self, x, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        lr, pos = _log_ratio(x, c)
        z = np.where(pos, b * lr, -np.inf)
        log_s = np.logaddexp(0.0, z)  # log(1 + (x/c)^b) without overflow
        s_mg = np.exp(-g * log_s)  # (1 + u)^-g
        frac = expit(z)  # u / (1 + u)
        return a, b, c, d, g, lr, pos, log_s, s_mg, frac

    def f(self, x, p):
        a, _, _, d, _, _, _, _, s_mg, _ = self._parts(x, p)
        return d + (a - d) * s_mg

    def jac(self, x, p):
        a, b, c, d, g, lr, pos, log_s, s_mg, frac = self._parts(x, p)
        common = -(a - d) * g * s_mg * frac  # d f / d log u
        jb = np.where(pos, common * lr, 0.0)
        jc = np.where(pos, -common * b / c, 0.0)
        jg = -(a - d) * s_mg * log_s
        return np.stack(np.broadcast_arrays(s_mg, jb, jc, 1.0 - s_mg, jg), axis=-1)

    def dfdx(self, x, p):
        a, b, _, d, g, _, pos, _, s_mg, frac = self._parts(x, p)
        safe = np.where(pos, x, 1.0)
        return np.where(pos, -(a - d) * g * s_mg * frac * b / safe, 0.0)

    def inverse(self, y, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (a - d) / (y - d)
            ok = np.isfinite(ratio) & (ratio > 1.0)
            log_u = np.log(np.expm1(np.log(np.where(ok, ratio, 2.0)) / g))
            x = c * np.exp(np.clip(log_u / b, -700, 700))
        return np.where(ok, x, np.nan)

    def start(self, x, y, mask):
        p4 = _log_logistic_start(x, y, mask)
        return np.column_stack([p4, np.ones(len(p4))])

    def start_candidates(self, x, y, mask):
        # The 5PL's asymmetry trades off against c and b; starting from several g (the
        # symmetric curve and one asymmetric each way) avoids the shallow valleys a single
        # start falls into. All candidates are fitted in one batch.
        base = self.start(x, y, mask)
        cands = []
        for g in (1.0, 0.4, 2.5):
            cand = base.copy()
            cand[:, 4] = g
            cands.append(cand)
        return np.stack(cands)


class FourPL(FivePL):
    """Four-parameter logistic in log concentration (log-logistic, drc ``LL.4``).

    ``f(x) = d + (a - d) / (1 + (x/c)^b)``.
    """

    name = "4PL"
    names = ("a", "b", "c", "d")
    positive = (False, True, True, False)
    formula = "f(x) = d + (a - d) / (1 + (x/c)^b)"

    @staticmethod
    def _with_g(p):
        return np.column_stack([p, np.ones(p.shape[0])])

    def f(self, x, p):
        return super().f(x, self._with_g(p))

    def jac(self, x, p):
        return super().jac(x, self._with_g(p))[..., :4]

    def dfdx(self, x, p):
        return super().dfdx(x, self._with_g(p))

    def inverse(self, y, p):
        return super().inverse(y, self._with_g(p))

    def start(self, x, y, mask):
        return _log_logistic_start(x, y, mask)

    def start_candidates(self, x, y, mask):
        return self.start(x, y, mask)[None]


class Logistic4(Model):
    """Four-parameter logistic in *linear* x (drc ``L.4``): ``f(x) = d + (a - d) / (1 + exp(b (x - c)))``.

    Used for growth-type curves (e.g. the NIST StRD ``Rat42`` problem) rather than
    immunoassays; ``b`` may take either sign.
    """

    name = "L4"
    names = ("a", "b", "c", "d")
    positive = (False, False, False, False)
    formula = "f(x) = d + (a - d) / (1 + exp(b (x - c)))"

    def f(self, x, p):
        a, b, c, d = (p[:, i : i + 1] for i in range(4))
        return d + (a - d) * expit(-b * (x - c))

    def jac(self, x, p):
        a, b, c, d = (p[:, i : i + 1] for i in range(4))
        s = expit(-b * (x - c))
        ds = -s * (1.0 - s)  # d s / d (b (x - c))
        return np.stack(
            np.broadcast_arrays(s, (a - d) * ds * (x - c), -(a - d) * ds * b, 1.0 - s), axis=-1
        )

    def dfdx(self, x, p):
        a, b, c, d = (p[:, i : i + 1] for i in range(4))
        s = expit(-b * (x - c))
        return -(a - d) * s * (1.0 - s) * b

    def inverse(self, y, p):
        a, b, c, d = (p[:, i : i + 1] for i in range(4))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (y - d) / (a - d)
            ok = (s > 0) & (s < 1)
            x = c + np.log(np.where(ok, (1 - s) / np.where(ok, s, 1.0), 1.0)) / b
        return np.where(ok, x, np.nan)

    def start(self, x, y, mask):
        a, b, center, d = _logistic_start(
            x, y, mask, x, mask & np.isfinite(x), positive_slope=False
        )
        return np.column_stack([a, b, center, d])


def _logistic_start(
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    t: np.ndarray,
    use: np.ndarray,
    *,
    positive_slope: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Self-starter shared by the logistic models, vectorised over curves.

    Asymptotes: the responses at the lowest and highest ``x``, widened by 5% of the
    observed range (asymptotes lie beyond the data). Slope and centre: the least-squares
    line of ``logit((y - a) / (d - a))`` on ``t`` (``log x`` for the log-logistic models,
    ``x`` for ``L4``) over the points in ``use`` -- the linearisation of drc's self-starters.
    Returns ``a, b, centre, d`` with the centre on the ``t`` scale, kept within a decade
    (2.3 log units) of the data so that Levenberg-Marquardt starts on the curve.
    """
    m = mask & np.isfinite(y) & np.isfinite(x)
    big = np.finfo(float).max
    x_lo = np.where(m, x, big).min(axis=1, keepdims=True)
    x_hi = np.where(m, x, -big).max(axis=1, keepdims=True)
    at_lo = m & (x == x_lo)
    at_hi = m & (x == x_hi)
    y_lo = (np.where(at_lo, y, 0).sum(1) / np.maximum(at_lo.sum(1), 1))[:, None]
    y_hi = (np.where(at_hi, y, 0).sum(1) / np.maximum(at_hi.sum(1), 1))[:, None]
    y_min = np.where(m, y, big).min(axis=1, keepdims=True)
    y_max = np.where(m, y, -big).max(axis=1, keepdims=True)
    span = np.maximum(y_max - y_min, 1e-12 * np.maximum(np.abs(y_max), 1.0))
    rising = y_hi >= y_lo
    a = np.where(rising, y_min - 0.05 * span, y_max + 0.05 * span)
    d = np.where(rising, y_max + 0.05 * span, y_min - 0.05 * span)
    frac = np.clip((y - a) / (d - a), 0.02, 0.98)
    use = use & m
    tt = np.where(use, t, 0.0)
    ly = np.where(use, np.log(frac / (1 - frac)), 0.0)
    w = use.astype(float)
    n = np.maximum(w.sum(1, keepdims=True), 1.0)
    mt = (w * tt).sum(1, keepdims=True) / n
    my = (w * ly).sum(1, keepdims=True) / n
    stt = (w * (tt - mt) ** 2).sum(1, keepdims=True)
    sty = (w * (tt - mt) * (ly - my)).sum(1, keepdims=True)
    b = np.where(stt > 0, sty / np.where(stt > 0, stt, 1.0), 1.0)
    if positive_slope:
        b = np.where(np.isfinite(b) & (b > 0.05), b, 1.0)
    else:
        tiny = 1e-3 / np.sqrt(np.maximum(stt / n, 1e-300))
        b = np.where(
            np.isfinite(b) & (np.abs(b) > tiny), b, np.sign(y_hi - y_lo + 1e-300) * 10 * tiny
        )
    center = mt - my / b
    t_lo = np.where(use, t, big).min(axis=1, keepdims=True)
    t_hi = np.where(use, t, -big).max(axis=1, keepdims=True)
    margin = 2.3 if positive_slope else 0.5 * (t_hi - t_lo)
    center = np.clip(center, t_lo - margin, t_hi + margin)
    return a[:, 0], b[:, 0], center[:, 0], d[:, 0]


def _log_logistic_start(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """4PL starting values ``(a, b, c, d)`` for the log-logistic models."""
    use = mask & (x > 0)
    t = np.log(np.where(use, x, 1.0))
    a, b, center, d = _logistic_start(x, y, mask, t, use, positive_slope=True)
    return np.column_stack([a, b, np.exp(center), d])


MODELS: dict[str, Model] = {"4PL": FourPL(), "5PL": FivePL(), "L4": Logistic4()}


def get_model(model: str | Model) -> Model:
    """Return a model object from its name (``'4PL'``, ``'5PL'``, ``'L4'``) or the object itself."""
    if isinstance(model, Model):
        return model
    key = str(model).upper()
    if key not in MODELS:
        from cytosafe.errors import InputError

        raise InputError(
            f"unknown curve model '{model}'", field="model", expected=" | ".join(MODELS)
        )
    return MODELS[key]
