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

Two 5PL families
----------------
With ``b > 0`` the 5PL above has one asymmetric shape, ``s = (1 + u)^-g`` with
``u = (x/c)^b``. The same printed formula with a *negative* slope, which is how xPONENT
and Bio-Plex Manager print a rising curve, is the mirror shape (Gottschalk & Dunn 2005
discuss both signs of ``b``)::

    5PL-mirror:  f(x) = a + (d - a) (u / (1 + u))^g,   u = (x/c)^b,  b > 0

(:class:`MirrorFivePL`). The two families agree only at ``g = 1`` (both are then the
4PL); for ``g != 1`` the asymmetry lies at opposite ends of the curve, so a curve fitted
in one family cannot reproduce a vendor's curve printed in the other.

Mapping of the vendors' printed coefficients (:func:`vendor_curve` does it):

* xPONENT (*Logistic 5P*, "Analysis Coefficients" block ``Coefficient A, B, C, D, F``;
  :func:`cytosafe.io.xponent.read_xponent` puts them in ``attrs["analysis"]``) prints
  ``y = A + (B - A) / (1 + (x / C)^D)^F``. With ``D < 0`` (every rising curve):
  ``5PL-mirror`` with ``a = A, d = B, c = C, b = -D, g = F``. With ``D > 0``: ``5PL``
  with ``a = B, d = A, c = C, b = D, g = F``. *Logistic 4P* (no ``F``): the 4PL with
  ``g = 1`` and the same ``a, b, c, d``.
* Bio-Plex Manager (``Std. Curve: FI = d + (a - d) / ((1 + (Conc / c)^b))^g``;
  :func:`cytosafe.io.bioplex.read_bioplex_equations` returns the printed ``a, b, c, d,
  g``): with ``b < 0`` (rising curves): ``5PL-mirror`` with ``a = d_printed,
  d = a_printed, c = c, b = -b_printed, g = g``. With ``b > 0``: ``5PL`` with the printed
  letters unchanged. A 4PL equation reads with ``g = 1``.

Both are checked against the vendors' own back-calculated concentrations in
``tests/test_curves_families.py`` (xPONENT's ``Result`` block of the drLumi export).
Where the vendor's family is unknown, :func:`cytosafe.curves.fit.choose_family` fits
both and keeps the smaller weighted RSS per curve (the families have the same number of
parameters, so this is also the smaller AIC).

Positive parameters (``b``, ``c``, ``g``) are fitted on the log scale, which keeps them
positive without bounds; at the optimum the reported covariance is transformed back
exactly (the gradient vanishes there).

Effective concentrations (:meth:`Model.effective_concentration`) are *relative*, as drc's
``ED(..., type = "relative")``: ECx is the concentration at which the response has moved
the fraction ``x`` of the way from ``a`` to ``d``, given as a fraction (0.2 for EC20)::

    4PL:  ECx = c (x / (1 - x))^(1/b)
    5PL:  ECx = c ((1 - x)^(-1/g) - 1)^(1/b)
    5PL-mirror:  ECx = c (x^(-1/g) - 1)^(-1/b)
    L4:   ECx = c + log(x / (1 - x)) / b

each with its derivative with respect to the parameters
(:meth:`Model.effective_concentration_jac`) for delta-method intervals.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from cytosafe.errors import InputError

__all__ = [
    "MODELS",
    "FivePL",
    "FourPL",
    "Logistic4",
    "MirrorFivePL",
    "Model",
    "curve_difference",
    "get_model",
    "vendor_curve",
]

_FLOOR = np.finfo(float).tiny


class Model:
    """A curve family. Subclasses set ``name``, ``names``, ``positive`` and implement
    :meth:`f` and :meth:`jac`; :meth:`inverse`, :meth:`dfdx` and :meth:`start` make it usable
    for calibration and potency. A model whose parameters include the asymptotes ``a``
    (response at the left end) and ``d`` (at the right end) gets
    :meth:`effective_concentration` from its inverse; the families here give its closed
    form.
    """

    name: str = "model"
    names: tuple[str, ...] = ()
    #: Which parameters are constrained positive (fitted on the log scale).
    positive: tuple[bool, ...] = ()
    #: Which parameters enter the model linearly, ``f = sum_i p_i * phi_i(x, others)``
    #: exactly (empty: none). The fitter eliminates them by variable projection.
    linear: tuple[bool, ...] = ()
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

    def effective_concentration(self, p: np.ndarray, fraction: float | np.ndarray) -> np.ndarray:
        """The relative ECx of each curve, ``(n,)`` from ``p (n, k)``.

        ECx is the concentration at which the response has moved ``fraction`` of the way
        from ``a`` to ``d``: ``f(ECx) = a + fraction (d - a)``, drc's relative effective
        dose (``ED(..., type = "relative")``; Ritz et al., PLOS ONE 2015;10:e0146021).

        Parameters
        ----------
        p:
            Parameters ``(n, k)``, natural scale.
        fraction:
            ``x`` as a fraction in (0, 1), not a percent: 0.2 for EC20, 0.5 for EC50. A
            scalar, or one value per curve.

        The default solves ``f(ECx) = a + fraction (d - a)`` with :meth:`inverse`.
        """
        q = _fraction(fraction)
        a, d = self._asymptotes(p)
        return self.inverse((a + q * (d - a))[:, None], p)[:, 0]

    def effective_concentration_jac(
        self, p: np.ndarray, fraction: float | np.ndarray
    ) -> np.ndarray:
        """Derivative of :meth:`effective_concentration` with respect to ``p``, ``(n, k)``.

        For the delta method: ``Var(ECx) ≈ gᵀ Σ g`` with ``g`` this gradient and ``Σ`` the
        parameter covariance. The default differentiates ``f(ECx, p) = a + fraction
        (d - a)`` implicitly: ``g = -(∂f/∂p - ∂target/∂p) / f'(ECx)``.
        """
        q = _fraction(fraction)
        x = self.effective_concentration(p, q)[:, None]
        target = np.zeros_like(p, dtype=float)
        target[:, self.names.index("a")] = 1.0 - q
        target[:, self.names.index("d")] = q
        with np.errstate(all="ignore"):
            return -(self.jac(x, p)[:, 0, :] - target) / self.dfdx(x, p)[:, 0][:, None]

    def _asymptotes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if "a" not in self.names or "d" not in self.names:
            raise NotImplementedError(
                f"{self.name} has no asymptotes a and d: define effective_concentration"
            )
        return p[:, self.names.index("a")], p[:, self.names.index("d")]

    def start_candidates(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Several starting points ``(s, n, k)``; the fitter keeps the best fit of each curve."""
        return self.start(x, y, mask)[None]

    def basis(self, x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis functions of the linear parameters and their derivatives.

        For a model with ``linear`` parameters ``f = sum_i p_i phi_i``: returns ``phi``
        ``(q, n, m)`` and ``dphi`` ``(q, r, n, m)``, the derivatives of each ``phi_i`` with
        respect to the ``r`` non-linear parameters (natural scale, in model order). The
        default evaluates :meth:`jac` at the unit vectors of the linear parameters.
        """
        lin = np.flatnonzero(np.asarray(self.linear, dtype=bool))
        nl = np.flatnonzero(~np.asarray(self.linear, dtype=bool))
        phi, dphi = [], []
        for i in lin:
            pu = np.array(p, dtype=float, copy=True)
            pu[:, lin] = 0.0
            pu[:, i] = 1.0
            J = np.moveaxis(self.jac(x, pu), -1, 0)
            phi.append(J[i])
            dphi.append(J[nl])
        return np.stack(phi), np.stack(dphi)

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

    def internal_bounds(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box ``(lo, hi)``, each ``(n, k)``, that internal parameters are projected into.

        Keeps a diverging step from sending a parameter where the curve no longer depends
        on it (and its Jacobian column vanishes). Unbounded by default.
        """
        n = x.shape[0]
        return np.full((n, self.n_params), -np.inf), np.full((n, self.n_params), np.inf)

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

    linear = (True, False, False, True, False)

    def _parts(self, x, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        lr, pos = _log_ratio(x, c)
        z = np.where(pos, b * lr, -np.inf)  # log u, u = (x/c)^b
        e = np.exp(-np.abs(z))
        log_s = np.maximum(z, 0.0) + np.log1p(e)  # log(1 + u) without overflow
        frac = np.where(z >= 0, 1.0, e) / (1.0 + e)  # u / (1 + u)
        em = np.expm1(-g * log_s)  # s - 1, s = (1 + u)^-g
        # s and 1 - s each to full precision: f = a s + d (1 - s) stays exact when the
        # fit runs far out along the g -> 0 valley (d large, s within 1e-12 of 1).
        return a, b, c, d, g, lr, pos, log_s, 1.0 + em, -em, frac

    def internal_bounds(self, x, mask):
        # A safety box only, far outside anything a real curve needs: slopes 1e-3..1e3,
        # asymmetry e^-30..e^30 and an inflection within e^50 of the concentrations.
        # The 5PL's least-squares estimate legitimately lies far out when the data cannot
        # tell the 5PL from one of its limits (g -> 0 with d -> inf: a logarithmic upper
        # arm; g -> inf with c -> inf: the Weibull-type curve d + (a-d) exp(-(x/c')^b)),
        # and the fitter must be free to follow those valleys.
        lo, hi = super().internal_bounds(x, mask)
        use = mask & (x > 0)
        lx = np.log(np.where(use, x, 1.0))
        big = np.finfo(float).max
        lx_lo = np.where(use, lx, big).min(1)
        lx_hi = np.where(use, lx, -big).max(1)
        none = ~use.any(1)
        lx_lo = np.where(none, -30.0, lx_lo)
        lx_hi = np.where(none, 30.0, lx_hi)
        lo[:, 1], hi[:, 1] = np.log(1e-3), np.log(1e3)
        lo[:, 2], hi[:, 2] = lx_lo - 50.0, lx_hi + 50.0
        if self.n_params == 5:
            lo[:, 4], hi[:, 4] = -30.0, 30.0
        return lo, hi

    def f(self, x, p):
        a, _, _, d, _, _, _, _, s, oms, _ = self._parts(x, p)
        return a * s + d * oms

    def _dshape(self, x, p):
        """``s``, ``1 - s`` and ``ds / d(b, c, g)`` (natural scale)."""
        _, b, c, _, g, lr, _, log_s, s, oms, frac = self._parts(x, p)
        gsf = g * s * frac
        return s, oms, (-gsf * lr, gsf * (b / c), -s * log_s)

    def jac(self, x, p):
        a, d = p[:, 0:1], p[:, 3:4]
        s, oms, ds = self._dshape(x, p)
        amd = a - d
        cols = [s, amd * ds[0], amd * ds[1], oms, amd * ds[2]][: self.n_params]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def basis(self, x, p):
        s, oms, ds = self._dshape(x, p)
        r = self.n_params - 2
        # Written into preallocated arrays: stacking and negating would copy dphi twice.
        phi = np.empty((2, *s.shape))
        phi[0], phi[1] = s, oms
        dphi = np.empty((2, r, *s.shape))
        for j in range(r):
            dphi[0, j] = ds[j]
        np.negative(dphi[0], out=dphi[1])
        return phi, dphi

    def dfdx(self, x, p):
        a, b, _, d, g, _, pos, _, s, _, frac = self._parts(x, p)
        safe = np.where(pos, x, 1.0)
        return np.where(pos, -(a - d) * g * s * frac * b / safe, 0.0)

    def inverse(self, y, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # log((a - d) / (y - d)) as log1p of a small number near the lower asymptote.
            q = (a - y) / (y - d)
            ok = np.isfinite(q) & (q > 0)
            log_ratio = np.log1p(np.where(ok, q, 1.0))
            log_u = np.log(np.expm1(log_ratio / g))
            x = c * np.exp(np.clip(log_u / b, -700, 700))
        return np.where(ok, x, np.nan)

    def start(self, x, y, mask):
        p4 = _log_logistic_start(x, y, mask)
        return np.column_stack([p4, np.ones(len(p4))])

    def start_candidates(self, x, y, mask):
        # The 5PL's asymmetry trades off against c and b; starting from several g (the
        # symmetric curve and one asymmetric each way) avoids the shallow valleys a single
        # start falls into. All candidates are fitted in one batch.
        return self.candidates_from(self.start(x, y, mask))

    #: The asymmetries the further starting points try (see :meth:`start_candidates`).
    START_ASYMMETRIES = (1.0, 0.4, 2.5)

    def candidates_from(self, base: np.ndarray) -> np.ndarray:
        """The starting points of :meth:`start_candidates` from the self-starter's ``base``."""
        cands = []
        for g in self.START_ASYMMETRIES:
            cand = base.copy()
            cand[:, 4] = g
            cands.append(cand)
        return np.stack(cands)

    def effective_concentration(self, p, fraction):
        # (1 + (x/c)^b)^-g = 1 - q  =>  (x/c)^b = (1 - q)^(-1/g) - 1 = v.
        v, b, c = self._ec_parts(p, fraction)
        with np.errstate(all="ignore"):
            return c * np.exp(np.log(v) / b)

    def effective_concentration_jac(self, p, fraction):
        q = _fraction(fraction)
        v, b, c = self._ec_parts(p, q)
        g = p[:, 4]
        with np.errstate(all="ignore"):
            log_v = np.log(v)
            ec = c * np.exp(log_v / b)
            zero = np.zeros_like(ec)
            # dv/dg = (1 + v) log(1 - q) / g^2, and d ec / dv = ec / (b v).
            dg = ec / (b * v) * (1.0 + v) * np.log1p(-q) / g**2
            return np.stack([zero, -ec * log_v / b**2, ec / c, zero, dg], axis=1)

    @staticmethod
    def _ec_parts(p, fraction):
        q = _fraction(fraction)
        b, c, g = p[:, 1], p[:, 2], p[:, 4]
        with np.errstate(all="ignore"):
            return np.expm1(-np.log1p(-q) / g), b, c


class MirrorFivePL(FivePL):
    """The 5PL's mirror family, the asymmetric logistic as xPONENT and Bio-Plex print it.

    ``f(x) = a + (d - a) (u / (1 + u))^g`` with ``u = (x/c)^b``, ``b > 0``; equivalently
    the vendors' ``d + (a - d) / (1 + (x/c)^b)^g`` with a *negative* printed slope (see
    the module docstring for the mapping). ``a`` is the response at zero concentration,
    ``d`` at infinite concentration. The asymmetry sits at the other end of the curve
    from :class:`FivePL`'s: the two families agree only at ``g = 1`` (the 4PL).
    """

    name = "5PL-mirror"
    formula = "f(x) = a + (d - a) ((x/c)^b / (1 + (x/c)^b))^g"

    def _parts(self, x, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        lr, pos = _log_ratio(x, c)
        z = np.where(pos, b * lr, -np.inf)  # log u
        e = np.exp(-np.abs(z))
        # L = log(1 + 1/u) = softplus(-z), without overflow; +inf at x = 0.
        L = np.maximum(-z, 0.0) + np.log1p(e)
        frac = np.where(z >= 0, e, 1.0) / (1.0 + e)  # 1 / (1 + u)
        with np.errstate(invalid="ignore"):
            em = np.expm1(-g * L)  # t - 1, t = (u / (1 + u))^g
        t = np.where(pos, 1.0 + em, 0.0)
        one_minus_t = np.where(pos, -em, 1.0)
        # f = a s + d (1 - s) with s = 1 - t, as FivePL.
        return a, b, c, d, g, lr, pos, L, one_minus_t, t, frac

    def _dshape(self, x, p):
        _, b, c, _, g, lr, pos, L, s, t, frac = self._parts(x, p)
        gtf = g * t * frac  # d t / d log u
        with np.errstate(invalid="ignore"):
            dsg = np.where(pos, L * t, 0.0)
        return s, t, (-gtf * lr, gtf * (b / c), dsg)

    def dfdx(self, x, p):
        a, b, _, d, g, _, pos, _, _, t, frac = self._parts(x, p)
        safe = np.where(pos, x, 1.0)
        return np.where(pos, (d - a) * g * t * frac * b / safe, 0.0)

    def inverse(self, y, p):
        a, b, c, d, g = (p[:, i : i + 1] for i in range(5))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # t = (y - a) / (d - a) = 1 + q; log t as log1p(q) near the upper asymptote.
            q = (y - d) / (d - a)
            ok = np.isfinite(q) & (q > -1.0) & (q < 0.0)
            L = -np.log1p(np.where(ok, q, -0.5)) / g  # log(1 + 1/u)
            log_u = -np.log(np.expm1(L))
            x = c * np.exp(np.clip(log_u / b, -700, 700))
        return np.where(ok, x, np.nan)

    def effective_concentration(self, p, fraction):
        # (u / (1 + u))^g = q  =>  1/u = q^(-1/g) - 1 = v,  x = c v^(-1/b).
        v, b, c = self._ec_parts(p, fraction)
        with np.errstate(all="ignore"):
            return c * np.exp(-np.log(v) / b)

    def effective_concentration_jac(self, p, fraction):
        q = _fraction(fraction)
        v, b, c = self._ec_parts(p, q)
        g = p[:, 4]
        with np.errstate(all="ignore"):
            log_v = np.log(v)
            ec = c * np.exp(-log_v / b)
            zero = np.zeros_like(ec)
            # dv/dg = (1 + v) log(q) / g^2, and d ec / dv = -ec / (b v).
            dg = -ec / (b * v) * (1.0 + v) * np.log(q) / g**2
            return np.stack([zero, ec * log_v / b**2, ec / c, zero, dg], axis=1)

    @staticmethod
    def _ec_parts(p, fraction):
        q = _fraction(fraction)
        b, c, g = p[:, 1], p[:, 2], p[:, 4]
        with np.errstate(all="ignore"):
            return np.expm1(-np.log(q) / g), b, c


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

    linear = (True, False, False, True)

    def f(self, x, p):
        return super().f(x, self._with_g(p))

    def jac(self, x, p):
        return super().jac(x, self._with_g(p))

    def basis(self, x, p):
        return super().basis(x, self._with_g(p))

    def dfdx(self, x, p):
        return super().dfdx(x, self._with_g(p))

    def inverse(self, y, p):
        return super().inverse(y, self._with_g(p))

    def start(self, x, y, mask):
        return _log_logistic_start(x, y, mask)

    def start_candidates(self, x, y, mask):
        return self.start(x, y, mask)[None]

    def candidates_from(self, base):
        return base[None]

    def effective_concentration(self, p, fraction):
        # 1 / (1 + (x/c)^b) = 1 - q  =>  x = c (q / (1 - q))^(1/b).
        q = _fraction(fraction)
        b, c = p[:, 1], p[:, 2]
        with np.errstate(all="ignore"):
            return c * np.exp(np.log(q / (1.0 - q)) / b)

    def effective_concentration_jac(self, p, fraction):
        q = _fraction(fraction)
        b, c = p[:, 1], p[:, 2]
        with np.errstate(all="ignore"):
            L = np.log(q / (1.0 - q))
            ec = c * np.exp(L / b)
            zero = np.zeros_like(ec)
            return np.stack([zero, -ec * L / b**2, ec / c, zero], axis=1)


class Logistic4(Model):
    """Four-parameter logistic in *linear* x (drc ``L.4``): ``f(x) = d + (a - d) / (1 + exp(b (x - c)))``.

    Used for growth-type curves (e.g. the NIST StRD ``Rat42`` problem) rather than
    immunoassays; ``b`` may take either sign.
    """

    name = "L4"
    names = ("a", "b", "c", "d")
    positive = (False, False, False, False)
    linear = (True, False, False, True)
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

    def effective_concentration(self, p, fraction):
        # expit(-b (x - c)) = 1 - q  =>  x = c + log(q / (1 - q)) / b.
        q = _fraction(fraction)
        b, c = p[:, 1], p[:, 2]
        with np.errstate(all="ignore"):
            return c + np.log(q / (1.0 - q)) / b

    def effective_concentration_jac(self, p, fraction):
        q = _fraction(fraction)
        b = p[:, 1]
        with np.errstate(all="ignore"):
            L = np.log(q / (1.0 - q)) * np.ones_like(b)
            zero = np.zeros_like(b)
            return np.stack([zero, -L / b**2, np.ones_like(b), zero], axis=1)


def _fraction(fraction: float | np.ndarray) -> float | np.ndarray:
    """``fraction`` checked to lie in (0, 1) (a percent such as 20 is an error, not EC2000)."""
    q = np.asarray(fraction, dtype=float)
    if not np.all((q > 0) & (q < 1)):
        raise InputError(
            f"effective-concentration fraction {fraction!r} is outside (0, 1)",
            field="fraction",
            expected="a fraction such as 0.2 for EC20",
        )
    return float(q) if q.ndim == 0 else q


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


def _projected_rss(
    t: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray, tc: np.ndarray, g: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted RSS of the best ``d + (a - d) s`` for shapes ``s = (1 + e^{b(t - tc)})^-g``.

    ``t (n, m)`` log concentrations (``-inf`` for a zero concentration), slopes ``b (n, B)``
    and inflections ``tc (n, T)``: the grid is every slope with every inflection, slope
    by slope; returns the RSS, ``a`` and ``d``, each ``(n, B T)`` -- the asymptotes by
    linear least squares (variable projection), so only the shape is searched.

    ``e^{b(t - tc)} = e^{b(t - t0)} e^{-b(tc - t0)}`` (``t0`` the curve's middle
    inflection): one exponential per point and per grid value instead of one per point
    and grid cell, and a product per cell. Each exponent is capped at 700, so the product
    is finite or ``+inf`` (``s = 0``, as the exact value rounds to) and never NaN.
    """
    n, m = t.shape
    t0 = tc.mean(1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        et = np.exp(np.minimum(b[:, :, None] * (t - t0)[:, None, :], 700.0))  # (n, B, m)
        ec = np.exp(np.minimum(-b[:, :, None] * (tc - t0)[:, None, :], 700.0))  # (n, B, T)
        e = (ec[..., None] * et[:, :, None, :]).reshape(n, -1, m)
        s = 1.0 / (1.0 + e) if g == 1.0 else np.exp(-g * np.log1p(e))
    sw = w.sum(1)[:, None]
    wy = w * y
    sy = wy.sum(1)[:, None]
    syy = np.einsum("nm,nm->n", wy, y)[:, None]
    sws = s * w[:, None, :]
    ss = sws.sum(2)
    sss = np.einsum("ngm,ngm->ng", sws, s)
    ssy = np.einsum("ngm,nm->ng", s, wy)
    var_s = sss - ss * ss / sw
    cov = ssy - ss * sy / sw
    ok = var_s > 1e-12 * sw
    slope = np.where(ok, cov / np.where(ok, var_s, 1.0), 0.0)  # a - d
    rss = syy - sy * sy / sw - slope * cov
    d = (sy - slope * ss) / sw
    return rss, d + slope, d


#: Curves per chunk of the self-starter's grid search (see :func:`_log_logistic_start`).
_GRID_CHUNK = 512


def _log_logistic_start(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, g: float = 1.0
) -> np.ndarray:
    """Starting values ``(a, b, c, d)`` for the log-logistic models (4PL/5PL with ``g``).

    A coarse-to-fine grid search over the slope ``b`` and the inflection ``c``, with the
    asymptotes ``a`` and ``d`` solved exactly by weighted linear least squares at every
    grid point, so the search is over the shape of the curve only and does not depend on
    guessing the plateaus (the plateaus are often not reached within the standards).
    Relative weights ``1/y²`` (floored at 0.1% of the largest response) make the low
    standards count as much as the high ones, as in immunoassay fitting. Vectorised:
    about 60 shape evaluations per curve, in chunks of :data:`_GRID_CHUNK` curves.
    """
    n = x.shape[0]
    if n > _GRID_CHUNK:
        # The grid's (curves x cells x points) temporaries of a small chunk stay in the
        # processor's cache: 40 % less CPU than one pass over 5,000 curves (measured,
        # issue 16). Every curve's search is its own, so chunking changes no result.
        return np.concatenate(
            [
                _log_logistic_start(x[i : i + _GRID_CHUNK], y[i : i + _GRID_CHUNK],
                                    mask[i : i + _GRID_CHUNK], g)
                for i in range(0, n, _GRID_CHUNK)
            ]
        )  # fmt: skip
    m = mask & np.isfinite(y) & np.isfinite(x) & (x >= 0)
    pos = m & (x > 0)
    t = np.where(pos, np.log(np.where(pos, x, 1.0)), -np.inf)
    big = np.finfo(float).max
    t_lo = np.where(pos, t, big).min(1)
    t_hi = np.where(pos, t, -big).max(1)
    none = ~pos.any(1)
    t_lo = np.where(none, 0.0, t_lo)
    t_hi = np.where(none, 1.0, t_hi)
    t_hi = np.maximum(t_hi, t_lo + 1e-6)
    yy = np.where(m, y, 0.0)
    ay = np.abs(yy)
    floor = np.maximum(1e-3 * ay.max(1, keepdims=True), 1e-300)
    w = np.where(m, 1.0 / np.maximum(ay, floor) ** 2, 0.0)
    w = w / np.maximum(w.max(1, keepdims=True), 1e-300)
    t = np.where(m, t, 0.0)
    # Stage 1: slopes 0.5, 1, 2; inflections from one e-fold below the lowest to 2.5
    # above the highest concentration, 13 steps.
    span = t_hi - t_lo
    frac = np.linspace(0.0, 1.0, 13)
    tc1 = (t_lo - 1.0)[:, None] + (span + 3.5)[:, None] * frac[None]
    b1 = np.array([0.5, 1.0, 2.0])
    bg = np.repeat(b1, tc1.shape[1])[None].repeat(n, 0)
    tg = np.tile(tc1, (1, len(b1)))
    rss, _, _ = _projected_rss(t, yy, w, np.broadcast_to(b1, (n, len(b1))), tc1, g)
    best = np.nanargmin(np.where(np.isfinite(rss), rss, np.inf), axis=1)
    rows = np.arange(n)
    b0, t0 = bg[rows, best], tg[rows, best]
    step = (span + 3.5) / 12
    # Stage 2: a 5 x 5 refinement around the best point.
    fb = np.array([0.6, 0.77, 1.0, 1.3, 1.67])
    ft = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    bg = b0[:, None] * np.repeat(fb, 5)[None]
    tg = t0[:, None] + step[:, None] * np.tile(ft, 5)[None]
    rss, a, d = _projected_rss(t, yy, w, b0[:, None] * fb, t0[:, None] + step[:, None] * ft, g)
    best = np.nanargmin(np.where(np.isfinite(rss), rss, np.inf), axis=1)
    b, tc = bg[rows, best], tg[rows, best]
    a, d = a[rows, best], d[rows, best]
    flat = ~np.isfinite(a) | ~np.isfinite(d)
    ymean = (w * yy).sum(1) / np.maximum(w.sum(1), 1e-300)
    a = np.where(flat, ymean, a)
    d = np.where(flat, ymean, d)
    return np.column_stack([a, b, np.exp(tc), d])


MODELS: dict[str, Model] = {
    "4PL": FourPL(),
    "5PL": FivePL(),
    "5PL-mirror": MirrorFivePL(),
    "L4": Logistic4(),
}
_BY_UPPER = {k.upper(): v for k, v in MODELS.items()}


def get_model(model: str | Model) -> Model:
    """Return a model object from its name (``'4PL'``, ``'5PL'``, ``'5PL-mirror'``, ``'L4'``,
    any case) or the object itself."""
    if isinstance(model, Model):
        return model
    key = str(model).upper()
    if key not in _BY_UPPER:
        raise InputError(
            f"unknown curve model '{model}'", field="model", expected=" | ".join(MODELS)
        )
    return _BY_UPPER[key]


def vendor_curve(vendor: str, coefficients) -> tuple[Model, np.ndarray]:
    """A vendor's printed standard curve as one of our models and its parameters.

    Parameters
    ----------
    vendor:
        ``"xponent"``: ``coefficients`` has ``A, B, C, D`` and, for *Logistic 5P*, ``F``
        (the entry of ``read_xponent(...).attrs["analysis"][analyte]``; other keys are
        ignored). ``"bioplex"``: ``a, b, c, d, g`` as printed (a row of
        :func:`cytosafe.io.bioplex.read_bioplex_equations`; ``g`` missing or NaN is a 4PL).
    coefficients:
        A mapping (or a pandas row) of the printed coefficients of one curve.

    Returns
    -------
    (model, params)
        ``params`` is ``(1, k)`` in ``model``'s parameterisation, so that
        ``model.f(x, params)`` is the printed curve and ``model.inverse(y, params)`` its
        back-calculation. The mapping is in the module docstring.

    Raises
    ------
    InputError
        Unknown vendor, a missing or non-finite coefficient, or a zero slope.

    Examples
    --------
    >>> m, p = vendor_curve("xponent", {"A": 1.0, "B": 1e4, "C": 500.0, "D": -1.2, "F": 0.8})
    >>> m.name, p.round(3).tolist()
    ('5PL-mirror', [[1.0, 1.2, 500.0, 10000.0, 0.8]])
    """
    kind = str(vendor).lower().replace("-", "").replace(" ", "")
    if kind == "xponent":
        keys = {"a": "A", "b": "B", "c": "C", "slope": "D", "g": "F"}
        zero, inf = "A", "B"  # printed value at zero / infinite concentration for D < 0
    elif kind == "bioplex":
        keys = {"a": "a", "b": "b", "c": "c", "slope": "b", "g": "g"}
        zero, inf = "d", "a"
    else:
        raise InputError(f"unknown vendor '{vendor}'", field="vendor", expected="xponent | bioplex")

    def get(key: str, required: bool = True) -> float:
        try:
            value = float(coefficients[key])
        except (KeyError, TypeError, ValueError):
            value = math.nan
        if required and not math.isfinite(value):
            raise InputError(
                f"the printed {vendor} curve has no finite coefficient {key}",
                field=key,
                expected="a number",
            )
        return value

    slope = get(keys["slope"])
    g = get(keys["g"], required=False)
    five = math.isfinite(g)
    g = g if five else 1.0
    low, high, c = get(zero), get(inf), get(keys["c"])
    if slope == 0.0:
        raise InputError(
            f"the printed {vendor} curve has a zero slope", field=keys["slope"], expected="!= 0"
        )
    if slope < 0:
        # Printed low + (high - low) / (1 + (x/c)^-b)^g = low + (high - low) (u/(1+u))^g.
        name = "5PL-mirror" if five else "4PL"
        p = [low, -slope, c, high, g]
    else:
        # Printed low + (high - low) / (1 + (x/c)^b)^g: our 5PL with a = high, d = low.
        name = "5PL" if five else "4PL"
        p = [high, slope, c, low, g]
    model = MODELS[name]
    return model, np.array([p[: model.n_params]], dtype=float)


def curve_difference(
    model: str | Model,
    params: np.ndarray,
    other_model: str | Model,
    other_params: np.ndarray,
    x_lo,
    x_hi,
    n_grid: int = 201,
    on: str = "signal",
) -> np.ndarray:
    """Largest relative difference between two curves over a concentration range.

    ``on="signal"``: ``max |f1(x) / f2(x) - 1|`` over ``n_grid`` points evenly spaced in
    ``log x`` from ``x_lo`` to ``x_hi`` (the standards' lowest and highest positive
    concentrations), with ``f2`` the reference (e.g. the vendor's printed curve from
    :func:`vendor_curve`). ``on="concentration"``: the same points read back, ``max
    |f1⁻¹(f2(x)) / x - 1|``, the disagreement in the concentrations the two curves would
    report for the same signal; use it where the signal of the lowest standards is near
    zero (a blank-subtracted Net MFI), where a relative difference of signals is
    meaningless. Vectorised: ``params``/``other_params`` ``(n, k)``, ``x_lo``/``x_hi``
    scalars or ``(n,)``; returns ``(n,)``, NaN where a range or a curve is not finite,
    the reference curve reaches 0 on the grid (``signal``), or a signal of the
    reference lies outside the asymptotes of the other curve (``concentration``).

    Examples
    --------
    >>> m, p = vendor_curve("xponent", {"A": 1.0, "B": 1e4, "C": 500.0, "D": -1.2, "F": 0.8})
    >>> float(curve_difference("5PL-mirror", p, m, p, 1.0, 1e4)[0])
    0.0
    """
    model, other_model = get_model(model), get_model(other_model)
    params = np.atleast_2d(np.asarray(params, dtype=float))
    other_params = np.atleast_2d(np.asarray(other_params, dtype=float))
    n = max(params.shape[0], other_params.shape[0])
    lo = np.broadcast_to(np.asarray(x_lo, dtype=float), (n,))
    hi = np.broadcast_to(np.asarray(x_hi, dtype=float), (n,))
    ok = np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & (hi >= lo)
    frac = np.linspace(0.0, 1.0, n_grid)[None]
    with np.errstate(all="ignore"):
        llo, lhi = np.log(np.where(ok, lo, 1.0)), np.log(np.where(ok, hi, 1.0))
        x = np.exp(llo[:, None] + (lhi - llo)[:, None] * frac)
        p1 = np.broadcast_to(params, (n, params.shape[1]))
        f2 = other_model.f(x, np.broadcast_to(other_params, (n, other_params.shape[1])))
        if on == "signal":
            rel = np.abs(model.f(x, p1) / f2 - 1.0)
        elif on == "concentration":
            rel = np.abs(model.inverse(f2, p1) / x - 1.0)
        else:
            raise InputError(
                f"unknown comparison '{on}'", field="on", expected="signal | concentration"
            )
        out = np.max(rel, axis=1)
    bad = ~ok | ~np.all(np.isfinite(rel), axis=1)
    return np.where(bad, np.nan, out)
