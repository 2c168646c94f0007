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

import numpy as np
import pandas as pd

from cytosafe.curves.models import Model, get_model
from cytosafe.errors import FitError

__all__ = ["WEIGHTINGS", "FitResult", "curve_weights", "fit_curves"]

#: Weighting schemes of :func:`curve_weights`.
WEIGHTINGS = ("none", "1/y", "1/y2", "1/var")

#: Per-curve status values.
STATUSES = ("converged", "max_iter", "stalled", "failed", "insufficient_data")


@dataclass
class FitResult:
    """Fitted parameters of a batch of curves (row ``i`` is curve ``i``).

    Attributes
    ----------
    model: the :class:`~cytosafe.curves.models.Model`.
    params, se: ``(n, k)`` estimates and standard errors (NaN for fixed parameters).
    cov: ``(n, k, k)`` covariance of the estimates.
    rss: weighted residual sum of squares; ``df`` residual degrees of freedom;
    sigma: residual standard error ``sqrt(rss / df)``.
    status: one of ``converged, max_iter, stalled, failed, insufficient_data``.
    n_iter, n_obs: iterations used and points fitted per curve.
    fixed: ``(n, k)`` boolean, which parameters were held fixed.
    """

    model: Model
    params: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    rss: np.ndarray
    df: np.ndarray
    sigma: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray
    n_obs: np.ndarray
    fixed: np.ndarray
    weighting: str = "none"
    covariance: str = "expected"
    extra: dict = field(default_factory=dict)

    @property
    def converged(self) -> np.ndarray:
        return self.status == "converged"

    def to_frame(self) -> pd.DataFrame:
        """One row per curve: parameters, standard errors, rss, df, sigma, status."""
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
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, weighting: str = "none"
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
    if weighting == "none":
        w = np.ones_like(y)
    elif weighting in ("1/y", "1/y2"):
        pos = m & (y > 0)
        floor = np.where(pos, y, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 1.0)
        yy = np.where(pos, y, floor)
        w = 1.0 / yy if weighting == "1/y" else 1.0 / yy**2
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


def _fixed_matrix(model: Model, fixed, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n, k)`` of fixed parameters and their values (NaN where free)."""
    k = model.n_params
    is_fixed = np.zeros((n, k), dtype=bool)
    values = np.full((n, k), np.nan)
    if fixed is None:
        return is_fixed, values
    for name, value in dict(fixed).items():
        if name not in model.names:
            raise FitError(
                f"cannot fix '{name}': {model.name} has parameters {', '.join(model.names)}"
            )
        j = model.names.index(name)
        v = np.broadcast_to(np.asarray(value, dtype=float), (n,))
        is_fixed[:, j] = np.isfinite(v)
        values[:, j] = v
    return is_fixed, values


def fit_curves(
    x,
    y,
    *,
    model: str | Model = "5PL",
    weights=None,
    weighting: str = "none",
    mask=None,
    fixed: dict | None = None,
    start=None,
    max_iter: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
    gtol: float = 1e-12,
    covariance: str = "expected",
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
    if covariance not in ("expected", "observed"):
        raise FitError(f"unknown covariance '{covariance}'; expected 'expected' or 'observed'")
    x = _as_2d(x, "x")
    y = _as_2d(y, "y")
    if x.shape != y.shape:
        if x.shape[0] == 1 and x.shape[1] == y.shape[1]:
            x = np.broadcast_to(x, y.shape).copy()
        else:
            raise FitError(f"x and y shapes differ: {x.shape} vs {y.shape}")
    n, _ = y.shape
    k = model.n_params
    m = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m &= _as_2d(mask, "mask").astype(bool)
    x = np.where(m, x, 0.0)
    y = np.where(m, y, 0.0)
    if weights is None:
        w = curve_weights(x, y, m, weighting)
    else:
        w = np.where(m, _as_2d(weights, "weights"), 0.0)
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise FitError("weights must be finite and non-negative")
        weighting = "user"
    is_fixed, fixed_values = _fixed_matrix(model, fixed, n)
    n_free = (~is_fixed).sum(1)
    n_obs = m.sum(1)

    if start is None:
        cands = model.start_candidates(x, y, m)
    else:
        cands = _as_2d(start, "start")
        if cands.shape[0] == 1 and n > 1:
            cands = np.broadcast_to(cands, (n, k))
        cands = cands[None]
    s = cands.shape[0]
    starts = np.where(is_fixed[None], fixed_values[None], cands).reshape(s * n, k)

    rep = np.tile(np.arange(n), s)
    theta, rss, status, n_iter = _levenberg_marquardt(
        model, x[rep], y[rep], w[rep], m[rep], starts, is_fixed[rep], max_iter, ftol, xtol, gtol
    )
    # Keep, per curve, the best candidate (converged ones first).
    rss_c = rss.reshape(s, n)
    score = np.where(np.isfinite(rss_c), rss_c, np.inf)
    ok = (status.reshape(s, n) == "converged") | (status.reshape(s, n) == "stalled")
    score = np.where(ok, score, np.inf)
    best = np.argmin(score, axis=0)
    none_ok = ~np.isfinite(score.min(axis=0))
    best = np.where(none_ok, np.argmin(np.where(np.isfinite(rss_c), rss_c, np.inf), axis=0), best)
    pick = best * n + np.arange(n)
    theta, rss, status, n_iter = theta[pick], rss[pick], status[pick], n_iter[pick]

    params = model.from_internal(theta)
    params = np.where(is_fixed, fixed_values, params)
    df = n_obs - n_free
    insufficient = df < 0
    status = np.where(insufficient, "insufficient_data", status)
    sigma2 = np.where(df > 0, rss / np.maximum(df, 1), np.nan)
    cov = _covariance(model, x, y, w, m, params, is_fixed, sigma2, covariance)
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    se = np.where(is_fixed, np.nan, se)
    failed = status == "failed"
    params = np.where(failed[:, None], np.nan, params)
    return FitResult(
        model=model,
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
        weighting=weighting,
        covariance=covariance,
    )


def _residuals(model, x, y, sw, m, p):
    return np.where(m, sw * (y - model.f(x, p)), 0.0)


def _levenberg_marquardt(model, x, y, w, m, p0, is_fixed, max_iter, ftol, xtol, gtol):
    n, k = p0.shape
    sw = np.sqrt(w)
    theta = model.to_internal(p0)
    free = ~is_fixed
    lam = np.full(n, 1e-3)
    with np.errstate(all="ignore"):
        r = _residuals(model, x, y, sw, m, model.from_internal(theta))
    rss = np.einsum("ij,ij->i", r, r)
    status = np.full(n, "max_iter", dtype=object)
    status[~np.isfinite(rss)] = "failed"
    n_iter = np.zeros(n, dtype=int)
    active = np.isfinite(rss) & (m.sum(1) >= free.sum(1))
    status[~active & np.isfinite(rss)] = "insufficient_data"
    eye = np.eye(k)
    need_jac = np.ones(n, dtype=bool)
    A = np.zeros((n, k, k))
    g = np.zeros((n, k))

    for it in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        n_iter[idx] = it
        # Jacobian (internal parameters) only where the last step was accepted.
        jdx = idx[need_jac[idx]]
        if jdx.size:
            with np.errstate(all="ignore"):
                p = model.from_internal(theta[jdx])
                J = model.jac(x[jdx], p) * model.internal_scale(p)[:, None, :]
                J = np.where(m[jdx][..., None], J * sw[jdx][..., None], 0.0)
                J = np.where(free[jdx][:, None, :], J, 0.0)
            A[jdx] = np.einsum("imk,iml->ikl", J, J)
            g[jdx] = np.einsum("imk,im->ik", J, r[jdx])
            need_jac[jdx] = False
        Ai, gi = A[idx], g[idx]
        diag = np.diagonal(Ai, axis1=1, axis2=2)
        # Scaled gradient test (MINPACK gtol): cosine between r and the columns of J.
        col_norm = np.sqrt(np.maximum(diag, 0.0))
        rn = np.sqrt(np.maximum(rss[idx], 0.0))
        with np.errstate(all="ignore"):
            cosine = np.abs(gi) / (col_norm * rn[:, None])
        gnorm = np.where(np.isfinite(cosine), cosine, 0.0).max(axis=1)
        grad_ok = (gnorm <= gtol) | (rss[idx] <= 1e-300)
        if grad_ok.any():
            status[idx[grad_ok]] = "converged"
            active[idx[grad_ok]] = False
            idx, Ai, gi, diag = idx[~grad_ok], Ai[~grad_ok], gi[~grad_ok], diag[~grad_ok]
            if idx.size == 0:
                break
        fr = free[idx]
        dscale = np.where(
            fr, np.maximum(diag, 1e-12 * np.maximum(diag.max(1, keepdims=True), 1e-300)), 1.0
        )
        M = Ai + lam[idx][:, None, None] * dscale[:, :, None] * eye
        M = np.where(fr[:, :, None] & fr[:, None, :], M, eye)
        rhs = np.where(fr, gi, 0.0)
        with np.errstate(all="ignore"):
            try:
                delta = np.linalg.solve(M, rhs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                delta = np.stack([_safe_solve(Mi, bi) for Mi, bi in zip(M, rhs, strict=True)])
        theta_new = theta[idx] + delta
        with np.errstate(all="ignore"):
            r_new = _residuals(
                model, x[idx], y[idx], sw[idx], m[idx], model.from_internal(theta_new)
            )
        rss_new = np.einsum("ij,ij->i", r_new, r_new)
        better = np.isfinite(rss_new) & (rss_new <= rss[idx]) & np.all(np.isfinite(delta), axis=1)
        acc = idx[better]
        rel_drop = np.where(better, (rss[idx] - rss_new) / np.maximum(rss[idx], 1e-300), 0.0)
        step_small = np.all(np.abs(delta) <= xtol * (np.abs(theta_new) + xtol), axis=1)
        theta[acc] = theta_new[better]
        r[acc] = r_new[better]
        rss[acc] = rss_new[better]
        need_jac[acc] = True
        lam[acc] = np.maximum(lam[acc] / 10.0, 1e-15)
        rej = idx[~better]
        lam[rej] = lam[rej] * 10.0
        done = better & ((rel_drop <= ftol) | step_small)
        status[idx[done]] = "converged"
        active[idx[done]] = False
        # A curve whose damping has exploded cannot move any more: it sits at a minimum
        # the tolerances could not certify (typically an exact or near-exact fit).
        stuck = (~better) & (lam[idx] > 1e16)
        status[idx[stuck]] = "stalled"
        active[idx[stuck]] = False
    return theta, rss, status, n_iter


def _safe_solve(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(M, b[:, None])[:, 0]
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(M, b, rcond=None)[0]


def _covariance(model, x, y, w, m, params, is_fixed, sigma2, kind):
    n, k = params.shape
    free = ~is_fixed
    with np.errstate(all="ignore"):
        p = np.where(np.isfinite(params), params, 0.0)
        J = model.jac(x, p)
        J = np.where(m[..., None], J, 0.0)
        H = np.einsum("imk,im,iml->ikl", J, w, J)
        if kind == "observed":
            # Second derivatives of f by central differences of the analytic Jacobian.
            r = np.where(m, y - model.f(x, p), 0.0)
            for j in range(k):
                h = 1e-5 * np.maximum(np.abs(p[:, j]), 1e-3)
                pp, pm = p.copy(), p.copy()
                pp[:, j] += h
                pm[:, j] -= h
                d2 = (model.jac(x, pp) - model.jac(x, pm)) / (2 * h)[:, None, None]
                H[:, j, :] -= np.einsum("im,im,imk->ik", w, r, np.where(m[..., None], d2, 0.0))
            H = 0.5 * (H + np.transpose(H, (0, 2, 1)))
    eye = np.eye(k)
    H = np.where(free[:, :, None] & free[:, None, :], H, eye)
    cov = np.full((n, k, k), np.nan)
    good = np.all(np.isfinite(H), axis=(1, 2)) & np.isfinite(sigma2)
    if good.any():
        Hg = H[good]
        inv = np.full_like(Hg, np.nan)
        cond_ok = np.linalg.cond(Hg) < 1e14
        if cond_ok.any():
            inv[cond_ok] = np.linalg.inv(Hg[cond_ok])
        cov[good] = inv * sigma2[good][:, None, None]
    mask2 = free[:, :, None] & free[:, None, :]
    return np.where(mask2, cov, 0.0)
