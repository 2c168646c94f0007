"""One weighted Levenberg-Marquardt fitter for thousands of curves at once.

All curves advance together as arrays: ``x``, ``y`` and weights are ``(n_curves,
n_points)`` with a boolean ``mask`` for ragged curves (a curve with 14 points among curves
with 16 simply masks 2), so nothing loops over curves in Python. Each curve keeps its own
damping factor, its own accept/reject decision and its own convergence status, exactly as
if it were fitted alone with MINPACK-style LM (Moré, "The Levenberg-Marquardt algorithm:
implementation and theory", Lecture Notes in Mathematics 630, 1978): scaled damping
``(JᵀWJ + λ·diag(JᵀWJ)) δ = JᵀW r``, λ divided by 10 after a successful step and
multiplied by 10 after a failed one.

Covariance of the estimates (``covariance=``), a documented choice because software
disagrees:

* ``"expected"`` (default): ``σ² (JᵀWJ)⁻¹`` — the Gauss-Newton form used by R ``nls``,
  SciPy ``curve_fit`` and the NIST StRD certified standard errors;
* ``"observed"``: ``σ² (JᵀWJ − Σ wᵢ rᵢ ∇²fᵢ)⁻¹`` — from the full Hessian of the residual
  sum of squares, as R ``drc`` reports (it inverts the Hessian from ``optim``).

Both use ``σ² = RSS_w / (n − p_free)``; with relative weights (1/y, 1/y², 1/variance)
this is the usual scaling of relative weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cytosafe.curves.models import FivePL, FourPL, MirrorFivePL, Model, get_model
from cytosafe.errors import FitError
from cytosafe.schema.choices import Covariance, Weighting

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "WEIGHTINGS",
    "FamilyChoice",
    "FitLimits",
    "FitResult",
    "check_limits",
    "choose_family",
    "curve_weights",
    "fit_curves",
]

#: Weighting schemes of :func:`curve_weights` (the values of
#: :class:`~cytosafe.schema.choices.Weighting`).
WEIGHTINGS = Weighting.values()

#: Default number of curves :func:`fit_curves` fits in one batch. Blocks of a few
#: thousand curves keep the temporaries of the batched iteration in the processor's
#: caches' neighbourhood and bound the peak memory; a measured choice (issue 16: 100k
#: curves peaked at 1.9 GB in one batch, 308 MB in blocks of 5,000, and ran 2x faster).
BLOCK_SIZE = 5000

#: Curves from which ``kernel="auto"`` fits with the compiled kernel. Loading it (Numba
#: and the cached machine code) costs about 0.4 s of CPU once per process, and it saves
#: about 90 us per 5PL curve (110 against 19 us at 3,000 curves of 16 points, measured on
#: the loaded 2-core machine of issue 16): it pays from about 5,000 curves.
COMPILED_MIN_CURVES = 5000

#: Per-curve status values (``degenerate``: see :class:`FitLimits`).
STATUSES = ("converged", "max_iter", "stalled", "degenerate", "failed", "insufficient_data")

#: The statuses whose parameters may be used (a stall is a minimum the tolerances could
#: not certify, typically an exact fit).
USABLE = ("converged", "stalled")


@dataclass
class FitResult:
    """Fitted parameters of a batch of curves (row ``i`` is curve ``i``).

    Attributes
    ----------
    model: the :class:`~cytosafe.curves.models.Model`.
    params, se: ``(n, k)`` estimates and standard errors (NaN for fixed parameters).
    cov: ``(n, k, k)`` covariance of the estimates; ``None`` where :func:`fit_curves` was
    asked not to keep it (``keep_cov=False``: the standard errors are kept).
    rss: weighted residual sum of squares; ``df`` residual degrees of freedom;
    sigma: residual standard error ``sqrt(rss / df)``.
    status: one of ``converged, max_iter, stalled, degenerate, failed, insufficient_data``;
    only ``converged`` and ``stalled`` (:data:`USABLE`) give parameters fit for use.
    reason: why a curve is ``degenerate`` ("" otherwise).
    n_iter, n_obs: iterations used and points fitted per curve.
    fixed: ``(n, k)`` boolean, which parameters were held fixed.
    """

    model: Model
    params: np.ndarray
    se: np.ndarray
    cov: np.ndarray | None
    rss: np.ndarray
    df: np.ndarray
    sigma: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray
    n_obs: np.ndarray
    fixed: np.ndarray
    weighting: str = Weighting.NONE.value
    covariance: str = Covariance.EXPECTED.value
    extra: dict = field(default_factory=dict)
    #: ``(n,)`` why a curve is ``degenerate`` (which limit of :class:`FitLimits` its
    #: estimate breaks); ``""`` for every other curve. Set by :func:`fit_curves`.
    reason: np.ndarray | None = None

    @property
    def converged(self) -> np.ndarray:
        return self.status == "converged"

    def to_frame(self) -> pd.DataFrame:
        """One row per curve: parameters, standard errors, rss, df, sigma, status."""
        # Imported here: fitting needs no pandas (80 MB resident, about a fifth of the
        # peak of a million-curve fit).
        import pandas as pd

        cols: dict[str, np.ndarray] = {}
        for j, name in enumerate(self.model.names):
            cols[name] = self.params[:, j]
        for j, name in enumerate(self.model.names):
            cols[f"{name}_se"] = self.se[:, j]
        cols.update(
            rss=self.rss,
            df=self.df,
            sigma=self.sigma,
            status=self.status,
            n_iter=self.n_iter,
            n_obs=self.n_obs,
        )
        return pd.DataFrame(cols)


def curve_weights(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, weighting: str = Weighting.NONE
) -> np.ndarray:
    """Observation weights for a batch of curves.

    ``"none"``: 1. ``"1/y"`` and ``"1/y2"``: the reciprocal of the observed response (or
    its square), the usual immunoassay choices for a response whose SD grows with its
    mean (Findlay & Dillard, AAPS J 2007;9:E260); responses at or below zero are given
    the weight of the smallest positive response of their curve. ``"1/var"``: the
    reciprocal of the replicate variance at each concentration (points sharing an ``x``
    within a curve are replicates), as GraphPad Prism's "weight by 1/SD²"; a level with a
    single point, or with a variance below 1% of the curve's median level variance (two
    identical duplicates), takes that floor, so no point gets an infinite weight.
    Weights are scaled to a mean of 1 per curve, which changes nothing in the estimates.
    """
    if weighting not in WEIGHTINGS:
        raise FitError(f"unknown weighting '{weighting}'; expected one of {', '.join(WEIGHTINGS)}")
    y = np.asarray(y, dtype=float)
    m = np.asarray(mask, dtype=bool) & np.isfinite(y)
    if weighting == Weighting.NONE:
        w = np.ones_like(y)
    elif weighting in (Weighting.Y, Weighting.Y2):
        pos = m & (y > 0)
        floor = np.where(pos, y, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 1.0)
        yy = np.where(pos, y, floor)
        w = 1.0 / yy if weighting == Weighting.Y else 1.0 / yy**2
    else:
        w = _replicate_variance_weights(np.asarray(x, dtype=float), y, m)
    w = np.where(m, w, 0.0)
    mean = w.sum(1, keepdims=True) / np.maximum(m.sum(1, keepdims=True), 1)
    return w / np.where(mean > 0, mean, 1.0)


def _replicate_variance_weights(x: np.ndarray, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    n, k = y.shape
    # Group points sharing x within a curve: sort x per curve, mark group starts.
    xs = np.where(m, x, np.inf)
    order = np.argsort(xs, axis=1, kind="stable")
    xs_sorted = np.take_along_axis(xs, order, 1)
    ys_sorted = np.take_along_axis(np.where(m, y, 0.0), order, 1)
    ms_sorted = np.take_along_axis(m, order, 1)
    new = np.ones((n, k), dtype=bool)
    new[:, 1:] = xs_sorted[:, 1:] != xs_sorted[:, :-1]
    gid = np.cumsum(new, axis=1) - 1 + (np.arange(n) * k)[:, None]
    flat = gid.ravel()
    cnt = np.bincount(flat, weights=ms_sorted.ravel().astype(float), minlength=n * k)
    s1 = np.bincount(flat, weights=(ys_sorted * ms_sorted).ravel(), minlength=n * k)
    s2 = np.bincount(flat, weights=(ys_sorted**2 * ms_sorted).ravel(), minlength=n * k)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1**2 / np.maximum(cnt, 1)) / (cnt - 1)
    var = np.where(cnt > 1, np.maximum(var, 0.0), np.nan).reshape(n, k)
    level_var = var.copy()
    level_var[~(cnt.reshape(n, k) > 1)] = np.nan
    all_nan = np.all(np.isnan(level_var), axis=1, keepdims=True)
    med = np.nanmedian(np.where(all_nan, 1.0, level_var), axis=1, keepdims=True)
    floor = np.where(np.isfinite(med) & (med > 0), 0.01 * med, 1.0)
    var_sorted = np.where(
        np.isfinite(var.ravel()[flat].reshape(n, k)), var.ravel()[flat].reshape(n, k), floor
    )
    var_sorted = np.maximum(var_sorted, floor)
    w_sorted = 1.0 / var_sorted
    w = np.empty_like(w_sorted)
    np.put_along_axis(w, order, w_sorted, 1)
    return w


def _as_2d(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise FitError(f"{name} must be 1-D or 2-D (curves x points), got shape {arr.shape}")
    return arr


def _fixed_matrix(
    model: Model, fixed, n: int, rows: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n_rows, k)`` of fixed parameters and their values (NaN where free), for
    the curves ``rows`` of ``n`` (one block at a time: no array of all curves)."""
    k = model.n_params
    size = len(range(n)[rows])
    is_fixed = np.zeros((size, k), dtype=bool)
    values = np.full((size, k), np.nan)
    if fixed is None:
        return is_fixed, values
    for name, value in dict(fixed).items():
        if name not in model.names:
            raise FitError(
                f"cannot fix '{name}': {model.name} has parameters {', '.join(model.names)}"
            )
        j = model.names.index(name)
        v = np.broadcast_to(np.asarray(value, dtype=float), (n,))[rows]
        is_fixed[:, j] = np.isfinite(v)
        values[:, j] = v
    return is_fixed, values


def fit_curves(
    x,
    y,
    *,
    model: str | Model = "5PL",
    weights=None,
    weighting: str = Weighting.NONE,
    mask=None,
    fixed: dict | None = None,
    start=None,
    max_iter: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
    gtol: float = 1e-12,
    covariance: str = Covariance.EXPECTED,
    limits: FitLimits | None = None,
    bounds: dict | None = None,
    block_size: int | None = BLOCK_SIZE,
    kernel: str = "auto",
    keep_cov: bool = True,
) -> FitResult:
    """Fit one model to many curves at once by weighted Levenberg-Marquardt.

    Parameters
    ----------
    x, y:
        ``(n_curves, n_points)`` (or 1-D for one curve). Ragged curves: pad and ``mask``.
    model:
        ``"4PL"``, ``"5PL"``, ``"L4"`` or any :class:`~cytosafe.curves.models.Model`.
    weights:
        Explicit ``(n, m)`` weights; otherwise computed by :func:`curve_weights` with
        ``weighting`` (``none``, ``1/y``, ``1/y2``, ``1/var``).
    mask:
        ``(n, m)`` boolean, True for points to use (default: finite ``x`` and ``y``).
    fixed:
        ``{name: value}`` (scalar or one value per curve; NaN leaves that curve's
        parameter free). Fixed parameters are held exactly.
    start:
        ``(n, k)`` starting values (natural scale); default: the model's self-starter,
        several candidates where the model offers them (the best fit of each is kept).
    max_iter, ftol, xtol, gtol:
        Iteration cap and MINPACK-style tolerances (relative reduction of the RSS,
        relative step, scaled gradient).
    covariance:
        ``"expected"`` or ``"observed"`` (see the module docstring).
    limits:
        :class:`FitLimits` to classify the fits by, e.g. ``FitLimits()`` (the documented
        defaults): a converged or stalled fit whose estimate breaks one of them gets the
        status ``degenerate`` and a :attr:`FitResult.reason`. ``None`` (default, for
        now: the callers opt in) checks nothing. The optimiser is the same either way:
        the limits classify fits, they do not constrain them, so a bound never stops a
        fit short of its least-squares optimum and a degenerate fit says where that
        optimum is.
    bounds:
        ``{name: (low, high)}`` box constraints on non-linear parameters (natural scale;
        scalars or one value per curve; NaN or inf leaves a side open), e.g.
        ``{"g": (0.1, 10)}``, the asymmetry range Bio-Plex Manager keeps its 5PL fits in
        (see :func:`cytosafe.io.bioplex.read_bioplex_equations`). The iteration projects
        its steps into the box (Levenberg-Marquardt with projection; Kanzow, Yamashita &
        Fukushima, J Comput Appl Math 2004;172:375-397), and a parameter on a bound whose
        gradient points out of the box sits the iteration out (an active set), so the
        convergence tests and the step see the problem the box leaves. A curve whose
        estimate ends on a bound keeps its status; ``FitResult.extra["at_bound"]``
        ``(n, k)`` says which parameter sits on a bound, so the caller can report it.
        The asymptotes ``a`` and ``d`` of the logistic models are solved by linear least
        squares and cannot be bounded (use ``limits`` to classify them).
    block_size:
        Curves fitted together in one batch (default :data:`BLOCK_SIZE`, 5,000); more
        curves are fitted block after block into preallocated results, so the working
        memory is that of one block whatever the number of curves (about 70 MB for
        5,000 curves of 16 points on the NumPy path, a few MB on the compiled one; the
        results themselves take about 0.35 kB per curve of the 5PL, 0.15 kB with
        ``keep_cov=False``). ``None`` fits all curves in one batch. Every curve is fitted on its own
        within a batch, so the result does not depend on the block size (bit for bit;
        ``tests/test_fit_blocks.py``).
    kernel:
        ``"auto"`` (default): the compiled Levenberg-Marquardt and self-starter of
        :mod:`cytosafe.curves._compiled` for :data:`COMPILED_MIN_CURVES` curves or more,
        where it covers the model (the 4PL and both 5PL families) and Numba is installed
        (``CYTOSAFE_COMPILED=0`` turns it off); else the NumPy iteration. ``"numpy"`` or
        ``"compiled"`` choose (``"compiled"`` raises where it is not available). Both run
        the same iteration and reach the same optimum to rounding: equal statuses and
        weighted RSS to 1e-12; the parameters of well-determined curves to 1e-10, those of
        weakly determined ones (a plateau far from the standards) to about 1e-7, far below
        their standard errors (``tests/test_fit_compiled.py``). The compiled kernel pools
        replicate standards (exactly: the same normal equations and steps) and, while a
        5PL iteration runs out beyond ``|ln g| = 3.5`` along a limit of the family (a fit
        :class:`FitLimits` calls degenerate), extrapolates its accepted steps (pattern
        moves, kept only where they lower the RSS): such fits end at the same RSS (to
        1e-9) or a lower one in about half the iterations, at another point of their valley.
    keep_cov:
        Keep each curve's ``(k, k)`` covariance in :attr:`FitResult.cov` (default).
        ``False`` computes it block by block for the standard errors and drops it
        (``cov`` is then ``None``): the covariance is 200 of the about 400 bytes per 5PL
        curve of the results (200 MB at a million curves), and most bulk uses need the
        standard errors only. Calibration and potency intervals need it kept.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.1, 0.3, 1, 3, 10, 30, 100, 300.0])
    >>> y = 100 + (30000 - 100) / (1 + (x / 20) ** -1.2)
    >>> res = fit_curves(x, y, model="4PL")
    >>> bool(res.converged[0]), round(float(res.params[0, 2]), 3)
    (True, 20.0)
    """
    model = get_model(model)
    if covariance not in Covariance.values():
        raise FitError(
            f"unknown covariance '{covariance}'; expected "
            + " or ".join(f"'{c}'" for c in Covariance.values())
        )
    compiled = _kernel_code(model, kernel, _as_2d(y, "y").shape[0])
    if block_size is not None and (int(block_size) != block_size or block_size < 1):
        raise FitError(f"block_size must be a positive whole number or None, got {block_size!r}")
    x = _as_2d(x, "x")
    y = _as_2d(y, "y")
    if x.shape != y.shape and not (x.shape[0] == 1 and x.shape[1] == y.shape[1]):
        raise FitError(f"x and y shapes differ: {x.shape} vs {y.shape}")
    n = y.shape[0]
    k = model.n_params
    if mask is not None:
        mask = _as_2d(mask, "mask")
    if weights is not None:
        weights = _as_2d(weights, "weights")
        weighting = "user"
    if start is not None:
        start = _as_2d(start, "start")
        if start.shape[0] == 1 and n > 1:
            start = np.broadcast_to(start, (n, k))
    _fixed_matrix(model, fixed, n, slice(0, 0))  # checks the names before any fit
    box = _bounds_box(model, bounds, n)
    step = n if block_size is None else int(block_size)

    def rows(a, sl):
        # A shared (1, m) array (one x for every curve) is broadcast block by block.
        if a is None:
            return None
        return np.broadcast_to(a, y.shape)[sl] if a.shape[0] == 1 and n > 1 else a[sl]

    out: dict | None = None
    for lo in range(0, max(n, 1), max(step, 1)):
        sl = slice(lo, min(lo + step, n))
        part = _fit_block(
            model, rows(x, sl), y[sl], rows(weights, sl), rows(mask, sl),
            *_fixed_matrix(model, fixed, n, sl), None if start is None else start[sl],
            None if box is None else (box[0][sl], box[1][sl]),
            weighting, max_iter, ftol, xtol, gtol, covariance, limits, compiled,
        )  # fmt: skip
        if not keep_cov:
            part["cov"] = None
        if out is None:
            if sl.stop == n:  # a single block: no copy
                out = part
                break
            # Preallocated once, so the blocks never exist twice (bounded peak memory).
            out = {
                key: None if val is None else np.empty((n, *val.shape[1:]), dtype=val.dtype)
                for key, val in part.items()
            }
        for key, val in part.items():
            if val is not None:
                out[key][sl] = val
    assert out is not None
    extra = {"at_bound": out.pop("at_bound")} if box is not None else {}
    return FitResult(
        model=model,
        weighting=str(weighting),
        covariance=str(covariance),
        extra=extra,
        **out,
    )


def _fit_block(
    model, x, y, weights, mask, is_fixed, fixed_values, start, box,
    weighting, max_iter, ftol, xtol, gtol, covariance, limits, compiled=None,
) -> dict:  # fmt: skip
    """Fit one block of curves; the arrays of :class:`FitResult` (and ``at_bound``)."""
    n, _ = y.shape
    m = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m &= mask.astype(bool)
    if not m.all():
        # (Where every point is used, a shared x stays the broadcast view it came as.)
        x = np.where(m, x, 0.0)
    y = np.where(m, y, 0.0)
    if weights is not None:
        w = np.where(m, weights, 0.0)
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise FitError("weights must be finite and non-negative")
    else:
        w = None
        if compiled is not None and weighting in (Weighting.Y, Weighting.Y2):
            from cytosafe.curves import _compiled

            # The same weights in one compiled pass (NumPy's took 0.26 us per curve in ten
            # passes over the block); None beyond the rows it handles.
            w = _compiled.y_weights(y, m, 1 if weighting == Weighting.Y else 2)
        if w is None:
            w = curve_weights(x, y, m, weighting)
    n_free = (~is_fixed).sum(1)
    n_obs = m.sum(1)

    def run(rows, starts):
        starts = np.where(is_fixed[rows], fixed_values[rows], starts)
        return _levenberg_marquardt(
            model, x[rows], y[rows], w[rows], m[rows], starts, is_fixed[rows],
            max_iter, ftol, xtol, gtol, None if box is None else (box[0][rows], box[1][rows]),
            compiled,
        )  # fmt: skip

    if start is not None:
        first = start
    elif compiled is not None:
        # The same self-starter, compiled (its grid search is a third of the NumPy time).
        from cytosafe.curves import _compiled

        first = _compiled.start(x, y, m, model.n_params)
    else:
        first = model.start(x, y, m)
    theta, rss, status, n_iter = run(slice(None), first)  # a view: no copy of the block
    if start is None:
        # Further starting points (where the model offers them) only for the curves the
        # first did not bring to convergence; the best fit of each curve is kept,
        # converged (or stalled) fits before the others.
        retry = np.flatnonzero(_is_one_of(status, ("max_iter", "stalled", "failed")))
        if retry.size:
            if compiled is not None:
                cands = model.candidates_from(first[retry])
            else:
                cands = model.start_candidates(x[retry], y[retry], m[retry])
            for cand in cands:
                if np.allclose(cand, first[retry], equal_nan=True):
                    continue
                th2, rss2, st2, it2 = run(retry, cand)
                ok_old = _is_one_of(status[retry], ("converged", "stalled"))
                ok_new = _is_one_of(st2, ("converged", "stalled"))
                r_old = np.where(np.isfinite(rss[retry]), rss[retry], np.inf)
                r_new = np.where(np.isfinite(rss2), rss2, np.inf)
                take = (ok_new & ~ok_old) | ((ok_new == ok_old) & (r_new < r_old))
                n_iter[retry] += it2
                sel = retry[take]
                theta[sel], rss[sel], status[sel] = th2[take], rss2[take], st2[take]

    params = model.from_internal(theta)
    params = np.where(is_fixed, fixed_values, params)
    df = n_obs - n_free
    cov = None
    if compiled is not None:
        from cytosafe.curves import _compiled

        # The same rules as below in one compiled pass, whose covariance reuses the shape
        # values the RSS computed at the same parameters.
        expected = covariance == Covariance.EXPECTED
        rss, sigma2, cov = _compiled.finish(
            compiled, x, y, w, m, params, is_fixed, rss, df, expected
        )
        if not expected:
            cov = None
    else:
        with np.errstate(all="ignore"):
            # The reported RSS is that of the reported parameters, recomputed directly.
            r_fin = np.where(m, np.sqrt(w) * (y - model.f(x, params)), 0.0)
            rss_fin = _einsum("ij,ij->i", r_fin, r_fin)
        rss = np.where(np.isfinite(rss), rss_fin, rss)
        sigma2 = np.where(df > 0, rss / np.maximum(df, 1), np.nan)
    insufficient = df < 0
    status = np.where(insufficient, "insufficient_data", status)
    if cov is None:
        cov = _covariance(model, x, y, w, m, params, is_fixed, sigma2, covariance)
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    se = np.where(is_fixed, np.nan, se)
    reason = np.full(n, "", dtype=object)
    usable = _is_one_of(status, USABLE)
    if limits is not None and usable.any():
        why = check_limits(model, params[usable], x[usable], y[usable], m[usable], limits)
        reason[usable] = why
        status = np.where(usable & (reason != ""), "degenerate", status)
    out = {}
    if box is not None:
        with np.errstate(all="ignore"):
            th = model.to_internal(params)
            tol = 1e-7 * (1.0 + np.abs(th))
            out["at_bound"] = ~is_fixed & (
                (np.abs(th - box[0]) <= tol) | (np.abs(th - box[1]) <= tol)
            )
    failed = status == "failed"
    params = np.where(failed[:, None], np.nan, params)
    out.update(
        params=params,
        se=se,
        cov=cov,
        rss=rss,
        df=df,
        sigma=np.sqrt(sigma2),
        status=status.astype(object),
        n_iter=n_iter,
        n_obs=n_obs,
        fixed=is_fixed,
        reason=reason.astype(object),
    )
    return out


@dataclass(frozen=True)
class FitLimits:
    """Where a fitted curve stops being a calibration curve: the limits that make a fit
    ``degenerate`` (issue 12, item 5: "no number from a failed curve").

    A least-squares estimate outside these limits is not an estimate the data support:
    the optimiser has run along a valley towards a limit of the model family (an
    asymptote or inflection far outside the data, a vanishing or exploding slope or
    asymmetry), where the curve over the standards is fixed by a few points and its
    parameters trade off without bound. Each limit is relative to the data of its own
    curve.

    Attributes
    ----------
    asymptote_ranges:
        ``a`` and ``d`` lie within the observed signal range widened by this many
        times the range on each side (default 10). A documented engineering choice:
        a plateau not reached by the standards is legitimately extrapolated a few ranges
        beyond the data (Findlay & Dillard, AAPS J 2007;9:E260, on anchor points), never
        by orders of magnitude (the xPONENT IL1B fit with ``a = 2.9e14`` on a signal of
        ~2e4; the potency top of 3.5e159 pg/mL).
    slope:
        ``(low, high)`` for the slope ``b`` of the log-logistic families (default
        0.1-10). Immunoassay standard curves have slopes of about 0.5-2 (Findlay &
        Dillard 2007; O'Connell, Belanger & Haaland, Chemom Intell Lab Syst
        1993;20:97-114); a slope of 0.1 spreads 10-90 % of the response over 19 decades
        and one of 10 over less than 0.4 decade, i.e. between two standards or two
        doses. A documented engineering choice with a factor of ~5 of margin each side;
        it rejects the fixtures of issue 12 (``b = 0.004``; potency Hill slopes 11-45).
    asymmetry_log10:
        ``|log10 g| <=`` this (default 1.5, the QC threshold of issue 12 for ``make
        demo``). Bio-Plex Manager bounds ``g`` to [0.1, 10] in the reports studied
        (:func:`cytosafe.io.bioplex.read_bioplex_equations`); 1.5 leaves room beyond
        that while rejecting the demo's MSD fits with ``g`` of 3e-11 and 5e10.
    inflection_decades:
        ``c`` within this many decades beyond the lowest and highest positive
        concentration of the curve (default 3). A documented engineering choice: the
        inflection of a usable curve lies among or near its standards; 3 decades
        tolerates a curve whose plateau is far from reached and rejects the IL1B fit
        with ``c = 4e25`` on standards up to ~8e3.
    """

    asymptote_ranges: float = 10.0
    slope: tuple[float, float] = (0.1, 10.0)
    asymmetry_log10: float = 1.5
    inflection_decades: float = 3.0


def check_limits(
    model: str | Model,
    params: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    limits: FitLimits | None = None,
) -> np.ndarray:
    """Why each fitted curve is degenerate under ``limits`` (``""`` where it is not).

    Parameters
    ----------
    model:
        The fitted family. The slope and inflection limits apply to the log-logistic
        families (``4PL``, ``5PL``, ``5PL-mirror``), the asymmetry limit where the model
        has ``g``, the asymptote limit where it has ``a`` and ``d``.
    params:
        ``(n, k)`` fitted parameters (natural scale).
    x, y, mask:
        The data each curve was fitted to, ``(n, m)`` (``mask``: points used).
    limits:
        :class:`FitLimits` (default ``FitLimits()``).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` object array of reasons, e.g. ``"slope b = 0.004 outside [0.1, 10]"``;
        several broken limits are joined by ``"; "``.

    Examples
    --------
    >>> x = np.array([[1.0, 10, 100, 1000]]); y = np.array([[10.0, 100, 1000, 5000]])
    >>> check_limits("4PL", np.array([[5.0, 0.004, 4e25, 2.9e14]]), x, y)[0]
    'slope b = 0.004 outside [0.1, 10]; inflection c = 4e+25 more than 3 decades beyond the concentrations (1-1000); asymptote d = 2.9e+14 more than 10 signal ranges beyond the observed signal (10-5000)'
    """
    model = get_model(model)
    lim = FitLimits() if limits is None else limits
    p = np.atleast_2d(np.asarray(params, dtype=float))
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    m = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m &= np.atleast_2d(np.asarray(mask, dtype=bool))
    n = p.shape[0]
    names = model.names
    parts: list[np.ndarray] = []

    def add(bad: np.ndarray, template: str, *values) -> None:
        # Formatted only where a limit is broken: the check runs on every fit.
        text = np.full(n, "", dtype=object)
        rows = np.flatnonzero(bad)
        if rows.size:
            cols = [np.broadcast_to(np.asarray(v, dtype=float), (n,))[rows] for v in values]
            text[rows] = [
                template.format(*(f"{v:.4g}" for v in row)) for row in zip(*cols, strict=True)
            ]
        parts.append(text)

    big = np.finfo(float).max
    add(~np.all(np.isfinite(p), axis=1), "a parameter is not finite")
    log_logistic = isinstance(model, FivePL)
    if log_logistic and "b" in names:
        b = p[:, names.index("b")]
        lo, hi = lim.slope
        add(
            ~((b >= lo) & (b <= hi)) & np.isfinite(b),
            "slope b = {} outside [{}, {}]",
            b,
            lo,
            hi,
        )
    if log_logistic and "c" in names and np.isfinite(lim.inflection_decades):
        c = p[:, names.index("c")]
        use = m & (x > 0)
        x_lo = np.where(use, x, big).min(1)
        x_hi = np.where(use, x, -big).max(1)
        f = 10.0**lim.inflection_decades
        have = use.any(1)
        bad = have & np.isfinite(c) & ((c < x_lo / f) | (c > x_hi * f))
        add(
            bad,
            "inflection c = {} more than {} decades beyond the concentrations ({}-{})",
            c,
            lim.inflection_decades,
            x_lo,
            x_hi,
        )
    if "g" in names:
        g = p[:, names.index("g")]
        with np.errstate(all="ignore"):
            bad = np.isfinite(g) & (np.abs(np.log10(np.maximum(g, 1e-300))) > lim.asymmetry_log10)
        add(bad, "asymmetry g = {} outside |log10 g| <= {}", g, lim.asymmetry_log10)
    if "a" in names and "d" in names and np.isfinite(lim.asymptote_ranges):
        y_lo = np.where(m, y, big).min(1)
        y_hi = np.where(m, y, -big).max(1)
        have = m.any(1)
        span = np.where(have, y_hi - y_lo, 0.0)
        span = np.maximum(span, 1e-12 * np.maximum(np.abs(y_hi), 1.0))
        k = lim.asymptote_ranges
        for nm in ("a", "d"):
            v = p[:, names.index(nm)]
            bad = have & np.isfinite(v) & ((v < y_lo - k * span) | (v > y_hi + k * span))
            add(
                bad,
                "asymptote " + nm + " = {} more than {} signal ranges beyond the observed "
                "signal ({}-{})",
                v,
                k,
                y_lo,
                y_hi,
            )
    out = np.full(n, "", dtype=object)
    for part in parts:
        join = (out != "") & (part != "")
        out = np.where(join, out + "; " + part, out + part)
    return out


class _Direct:
    """Residuals and Jacobian of the full parameter vector (any model)."""

    def __init__(self, model, x, y, sw, m, free):
        self.model, self.x, self.sw, self.free = model, x, sw, free
        self.ysw = sw * y
        self.solve = np.arange(model.n_params)

    def evaluate(self, idx, theta):
        """Residuals at ``theta`` (rows ``idx``); returns ``r, theta, context``."""
        p = self.model.from_internal(theta)
        f = self.model.f(self.x[idx], p)
        return self.ysw[idx] - self.sw[idx] * f, theta, p

    def jacobian(self, idx, ctx):
        """Columns ``(k, n, m)`` of the weighted Jacobian for the context of rows ``idx``."""
        p = ctx
        J = np.moveaxis(self.model.jac(self.x[idx], p), -1, 0)
        scale = self.model.internal_scale(p).T[:, :, None]
        return J * scale * self.sw[idx] * self.free[idx].T[:, :, None]

    @staticmethod
    def take(ctx, sel):
        return ctx[sel]


class _Projected:
    """Variable projection (Golub & Pereyra, SIAM J Numer Anal 1973;10:413-432).

    The linear parameters (for the logistic models the asymptotes ``a`` and ``d``) are
    solved exactly by weighted linear least squares at every trial point, so the
    Levenberg-Marquardt iteration only sees the non-linear ones, with Kaufman's Jacobian
    (BIT 1975;15:49-57), ``P⊥ ∂f/∂θ``, whose gradient is exact. This removes the curved
    valleys in which ``d`` and ``g`` (or ``c``) must move together, and any start for the
    linear parameters.
    """

    def __init__(self, model, x, y, sw, m, free):
        self.model, self.x, self.sw = model, x, sw
        lin = np.asarray(model.linear, dtype=bool)
        self.lin = np.flatnonzero(lin)
        self.solve = np.flatnonzero(~lin)
        self.free_lin = free[:, self.lin].T  # (q, n)
        self.free_nl = free[:, self.solve].T  # (r, n)
        self.ysw = sw * y
        self.positive = np.asarray(model.positive, dtype=bool)[self.solve]

    def evaluate(self, idx, theta):
        model = self.model
        p = model.from_internal(theta)
        phi, dphi = model.basis(self.x[idx], p)
        sw = self.sw[idx]
        phiw = phi * sw
        alpha = p[:, self.lin].T  # (q, n), fixed values where fixed
        fl = self.free_lin[:, idx]
        ytil = self.ysw[idx] - _einsum("qnm,qn->nm", phiw, np.where(fl, 0.0, alpha))
        q = len(self.lin)
        # Modified Gram-Schmidt on the free basis columns; dependent columns are dropped.
        Q = np.zeros_like(phiw)
        R = np.zeros((q, q, len(idx)))
        c = np.zeros((q, len(idx)))
        res = ytil
        for i in range(q):
            v = np.where(fl[i][:, None], phiw[i], 0.0)
            n0 = np.sqrt(_einsum("nm,nm->n", v, v))
            for j in range(i):
                R[j, i] = _einsum("nm,nm->n", Q[j], v)
                v = v - R[j, i][:, None] * Q[j]
            nv = np.sqrt(_einsum("nm,nm->n", v, v))
            ok = nv > 1e-10 * n0
            R[i, i] = np.where(ok, nv, 0.0)
            Q[i] = np.where(ok[:, None], v / np.where(ok, nv, 1.0)[:, None], 0.0)
            c[i] = _einsum("nm,nm->n", Q[i], res)
            res = res - c[i][:, None] * Q[i]
        a_new = np.zeros_like(c)
        for i in range(q - 1, -1, -1):
            acc = c[i] - _einsum("jn,jn->n", R[i, i + 1 :], a_new[i + 1 :])
            a_new[i] = np.where(R[i, i] > 0, acc / np.where(R[i, i] > 0, R[i, i], 1.0), 0.0)
        alpha = np.where(fl, a_new, alpha)
        theta = theta.copy()
        theta[:, self.lin] = alpha.T
        scale = np.where(self.positive[:, None], p[:, self.solve].T, 1.0)  # (r, n)
        return res, theta, (Q, dphi, alpha, scale, sw)

    def jacobian(self, idx, ctx):
        Q, dphi, alpha, scale, sw = ctx
        # sum_q alpha_q dphi_q written out: elementwise, so no layout-dependent summation
        # and no contiguous copy of dphi (the largest array of the iteration).
        N = alpha[0][None, :, None] * dphi[0]
        for i in range(1, dphi.shape[0]):
            N += alpha[i][None, :, None] * dphi[i]
        N *= (scale * self.free_nl[:, idx])[:, :, None]
        N *= sw
        for i in range(Q.shape[0]):
            N -= _einsum("rnm,nm->rn", N, Q[i])[:, :, None] * Q[i]
        return N

    @staticmethod
    def take(ctx, sel):
        # np.take returns C-contiguous arrays (a fancy index on an inner axis does not).
        Q, dphi, alpha, scale, sw = ctx
        rows = np.flatnonzero(sel)
        return (
            np.take(Q, rows, axis=1),
            np.take(dphi, rows, axis=2),
            np.take(alpha, rows, axis=1),
            np.take(scale, rows, axis=1),
            np.take(sw, rows, axis=0),
        )


def _einsum(spec, *operands):
    """``np.einsum`` on C-contiguous operands.

    einsum sums in a different order when an operand is laid out column-major (as a
    fancy-indexed column selection ``a[:, [1, 2, 4]]`` is, except for a single row), so
    a curve's rounding would depend on how many other curves are still iterating; with
    one layout every curve is computed the same way whatever its batch (and block).
    """
    return np.einsum(spec, *(np.ascontiguousarray(op) for op in operands))


def _normal_equations(J, r):
    """``JᵀJ`` ``(n, k, k)`` and ``Jᵀr`` ``(n, k)`` from columns ``J (k, n, m)``."""
    k = J.shape[0]
    n = J.shape[1]
    A = np.empty((n, k, k))
    for i in range(k):
        for j in range(i, k):
            A[:, i, j] = A[:, j, i] = _einsum("nm,nm->n", J[i], J[j])
    g = _einsum("knm,nm->nk", J, r)
    return A, g


def _cholesky_solve(M, b):
    """Solve SPD systems ``M x = b`` batched, ``M (n, k, k)``; NaN rows where not SPD."""
    n, k = b.shape
    L = np.zeros_like(M)
    ok = np.ones(n, dtype=bool)
    for j in range(k):
        s = M[:, j, j] - _einsum("nk,nk->n", L[:, j, :j], L[:, j, :j])
        ok &= s > 0
        L[:, j, j] = np.sqrt(np.where(s > 0, s, 1.0))
        for i in range(j + 1, k):
            L[:, i, j] = (M[:, i, j] - _einsum("nk,nk->n", L[:, i, :j], L[:, j, :j])) / L[:, j, j]
    z = np.empty_like(b)
    for i in range(k):
        z[:, i] = (b[:, i] - _einsum("nk,nk->n", L[:, i, :i], z[:, :i])) / L[:, i, i]
    x = np.empty_like(b)
    for i in range(k - 1, -1, -1):
        x[:, i] = (z[:, i] - _einsum("nk,nk->n", L[:, i + 1 :, i], x[:, i + 1 :])) / L[:, i, i]
    x[~ok] = np.nan
    return x


def _bounds_box(model: Model, bounds, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``bounds`` as an internal-scale box ``(lo, hi)``, each ``(n, k)``; None if none."""
    if not bounds:
        return None
    k = model.n_params
    lo, hi = np.full((n, k), -np.inf), np.full((n, k), np.inf)
    linear = np.asarray(model.linear or (False,) * k, dtype=bool)
    for name, pair in dict(bounds).items():
        if name not in model.names:
            raise FitError(
                f"cannot bound '{name}': {model.name} has parameters {', '.join(model.names)}"
            )
        j = model.names.index(name)
        if linear[j]:
            raise FitError(f"cannot bound '{name}': {model.name} solves it by linear least squares")
        low, high = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in pair)
        if model.positive[j]:
            with np.errstate(all="ignore"):
                low = np.where(low > 0, np.log(np.where(low > 0, low, 1.0)), -np.inf)
                high = np.where(high > 0, np.log(np.where(high > 0, high, 1.0)), np.nan)
        lo[:, j] = np.where(np.isnan(low), -np.inf, low)
        hi[:, j] = np.where(np.isnan(high), np.inf, high)
    if np.any(lo > hi):
        raise FitError("a bound's low end is above its high end")
    return lo, hi


def compiled_available() -> bool:
    """Whether the compiled kernel can run: Numba is installed and ``CYTOSAFE_COMPILED``
    is not ``0`` (checked without importing Numba)."""
    import importlib.util
    import os

    if os.environ.get("CYTOSAFE_COMPILED", "1").strip().lower() in ("0", "false", "no"):
        return False
    return importlib.util.find_spec("numba") is not None


def _kernel_code(model: Model, kernel: str, n: int) -> int | None:
    """The compiled kernel's family code for ``model`` under ``kernel`` with ``n`` curves,
    or None for the NumPy iteration."""
    if kernel not in ("auto", "numpy", "compiled"):
        raise FitError(f"unknown kernel '{kernel}'; expected 'auto', 'numpy' or 'compiled'")
    if kernel == "numpy" or (kernel == "auto" and n < COMPILED_MIN_CURVES):
        return None
    code = {FivePL: 0, MirrorFivePL: 1, FourPL: 2}.get(type(model))
    if code is None or not compiled_available():
        if kernel == "compiled":
            why = (
                "not for " + model.name
                if code is None
                else "Numba is not installed, or CYTOSAFE_COMPILED=0 turned it off"
            )
            raise FitError(f"the compiled kernel is not available ({why})")
        return None
    return code


def _is_one_of(status: np.ndarray, names) -> np.ndarray:
    """``np.isin(status, names)`` for an object array of a few status names, by one
    comparison per name (np.isin sorts objects: 5x slower on the statuses of a block)."""
    out = np.zeros(status.shape, dtype=bool)
    for name in names:
        out |= status == name
    return out


def _internal_bounds(model, x, m):
    """``model.internal_bounds(x, m)``, computed once where every curve has the same
    concentrations and uses all of them (a plate's standards, broadcast: a view whose rows
    share memory), which the box depends on only through a curve's own row."""
    if x.shape[0] > 1 and x.strides[0] == 0 and m.all():
        lo, hi = model.internal_bounds(x[:1], m[:1])
        return np.repeat(lo, x.shape[0], axis=0), np.repeat(hi, x.shape[0], axis=0)
    return model.internal_bounds(x, m)


def _levenberg_marquardt(
    model, x, y, w, m, p0, is_fixed, max_iter, ftol, xtol, gtol, box=None, compiled=None
):
    """Batched LM with Nielsen's damping update (Nielsen, IMM-REP-1999-05; Madsen, Nielsen
    & Tingleff, "Methods for non-linear least squares problems", 2004): the damping
    follows the gain ratio ``ρ`` (actual over predicted reduction), ``λ ← λ·max(1/3,
    1 − (2ρ − 1)³)`` after a success and ``λ ← λν, ν ← 2ν`` after a failure, with
    Moré's scaling (the largest column norms seen so far).
    """
    n = p0.shape[0]
    lo, hi = _internal_bounds(model, x, m)
    if box is not None:
        lo, hi = np.maximum(lo, box[0]), np.minimum(hi, box[1])
        hi = np.maximum(hi, lo)
    theta = np.clip(model.to_internal(p0), lo, hi)
    if compiled is not None:
        from cytosafe.curves import _compiled

        return _compiled.levenberg_marquardt(
            compiled, x, y, w, m, theta, is_fixed, lo, hi, max_iter, ftol, xtol, gtol
        )
    sw = np.sqrt(w)
    free = ~is_fixed
    if model.linear and any(model.linear):
        prob = _Projected(model, x, y, sw, m, free)
    else:
        prob = _Direct(model, x, y, sw, m, free)
    sidx = prob.solve  # parameters the LM iterates on
    ks = len(sidx)
    sfree = free[:, sidx]
    status = np.full(n, "max_iter", dtype=object)
    n_iter = np.zeros(n, dtype=int)
    every = np.arange(n)
    with np.errstate(all="ignore"):
        r, theta, ctx = prob.evaluate(every, theta)
        rss = _einsum("ij,ij->i", r, r)
        J = prob.jacobian(every, ctx)
    finite = np.isfinite(rss) & np.all(np.isfinite(J), axis=(0, 2))
    J = np.where(finite[None, :, None], J, 0.0)
    A, g = _normal_equations(J, r)
    status[~finite] = "failed"
    active = finite & (m.sum(1) >= free.sum(1))
    status[~active & finite] = "insufficient_data"
    # Data scale for the vanishing-column test: |sw y|.
    ynorm = np.sqrt(_einsum("ij,ij->i", prob.ysw, prob.ysw))
    D = np.maximum(np.diagonal(A, axis1=1, axis2=2), 0.0).copy()
    lam = np.full(n, 1e-3)
    nu = np.full(n, 2.0)
    logp = np.asarray(model.positive, dtype=bool)[sidx]
    eye = np.eye(ks)

    for it in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        n_iter[idx] = it
        Ai, gi, fr = A[idx], g[idx], sfree[idx]
        # Active set: a parameter on a bound whose descent direction points out of the
        # box takes no part in this iteration (neither in the gradient test nor in the
        # step), so the others take their full step instead of a clipped one. Without
        # it a 5PL held at Bio-Plex's g = 0.1 crawled along its ridge for hundreds of
        # iterations (LabKey IgA-Biotin ENV4: max_iter after 600 at the optimum).
        ts = theta[idx][:, sidx]
        out = fr & (((ts <= lo[idx][:, sidx]) & (gi < 0)) | ((ts >= hi[idx][:, sidx]) & (gi > 0)))
        fr = fr & ~out
        gi = np.where(out, 0.0, gi)
        diag = np.diagonal(Ai, axis1=1, axis2=2)
        # Scaled gradient test (MINPACK gtol): cosine between r and the columns of J.
        col_norm = np.sqrt(np.maximum(diag, 0.0))
        rn = np.sqrt(np.maximum(rss[idx], 0.0))
        with np.errstate(all="ignore"):
            cosine = np.abs(gi) / (col_norm * rn[:, None])
        gnorm = np.where(np.isfinite(cosine), cosine, 0.0).max(axis=1)
        grad_ok = (gnorm <= gtol) | (rss[idx] <= 1e-300 * np.maximum(ynorm[idx] ** 2, 1.0))
        if grad_ok.any():
            status[idx[grad_ok]] = "converged"
            active[idx[grad_ok]] = False
            keep = ~grad_ok
            idx, Ai, gi, fr, diag = idx[keep], Ai[keep], gi[keep], fr[keep], diag[keep]
            if idx.size == 0:
                break
        Di = D[idx]
        dscale = np.where(
            fr, np.maximum(Di, 1e-12 * np.maximum(Di.max(1, keepdims=True), 1e-300)), 1.0
        )
        M = Ai + (lam[idx][:, None] * dscale)[:, :, None] * eye
        M = np.where(fr[:, :, None] & fr[:, None, :], M, eye)
        rhs = np.where(fr, gi, 0.0)
        with np.errstate(all="ignore"):
            delta = _cholesky_solve(M, rhs)
        th0 = theta[idx]
        th1 = th0.copy()
        th1[:, sidx] = np.clip(th0[:, sidx] + delta, lo[idx][:, sidx], hi[idx][:, sidx])
        delta = th1[:, sidx] - th0[:, sidx]
        pred = _einsum("nk,nk->n", delta, 2.0 * gi - _einsum("nkl,nl->nk", Ai, delta))
        with np.errstate(all="ignore"):
            r1, th1, ctx1 = prob.evaluate(idx, np.where(np.isfinite(th1), th1, th0))
            rss1 = _einsum("ij,ij->i", r1, r1)
        actual = rss[idx] - rss1
        better = np.isfinite(rss1) & (actual > 0) & np.all(np.isfinite(delta), axis=1)
        with np.errstate(all="ignore"):
            rho = np.where(better, actual / pred, -1.0)
        acc = idx[better]
        if acc.size:
            with np.errstate(all="ignore"):
                J = prob.jacobian(acc, prob.take(ctx1, better))
            okj = np.all(np.isfinite(J), axis=(0, 2))
            J = np.where(okj[None, :, None], J, 0.0)
            A[acc], g[acc] = _normal_equations(J, r1[better])
            D[acc] = np.maximum(D[acc], np.diagonal(A[acc], axis1=1, axis2=2))
            theta[acc] = th1[better]
            r[acc] = r1[better]
            rss_old = rss[acc].copy()
            rss[acc] = rss1[better]
            rb = rho[better]
            lam[acc] = lam[acc] * np.maximum(
                1.0 / 3.0, 1.0 - (2.0 * np.minimum(rb, 1.0) - 1.0) ** 3
            )
            lam[acc] = np.maximum(lam[acc], 1e-16)
            nu[acc] = 2.0
            scale_norm = np.sqrt(_einsum("nk,nk->n", D[acc], th1[better][:, sidx] ** 2))
            step_norm = np.sqrt(_einsum("nk,nk->n", D[acc], delta[better] ** 2))
            f_conv = (
                (actual[better] <= ftol * rss_old) & (pred[better] <= ftol * rss_old) & (rb <= 2.0)
            )
            x_conv = step_norm <= xtol * (scale_norm + xtol)
            done = f_conv | x_conv
            status[acc[done]] = "converged"
            active[acc[done]] = False
        rej = idx[~better]
        if rej.size:
            # No progress. Converged if the (nearly undamped) Gauss-Newton step, cut to
            # at most one log unit, predicts a relative reduction below ftol: either the
            # curve is at its minimum to rounding, or it is so far out along a valley
            # that leads to a limit of the model family (g -> 0 or g -> inf, approached
            # exponentially in log g) that what is left to gain is below ftol.
            nb = ~better
            M0 = Ai[nb] + (1e-10 * dscale[nb])[:, :, None] * eye
            M0 = np.where(fr[nb][:, :, None] & fr[nb][:, None, :], M0, eye)
            with np.errstate(all="ignore"):
                d0 = _cholesky_solve(M0, rhs[nb])
                cut = np.maximum(np.max(np.abs(np.where(logp, d0, 0.0)), axis=1), 1.0)
                d0 = d0 / cut[:, None]
                pred0 = _einsum("nk,nk->n", d0, 2.0 * rhs[nb] - _einsum("nkl,nl->nk", Ai[nb], d0))
            at_min = np.isfinite(pred0) & (pred0 <= ftol * rss[rej])
            status[rej[at_min]] = "converged"
            active[rej[at_min]] = False
        lam[rej] *= nu[rej]
        nu[rej] *= 2.0
        # A curve whose damping has exploded cannot move any more: it sits at a minimum
        # the tolerances could not certify (typically an exact or near-exact fit).
        stuck = rej[lam[rej] > 1e16]
        status[stuck] = "stalled"
        active[stuck] = False
    # Honest convergence: a free parameter the fitted curve no longer depends on (its
    # Jacobian column vanished, e.g. an inflection far outside the data) is not estimated.
    diag = np.diagonal(A, axis1=1, axis2=2)
    vanished = np.sqrt(np.maximum(diag, 0.0)) <= 1e-9 * ynorm[:, None]
    dead = np.all(vanished | ~sfree, axis=1) & np.any(sfree, axis=1)
    status[dead & (status == "converged")] = "stalled"
    return theta, rss, status, n_iter


def _covariance(model, x, y, w, m, params, is_fixed, sigma2, kind):
    """Parameter covariance ``(n, k, k)`` on the scaled problem (zeros for fixed parameters).

    The normal matrix ``JᵀWJ`` of a calibration curve is never formed or inverted as it
    stands: its condition number reaches 1e16 at ECL and MFI signal scales only because
    the parameters live on very different scales (an asymptote of 1e5 beside a slope of
    1), not because the fit is ill-determined. Instead the columns of the weighted
    Jacobian ``√W J`` are equilibrated to unit norm (``D`` their norms; this removes the
    units of the parameters and of the signal, so the covariance is exactly invariant to
    rescaling the signal), and the scaled Jacobian ``J_s = √W J D⁻¹`` is decomposed by SVD,
    ``J_s = U S Vᵀ``: ``Cov = σ² D⁻¹ V S⁻² Vᵀ D⁻¹`` (Björck, *Numerical Methods for Least
    Squares Problems*, SIAM 1996, §1.2 and §2.7; the column scaling is van der Sluis'
    near-optimal diagonal scaling, Numer Math 1969;14:14-23). A curve gets a covariance
    when its scaled Jacobian has full rank among the free parameters, judged by
    ``s_min > 1e-10 s_max`` (a documented engineering choice: ~1e6 times the double
    precision floor of the SVD, so the smallest singular value carries at least six
    significant digits); otherwise its covariance is NaN.

    ``"observed"`` adds the second-order term of the Hessian, scaled the same way, and
    inverts the scaled Hessian by its symmetric eigendecomposition: it needs every free
    eigenvalue positive and above 1e-10 of the largest.
    """
    k = params.shape[1]
    free = ~is_fixed
    n_free = free.sum(1)
    with np.errstate(all="ignore"):
        p = np.where(np.isfinite(params), params, 0.0)
        J = np.where(m[..., None], model.jac(x, p), 0.0) * free[:, None, :]
        Jw = np.sqrt(w)[..., None] * J
        good = np.all(np.isfinite(Jw), axis=(1, 2)) & np.isfinite(sigma2)
        Jw = np.where(good[:, None, None], Jw, 0.0)
        dnorm = np.sqrt(_einsum("imk,imk->ik", Jw, Jw))
        dsafe = np.where(dnorm > 0, dnorm, 1.0)
        Js = Jw / dsafe[:, None, :]
        if kind == Covariance.OBSERVED:
            # Second derivatives of f by central differences of the analytic Jacobian.
            r = np.where(m, y - model.f(x, p), 0.0)
            H = _einsum("imk,iml->ikl", Js, Js)
            for j in range(k):
                h = 1e-5 * np.maximum(np.abs(p[:, j]), 1e-3)
                pp, pm = p.copy(), p.copy()
                pp[:, j] += h
                pm[:, j] -= h
                d2 = (model.jac(x, pp) - model.jac(x, pm)) / (2 * h)[:, None, None]
                d2 = np.where(m[..., None], d2, 0.0) * free[:, None, :]
                H[:, j, :] -= _einsum("im,im,imk->ik", w, r, d2) / (dsafe[:, j : j + 1] * dsafe)
            H = 0.5 * (H + np.transpose(H, (0, 2, 1)))
            H = H * (free[:, :, None] & free[:, None, :])
            good &= np.all(np.isfinite(H), axis=(1, 2))
            H = np.where(good[:, None, None], H, 0.0)
            lam, V = np.linalg.eigh(H)
            top = np.max(np.abs(lam), axis=1, keepdims=True)
            keep = lam > 1e-10 * top
            neg = lam < -1e-10 * top
            full = (keep.sum(1) == n_free) & ~neg.any(1)
            inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
        else:
            _, sv, Vt = np.linalg.svd(Js, full_matrices=False)
            V = np.transpose(Vt, (0, 2, 1))
            top = sv.max(1, keepdims=True)
            keep = sv > 1e-10 * top
            full = keep.sum(1) == n_free
            inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0) ** 2, 0.0)
        Cs = _einsum("ikj,ij,ilj->ikl", V, inv, V)
        cov = Cs / (dsafe[:, :, None] * dsafe[:, None, :]) * sigma2[:, None, None]
    ok = good & full & (n_free > 0)
    cov = np.where(ok[:, None, None], cov, np.nan)
    mask2 = free[:, :, None] & free[:, None, :]
    return np.where(mask2, cov, 0.0)


@dataclass
class FamilyChoice:
    """Fits of several model families to the same curves and the family kept per curve.

    Attributes
    ----------
    fits: ``{model name: FitResult}``, every family fitted to every curve.
    chosen: ``(n,)`` the name of the family kept for each curve.
    params: ``(n, k)`` the kept fit's parameters (the families must share ``k``).
    aic: ``(n, n_families)`` AIC of each fit, in the order of ``fits``.
    """

    fits: dict
    chosen: np.ndarray
    params: np.ndarray
    aic: np.ndarray

    def result(self, name: str) -> FitResult:
        """The :class:`FitResult` of family ``name`` (all curves)."""
        return self.fits[name]


def choose_family(x, y, *, models=("5PL", "5PL-mirror"), **fit_kwargs) -> FamilyChoice:
    """Fit both 5PL families (or any families with the same parameter count) and keep the
    better one per curve.

    Use where the vendor's family is unknown (where an export prints its coefficients,
    fit in the vendor's family instead: :func:`cytosafe.curves.models.vendor_curve`).
    The criterion is Akaike's information criterion for least squares,
    ``AIC = n log(RSS_w / n) + 2 (p + 1)`` (Motulsky & Christopoulos, *Fitting models to
    biological data*, 2004, ch. 22); with the same weights and the same number of
    parameters it is the smaller weighted RSS. A fit whose status is usable
    (``converged`` or ``stalled``) is preferred to one that is not; ties keep the first
    family listed.

    Parameters
    ----------
    x, y:
        As :func:`fit_curves`.
    models:
        Family names; each is fitted to every curve in one batch.
    **fit_kwargs:
        Passed to :func:`fit_curves` (``weighting``, ``mask``, ``weights``...).

    Returns
    -------
    FamilyChoice
    """
    fits = {}
    for name in models:
        res = fit_curves(x, y, model=name, **fit_kwargs)
        fits[res.model.name] = res
    names = list(fits)
    ks = {fits[nm].model.n_params for nm in names}
    if len(ks) != 1:
        raise FitError("choose_family needs families with the same number of parameters")
    k = ks.pop()
    aic = np.column_stack(
        [
            np.where(
                np.isfinite(fits[nm].rss) & (fits[nm].n_obs > 0),
                fits[nm].n_obs
                * np.log(np.maximum(fits[nm].rss, 1e-300) / np.maximum(fits[nm].n_obs, 1))
                + 2 * (k + 1),
                np.inf,
            )
            for nm in names
        ]
    )
    usable = np.column_stack([np.isin(fits[nm].status, list(USABLE)) for nm in names])
    score = np.where(usable, aic, np.inf)
    score = np.where(usable.any(1, keepdims=True), score, aic)
    best = np.argmin(score, axis=1)
    chosen = np.array(names, dtype=object)[best]
    stack = np.stack([fits[nm].params for nm in names])
    params = stack[best, np.arange(len(best))]
    return FamilyChoice(fits=fits, chosen=chosen, params=params, aic=aic)
