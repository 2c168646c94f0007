"""A compiled kernel of the batched fitter's Levenberg-Marquardt, for the logistic families.

:func:`cytosafe.curves.fit._levenberg_marquardt` advances all curves together as NumPy
arrays; its time goes into temporaries and memory traffic, not arithmetic (issue 16: about
120x above the arithmetic floor). This module runs the *same* iteration one curve at a time
in machine code (Numba), with every quantity of a curve in registers or a few small
buffers: the same variable projection (Golub & Pereyra 1973; Kaufman 1975), Gram-Schmidt
on the basis of the asymptotes, Nielsen's damping, Moré's scaling, projection into the
box, convergence tests and statuses, written line for line after the NumPy code (each
block below names the lines it mirrors). Only the order of a few floating-point sums
differs, so the two agree to rounding (``tests/test_fit_compiled.py``).

What makes it cheaper than a transcription (issue 16: 31 -> about 17 -> about 10.5 us
per 5PL curve of 16 points, all of ``fit_curves``, measured on a loaded 2-core machine):

* replicate standards are pooled: points that share a concentration share the model's
  value, so every shape evaluation, sum and Gram-Schmidt pass runs over the distinct
  concentrations (8 for 8 standards in duplicate); the normal equations, steps and
  convergence tests are those of the points (see :func:`_fit_one`);
* on curves whose least-squares optimum runs out along a limit of the 5PL family
  (``g -> 0`` or ``g -> inf``), accepted steps are extrapolated along the valley
  (:func:`_valley_jump`): 68 iterations to 30 on those curves, at the same RSS (to
  1e-9) or a lower one.

* no reference counting in the helpers (see ``_NO_REFCOUNT``), whose atomic increments
  were a third of the iteration's time; the derivatives and Jacobians in C-contiguous
  blocks, whose sums Numba vectorises; ``exp`` for ``expm1`` where nothing cancels;
* a curve with the same concentrations as the curve before (a plate's standards) reuses
  their logarithms, their grouping and the starter's grid of shape values.

The self-starter pools replicates the same way, and the covariance skips its SVD where
the QR factor is clearly of full rank, or clearly rank-deficient.

It covers the log-logistic families :class:`~cytosafe.curves.models.FivePL` (``5PL``),
:class:`~cytosafe.curves.models.MirrorFivePL` (``5PL-mirror``) and
:class:`~cytosafe.curves.models.FourPL` (``4PL``), which are all the calibration and
potency fits, and their self-starter. The module is imported only when
:func:`cytosafe.curves.fit.fit_curves` chooses it (see its ``kernel``), so that importing
CytoSafe never pays for Numba; any other model, or a machine without Numba, takes the NumPy
path.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "covariance",
    "finish",
    "levenberg_marquardt",
    "start",
    "weighted_rss",
    "y_weights",
]

#: Status codes of the kernel, in the order of :data:`cytosafe.curves.fit.STATUSES`' names.
STATUS_NAMES = np.array(["max_iter", "converged", "stalled", "failed", "insufficient_data"])
# The same five str objects for every curve (``STATUS_NAMES[code].astype(object)`` would
# make a new str per curve: 60 MB at a million curves).
_STATUS_OBJECTS = np.array([str(s) for s in STATUS_NAMES], dtype=object)

#: Pattern moves tried after an accepted step along a limit of the 5PL family (see
#: :func:`_valley_jump`; 0 turns them off), and the asymmetry ``|ln g|`` from which they
#: are tried: 3.5, just beyond :class:`~cytosafe.curves.fit.FitLimits`' default
#: ``|log10 g| <= 1.5`` (``|ln g| <= 3.45``): they fire only while the iteration is out
#: beyond that limit, nearly always on a fit that ends degenerate under the default
#: limits; a fit that comes back ends at the same optimum (``tests/test_fit_compiled.py``).
VALLEY_JUMPS = 6
VALLEY_FROM = 3.5
_MAX_ITER, _CONVERGED, _STALLED, _FAILED, _INSUFFICIENT = 0, 1, 2, 3, 4


# Helpers that allocate nothing are compiled without Numba's reference counting
# (``_nrt=False``, as Numba compiles its own hot string helpers, numba/cpython/unicode.py):
# every array passed to a compiled call is otherwise increfed and decrefed with an atomic
# instruction, and with a dozen scratch arrays per call that was a third of the
# iteration's time (perf at 10k curves: 12.8 -> 9.8 us per curve, bit for bit the same
# fits). Their callers own every array they see, so nothing can be freed under them; a
# helper that allocated would not compile this way. Where a Numba version lacks the
# option, they are compiled as usual.
_NO_REFCOUNT = {"_nrt": False} if hasattr(numba.core.cpu.CPUTargetOptions, "_nrt") else {}
_FAST = {"reassoc", "contract"}


def _jit(func):
    # cache=True: compiled once per machine (about 24 s of CPU for the three families, the
    # mirror's own layout included; 13 s before), then loaded from the package's
    # __pycache__ in about 0.1 s.
    return numba.njit(cache=True, nogil=True, error_model="numpy")(func)


def _jit_scratch(func):
    # A helper that allocates nothing (see _NO_REFCOUNT).
    return numba.njit(cache=True, nogil=True, error_model="numpy", **_NO_REFCOUNT)(func)


def _jit_fast(func):
    # The iteration's sums may be reassociated and multiply-adds fused (12 % less CPU,
    # measured at 10k curves): rounding-level changes only, which the iteration's
    # tolerances absorb. Never ``nnan``/``ninf``: the kernel tests finiteness.
    return numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)(func)


def _jit_fast_scratch(func):
    # _jit_fast for a helper that allocates nothing (see _NO_REFCOUNT).
    opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
    return numba.njit(**opts, **_NO_REFCOUNT)(func)


@_jit_fast_scratch
def _exp_expm1(v):
    """``(exp(v), expm1(v))``, each to about an ulp: ``expm1`` only where ``exp(v) - 1``
    would cancel. Where ``exp(v) <= 1/2`` (``v <= -ln 2``) the difference ``exp(v) - 1``
    loses nothing (its error is at most that of ``exp(v)``, relative to a result at least
    as large), and glibc's ``exp`` costs a third of its ``expm1``, the single dearest call
    of the iteration (perf at 10k curves: 13 % of it)."""
    if v < -0.6931471805599453:
        ex = math.exp(v)
        return ex, ex - 1.0
    em = math.expm1(v)
    return 1.0 + em, em


@_jit_fast_scratch
def _shape(fam, pos, lr, b, c, g):
    """The logistic shape at one point, ``s``, ``1 - s`` and ``d s / d(b, c, g)`` (natural
    scale), as ``FivePL._dshape`` / ``MirrorFivePL._dshape`` compute them; ``lr`` is
    ``log(x / c)`` (0 where ``x = 0``, ``pos`` False)."""
    z = b * lr if pos else -math.inf
    e = math.exp(-abs(z))
    if fam == 1:
        L = max(-z, 0.0) + math.log1p(e)
        frac = (e if z >= 0 else 1.0) / (1.0 + e)
        # (expm1 kept here: with _exp_expm1 the mirror family's agreement with the NumPy
        # path measured worse, 90 -> 81 % of tests/test_fit_compiled.py's curves within
        # 1e-10, while the 5PL's stayed at 97 %.)
        em = math.expm1(-g * L)
        if pos:
            t = 1.0 + em
            s = -em
            dsg = L * t
        else:
            t = 0.0
            s = 1.0
            dsg = 0.0
        gxf = g * t * frac
        return s, t, -gxf * lr, gxf * (b / c), dsg
    log_s = max(z, 0.0) + math.log1p(e)
    frac = (1.0 if z >= 0 else e) / (1.0 + e)
    s, em = _exp_expm1(-g * log_s)
    gxf = g * s * frac
    return s, -em, -gxf * lr, gxf * (b / c), -s * log_s


@_jit_fast_scratch
def _row_logs(x, xprev, lx):
    """``lx[i] = log(x[i])`` where ``x[i] > 0`` (else 0), unless ``x`` equals ``xprev``,
    the row the logs were last taken of (the curves of a plate share their standards);
    returns whether it did."""
    same = True
    for i in range(x.shape[0]):
        if x[i] != xprev[i]:
            same = False
    if not same:
        for i in range(x.shape[0]):
            xprev[i] = x[i]
            lx[i] = math.log(x[i]) if x[i] > 0 else 0.0
    return same


@_jit_fast_scratch
def _replicates(x, src):
    """``src[i]``: the first point ``j <= i`` with ``x[j] == x[i]`` (standards are run in
    duplicate or triplicate, so a curve of 16 points has 8 distinct concentrations)."""
    m = x.shape[0]
    for i in range(m):
        src[i] = i
        for j in range(i):
            if x[j] == x[i]:
                src[i] = j
                break


@_jit_fast_scratch
def _evaluate(fam, lx, pos_, ysw, sw, th, k, free, out_res, out_th, Q0, Q1, dphi, scale3, alpha):
    """Residuals at ``th`` (``_Projected.evaluate``): the asymptotes by projection.

    Fills ``out_res`` (m), ``out_th`` (k, with the solved asymptotes), ``Q0``/``Q1`` (the
    orthonormal basis), ``dphi`` (r, m: d s / d(b, c, g), natural scale), ``scale3`` (r)
    and ``alpha`` (2). Returns nothing; the caller computes the RSS.
    """
    m = lx.shape[0]
    a = th[0]
    b = math.exp(min(max(th[1], -700.0), 700.0))
    c = math.exp(min(max(th[2], -700.0), 700.0))
    d = th[3]
    g = 1.0
    if k == 5:
        g = math.exp(min(max(th[4], -700.0), 700.0))
    logc = math.log(c)
    r = k - 2
    fl0 = free[0]
    fl1 = free[3]
    # phi0 = s, phi1 = 1 - s (FivePL) or the mirror's 1 - t, t; weighted by sw. The loops
    # below are the modified Gram-Schmidt of _Projected.evaluate with its independent
    # passes fused (the same operations on every element, in the same order).
    n0 = 0.0
    for i in range(m):
        pos = pos_[i]
        lr = lx[i] - logc if pos else 0.0
        s, oms, ds0, ds1, ds2 = _shape(fam, pos, lr, b, c, g)
        w = sw[i]
        p0 = s * w  # phiw
        p1 = oms * w
        dphi[0, i] = ds0
        dphi[1, i] = ds1
        if r == 3:
            dphi[2, i] = ds2
        # ytil = ysw - sum over fixed linear parameters of phiw * alpha.
        v = ysw[i]
        if not fl0:
            v -= p0 * a
        if not fl1:
            v -= p1 * d
        out_res[i] = v
        # Fixed columns leave the basis.
        q0 = p0 if fl0 else 0.0
        Q0[i] = q0
        Q1[i] = p1 if fl1 else 0.0
        n0 += q0 * q0
    scale3[0] = b
    scale3[1] = c
    if r == 3:
        scale3[2] = g
    alpha[0] = a
    alpha[1] = d
    # Modified Gram-Schmidt on the free basis columns (dependent columns dropped).
    # Column 0.
    n0 = math.sqrt(n0)
    nv = n0
    ok0 = nv > 1e-10 * n0
    R00 = nv if ok0 else 0.0
    inv = 1.0 / nv if ok0 else 1.0
    c0 = 0.0
    for i in range(m):
        Q0[i] = Q0[i] * inv if ok0 else 0.0
        c0 += Q0[i] * out_res[i]
    # Column 1 (its norm and its component along column 0 beside the residual's update).
    n1 = 0.0
    R01 = 0.0
    for i in range(m):
        out_res[i] -= c0 * Q0[i]
        n1 += Q1[i] * Q1[i]
        R01 += Q0[i] * Q1[i]
    n1 = math.sqrt(n1)
    nv = 0.0
    for i in range(m):
        Q1[i] = Q1[i] - R01 * Q0[i]
        nv += Q1[i] * Q1[i]
    nv = math.sqrt(nv)
    ok1 = nv > 1e-10 * n1
    R11 = nv if ok1 else 0.0
    inv = 1.0 / nv if ok1 else 1.0
    c1 = 0.0
    for i in range(m):
        Q1[i] = Q1[i] * inv if ok1 else 0.0
        c1 += Q1[i] * out_res[i]
    for i in range(m):
        out_res[i] -= c1 * Q1[i]
    a1 = c1 / R11 if R11 > 0 else 0.0
    a0 = (c0 - R01 * a1) / R00 if R00 > 0 else 0.0
    if fl0:
        alpha[0] = a0
    if fl1:
        alpha[1] = a1
    for j in range(k):
        out_th[j] = th[j]
    out_th[0] = alpha[0]
    out_th[3] = alpha[1]


@_jit_fast_scratch
def _jacobian(sw, free, Q0, Q1, dphi, scale3, alpha, r, J):
    """Kaufman's projected Jacobian ``(r, m)`` (``_Projected.jacobian``)."""
    m = sw.shape[0]
    for j in range(r):
        f = scale3[j] * (1.0 if free[1 + j if j < 2 else 4] else 0.0)
        p0 = 0.0
        for i in range(m):
            # alpha0 dphi0 + alpha1 dphi1, dphi1 = -dphi0.
            v = (alpha[0] * dphi[j, i] + alpha[1] * -dphi[j, i]) * f * sw[i]
            J[j, i] = v
            p0 += v * Q0[i]
        p1 = 0.0
        for i in range(m):
            v = J[j, i] - p0 * Q0[i]
            J[j, i] = v
            p1 += v * Q1[i]
        for i in range(m):
            J[j, i] -= p1 * Q1[i]


@_jit_fast_scratch
def _normal(J, res, r, A, gvec):
    m = res.shape[0]
    for i in range(r):
        for j in range(i, r):
            s = 0.0
            for q in range(m):
                s += J[i, q] * J[j, q]
            A[i, j] = s
            A[j, i] = s
        s = 0.0
        for q in range(m):
            s += J[i, q] * res[q]
        gvec[i] = s


@_jit_fast_scratch
def _chol_solve(M, bvec, r, L, z, out):
    """``_cholesky_solve`` for one system; NaN where ``M`` is not SPD."""
    ok = True
    for j in range(r):
        s = M[j, j]
        for q in range(j):
            s -= L[j, q] * L[j, q]
        if not (s > 0):
            ok = False
        L[j, j] = math.sqrt(s if s > 0 else 1.0)
        for i in range(j + 1, r):
            t = M[i, j]
            for q in range(j):
                t -= L[i, q] * L[j, q]
            L[i, j] = t / L[j, j]
    for i in range(r):
        t = bvec[i]
        for q in range(i):
            t -= L[i, q] * z[q]
        z[i] = t / L[i, i]
    for i in range(r - 1, -1, -1):
        t = z[i]
        for q in range(i + 1, r):
            t -= L[q, i] * out[q]
        out[i] = t / L[i, i]
    if not ok:
        for i in range(r):
            out[i] = math.nan


@_jit_fast_scratch
def _valley_jump(
    fam, lx, pos_, ysw, sw, k, free, lo, hi, theta, delta, rss, res, r1, th_ev,
    th_tmp, Q0n, Q1n, dphin, scalen, alphan, Jn, A, gv, D, n_jump, rss_c,
):  # fmt: skip
    """Extrapolate an accepted step along a limit of the 5PL family; returns the new RSS.

    Far out along the limits g -> inf (with log c - log g / b constant: the Weibull-type
    curve) and g -> 0 (b, c constant, d -> inf: the logarithmic arm) the valley of the
    RSS is a straight line in (log b, log c, log g), and Levenberg-Marquardt walks it in
    steps of about half a log unit, each gaining a constant fraction of what is left:
    60 iterations and more to reach the tolerance. Trying the last step again, doubled
    each time (Hooke & Jeeves' pattern move, J ACM 1961;8:212-229), travels the same line
    in a few evaluations. A trial is kept only where it lowers the RSS, so the iteration
    stays monotone and its convergence tests are unchanged.
    """
    m = lx.shape[0]
    r = k - 2
    t = 1.0
    for _q in range(n_jump):
        for j in range(k):
            th_ev[j] = theta[j]
        for j in range(r):
            q = 1 + j if j < 2 else 4
            v = theta[q] + t * delta[j]
            if v < lo[q]:
                v = lo[q]
            if v > hi[q]:
                v = hi[q]
            th_ev[q] = v
        _evaluate(
            fam, lx, pos_, ysw, sw, th_ev, k, free, r1, th_tmp, Q0n, Q1n, dphin,
            scalen, alphan,
        )  # fmt: skip
        rss1 = rss_c
        for i in range(m):
            rss1 += r1[i] * r1[i]
        if not (math.isfinite(rss1) and rss1 < rss):
            break
        _jacobian(sw, free, Q0n, Q1n, dphin, scalen, alphan, r, Jn)
        for j in range(r):
            for i in range(m):
                if not math.isfinite(Jn[j, i]):
                    return rss
        _normal(Jn, r1, r, A, gv)
        for j in range(r):
            D[j] = max(D[j], A[j, j])
        for j in range(k):
            theta[j] = th_tmp[j]
        for i in range(m):
            res[i] = r1[i]
        rss = rss1
        t *= 2.0
    return rss


@_jit_fast_scratch
def _fit_one(
    fam, x, y, w, mk, th0, fixed, lo, hi, max_iter, ftol, xtol, gtol, n_jump, jump_min, th_out, V, P,
    Ix, S, B, SS, Uc, D4,
):  # fmt: skip
    """One curve (``_levenberg_marquardt`` for one row); returns ``(rss, status, n_iter)``.

    ``V`` ``(27, m)``, ``P`` and ``Ix`` ``(m,)``, ``S`` ``(20, 5)``, ``B`` ``(2, 5)``, ``SS``
    ``(3, 5, 5)`` and ``Uc`` ``(1,)`` are scratch buffers shared by the curves of a call
    (nothing is allocated per curve). ``V[26]`` holds the concentrations of the curve
    before (NaN before the first): a curve with the same ones (a plate's standards)
    reuses their grouping and logarithms, which depend on nothing else.
    """
    m = x.shape[0]
    k = th0.shape[0]
    r = k - 2
    # Replicates pooled (standards run in duplicate or triplicate): the points with the
    # same concentration share the model's value, so the residual vector splits exactly
    # into the pooled residuals sqrt(W_u) (ybar_u - f(x_u)) of the distinct
    # concentrations and a part the parameters cannot change, rss_c = sum w (y -
    # ybar_u)^2; the basis, the Jacobian and so the normal equations and the steps are
    # those of the pooled problem. Every sum over points then runs over 8, not 16.
    xu, Wu, WYu, grp, xprev = V[23], V[24], V[25], Ix, V[26]
    same = True
    for i in range(m):
        if x[i] != xprev[i]:
            same = False
    m_n = 0
    ynorm = 0.0
    if same:
        U = Uc[0]
        for u in range(U):
            Wu[u] = 0.0
            WYu[u] = 0.0
    else:
        U = 0
    for i in range(m):
        wi = w[i]
        ynorm += (math.sqrt(wi) * y[i]) ** 2
        if mk[i]:
            m_n += 1
        if same:
            u = grp[i]
        else:
            u = 0
            while u < U and xu[u] != x[i]:
                u += 1
            if u == U:
                xu[u] = x[i]
                Wu[u] = 0.0
                WYu[u] = 0.0
                U += 1
            grp[i] = u
            xprev[i] = x[i]
        Wu[u] += wi
        WYu[u] += wi * y[i]
    Uc[0] = U
    ynorm = math.sqrt(ynorm)
    rss_c = 0.0
    for i in range(m):
        u = grp[i]
        if w[i] != 0.0:
            e = y[i] - WYu[u] / Wu[u]
            rss_c += w[i] * e * e
    sw, ysw, lx, res, Q0, Q1 = V[0][:U], V[1][:U], V[2][:U], V[3][:U], V[4][:U], V[5][:U]
    r1, Q0n, Q1n = V[6][:U], V[7][:U], V[8][:U]
    # (3, m) blocks of which the first U columns are used (see _fit_all for their layout).
    dphi, J, dphin, Jn = D4[0], D4[1], D4[2], D4[3]
    pos_ = P[:U]
    for u in range(U):
        sw[u] = math.sqrt(Wu[u])
        ysw[u] = WYu[u] / sw[u] if Wu[u] != 0.0 else 0.0
        if not same:
            pos_[u] = xu[u] > 0
            lx[u] = math.log(xu[u]) if xu[u] > 0 else 0.0
    m = U
    theta, th_tmp, th1, th_ev = S[0], S[1], S[2], S[3]
    scale3, scalen, alpha, alphan = S[4], S[5], S[6], S[7]
    D, dscale, rhs, delta, zb, Ad, d0, gv = S[8], S[9], S[10], S[11], S[12], S[13], S[14], S[15]
    free, sfree, act = B[0], B[1], B[2]
    A, M, Lb = SS[0], SS[1], SS[2]
    n_free = 0
    for j in range(k):
        free[j] = not fixed[j]
        if free[j]:
            n_free += 1
    # Solve-parameter j (0..r-1) is model parameter 1, 2 (b, c) or 4 (g).
    sfree[0] = free[1]
    sfree[1] = free[2]
    if r == 3:
        sfree[2] = free[4]
    for j in range(k):
        v = th0[j]
        if v < lo[j]:
            v = lo[j]
        if v > hi[j]:
            v = hi[j]
        theta[j] = v
    for i in range(r):
        for j in range(r):
            A[i, j] = 0.0
            Lb[i, j] = 0.0
    _evaluate(fam, lx, pos_, ysw, sw, theta, k, free, res, th_tmp, Q0, Q1, dphi, scale3, alpha)
    for j in range(k):
        theta[j] = th_tmp[j]
    rss = rss_c
    for i in range(m):
        rss += res[i] * res[i]
    _jacobian(sw, free, Q0, Q1, dphi, scale3, alpha, r, J)
    finite = math.isfinite(rss)
    for j in range(r):
        for i in range(m):
            if not math.isfinite(J[j, i]):
                finite = False
    if not finite:
        for j in range(r):
            for i in range(m):
                J[j, i] = 0.0
    _normal(J, res, r, A, gv)
    status = _MAX_ITER
    if not finite:
        status = _FAILED
    active = finite and m_n >= n_free
    if finite and not active:
        status = _INSUFFICIENT
    for j in range(r):
        D[j] = max(A[j, j], 0.0)
    lam = 1e-3
    nu = 2.0
    n_iter = 0
    dg_prev = 0.0
    for it in range(1, max_iter + 1):
        if not active:
            break
        n_iter = it
        # Active set (see fit.py): a parameter on a bound whose descent direction points
        # out of the box sits this iteration out.
        for j in range(r):
            q = 1 + j if j < 2 else 4
            out = (theta[q] <= lo[q] and gv[j] < 0) or (theta[q] >= hi[q] and gv[j] > 0)
            act[j] = sfree[j] and not out
        # Scaled gradient test (MINPACK gtol).
        rn = math.sqrt(max(rss, 0.0))
        gnorm = 0.0
        for j in range(r):
            cn = math.sqrt(max(A[j, j], 0.0))
            cosine = (abs(gv[j]) if act[j] or not sfree[j] else 0.0) / (cn * rn)
            if not math.isfinite(cosine):
                cosine = 0.0
            if cosine > gnorm:
                gnorm = cosine
        if gnorm <= gtol or rss <= 1e-300 * max(ynorm * ynorm, 1.0):
            status = _CONVERGED
            active = False
            break
        dmax = D[0]
        for j in range(1, r):
            if D[j] > dmax:
                dmax = D[j]
        for j in range(r):
            dscale[j] = max(D[j], 1e-12 * max(dmax, 1e-300)) if act[j] else 1.0
        for i in range(r):
            for j in range(r):
                if act[i] and act[j]:
                    M[i, j] = A[i, j] + (lam * dscale[i] if i == j else 0.0)
                else:
                    M[i, j] = 1.0 if i == j else 0.0
            rhs[i] = gv[i] if act[i] else 0.0
        _chol_solve(M, rhs, r, Lb, zb, delta)
        for j in range(k):
            th1[j] = theta[j]
        for j in range(r):
            q = 1 + j if j < 2 else 4
            v = theta[q] + delta[j]
            # np.clip: NaN stays NaN.
            if v < lo[q]:
                v = lo[q]
            if v > hi[q]:
                v = hi[q]
            th1[q] = v
            delta[j] = th1[q] - theta[q]
        for i in range(r):
            s = 0.0
            for j in range(r):
                s += A[i, j] * delta[j]
            Ad[i] = s
        pred = 0.0
        for j in range(r):
            pred += delta[j] * (2.0 * gv[j] - Ad[j])
        for j in range(k):
            th_ev[j] = th1[j] if math.isfinite(th1[j]) else theta[j]
        _evaluate(
            fam, lx, pos_, ysw, sw, th_ev, k, free, r1, th1, Q0n, Q1n, dphin, scalen,
            alphan,
        )  # fmt: skip
        rss1 = rss_c
        for i in range(m):
            rss1 += r1[i] * r1[i]
        actual = rss - rss1
        dfin = True
        for j in range(r):
            if not math.isfinite(delta[j]):
                dfin = False
        better = math.isfinite(rss1) and actual > 0 and dfin
        if better:
            rho = actual / pred
            _jacobian(sw, free, Q0n, Q1n, dphin, scalen, alphan, r, Jn)
            okj = True
            for j in range(r):
                for i in range(m):
                    if not math.isfinite(Jn[j, i]):
                        okj = False
            if not okj:
                for j in range(r):
                    for i in range(m):
                        Jn[j, i] = 0.0
            _normal(Jn, r1, r, A, gv)
            for j in range(r):
                D[j] = max(D[j], A[j, j])
            for j in range(k):
                theta[j] = th1[j]
            for i in range(m):
                res[i] = r1[i]
            rss_old = rss
            rss = rss1
            rb = min(rho, 1.0)
            lam = lam * max(1.0 / 3.0, 1.0 - (2.0 * rb - 1.0) ** 3)
            lam = max(lam, 1e-16)
            nu = 2.0
            sn = 0.0
            st = 0.0
            for j in range(r):
                sn += D[j] * th1[(1 + j if j < 2 else 4)] ** 2
                st += D[j] * delta[j] ** 2
            scale_norm = math.sqrt(sn)
            step_norm = math.sqrt(st)
            f_conv = actual <= ftol * rss_old and pred <= ftol * rss_old and rho <= 2.0
            x_conv = step_norm <= xtol * (scale_norm + xtol)
            if f_conv or x_conv:
                status = _CONVERGED
                active = False
            elif (
                r == 3 and sfree[1] and sfree[2] and delta[2] * dg_prev > 0
                and abs(delta[2]) >= 0.25 and abs(theta[4]) >= jump_min
            ):  # fmt: skip
                # Two accepted steps in a row moved log g the same way: the curve runs
                # along a limit of the 5PL family (see _valley_jump).
                rss = _valley_jump(
                    fam, lx, pos_, ysw, sw, k, free, lo, hi, theta, delta, rss,
                    res, r1, th_ev, th_tmp, Q0n, Q1n, dphin, scalen, alphan, Jn, A, gv, D,
                    n_jump, rss_c,
                )  # fmt: skip
            dg_prev = delta[2] if r == 3 else 0.0
        else:
            # The nearly undamped Gauss-Newton step, cut to one log unit (see fit.py).
            for i in range(r):
                for j in range(r):
                    if act[i] and act[j]:
                        M[i, j] = A[i, j] + (1e-10 * dscale[i] if i == j else 0.0)
                    else:
                        M[i, j] = 1.0 if i == j else 0.0
            _chol_solve(M, rhs, r, Lb, zb, d0)
            cut = 0.0
            for j in range(r):
                v = abs(d0[j])
                if v > cut or math.isnan(v):
                    cut = v
            cut = max(cut, 1.0) if not math.isnan(cut) else math.nan
            for j in range(r):
                d0[j] = d0[j] / cut
            for i in range(r):
                s = 0.0
                for j in range(r):
                    s += A[i, j] * d0[j]
                Ad[i] = s
            pred0 = 0.0
            for j in range(r):
                pred0 += d0[j] * (2.0 * rhs[j] - Ad[j])
            if math.isfinite(pred0) and pred0 <= ftol * rss:
                status = _CONVERGED
                active = False
            lam *= nu
            nu *= 2.0
            if lam > 1e16:
                status = _STALLED
                active = False
    # A free parameter the fitted curve no longer depends on is not estimated.
    dead = True
    anyfree = False
    for j in range(r):
        if sfree[j]:
            anyfree = True
            if not (math.sqrt(max(A[j, j], 0.0)) <= 1e-9 * ynorm):
                dead = False
    if dead and anyfree and status == _CONVERGED:
        status = _STALLED
    for j in range(k):
        th_out[j] = theta[j]
    return rss, status, n_iter


@_jit_fast_scratch
def _fit_rows(
    fam, x, y, w, mk, th0, fixed, lo, hi, max_iter, ftol, xtol, gtol, n_jump, jump_min,
    theta, rss, status, n_iter, V, P, Ix, S, B, SS, Uc, D4,
):  # fmt: skip
    # The loop over the curves, in a helper without reference counting: the rows taken
    # per curve are views, which would otherwise cost an atomic incref/decref each.
    for i in range(y.shape[0]):
        r_, s_, it_ = _fit_one(
            fam, x[i], y[i], w[i], mk[i], th0[i], fixed[i], lo[i], hi[i],
            max_iter, ftol, xtol, gtol, n_jump, jump_min, theta[i], V, P, Ix, S, B, SS, Uc, D4,
        )  # fmt: skip
        rss[i] = r_
        status[i] = s_
        n_iter[i] = it_


@_jit_fast
def _fit_all(fam, x, y, w, mk, th0, fixed, lo, hi, max_iter, ftol, xtol, gtol, n_jump, jump_min):
    n, m = y.shape
    k = th0.shape[1]
    theta = np.empty((n, k))
    rss = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    n_iter = np.empty(n, dtype=np.int64)
    V = np.empty((27, m))
    V[26] = np.nan  # no curve before the first (see _fit_one)
    P = np.empty(m, dtype=np.bool_)
    Ix = np.empty(m, dtype=np.int64)
    S = np.empty((16, 5))
    B = np.empty((3, 5), dtype=np.bool_)
    SS = np.empty((3, 5, 5))
    Uc = np.zeros(1, dtype=np.int64)
    # The derivatives and Jacobians: C-contiguous (3, m) blocks, whose sums over points
    # Numba vectorises (the iteration 8.5 -> 7.8 us per 5PL curve at 10k). The mirror family
    # keeps the strided layout these had before (Numba compiles the kernel for it apart,
    # line for line the same): the changed order of its sums moved one of
    # tests/test_fit_compiled.py's curves to 2.3e-6 of a standard error from the NumPy
    # path, beyond the test's 1e-6, while the 5PL and 4PL stay within 1.7e-7.
    if fam == 1:
        _fit_rows(
            fam, x, y, w, mk, th0, fixed, lo, hi, max_iter, ftol, xtol, gtol, n_jump,
            jump_min, theta, rss, status, n_iter, V, P, Ix, S, B, SS, Uc,
            np.empty((4, 3, m + 1))[:, :, :m],
        )  # fmt: skip
    else:
        _fit_rows(
            fam, x, y, w, mk, th0, fixed, lo, hi, max_iter, ftol, xtol, gtol, n_jump,
            jump_min, theta, rss, status, n_iter, V, P, Ix, S, B, SS, Uc, np.empty((4, 3, m)),
        )  # fmt: skip
    return theta, rss, status, n_iter


@_jit_fast_scratch
def _grid_rss(ut, uw, uwy, U, b, tc, sw, sy, syy, et, rss, aa, dd, offset, SH, fresh):
    """``_projected_rss`` of one curve for slopes ``b`` x inflections ``tc`` (g = 1),
    written into ``rss``/``aa``/``dd`` from ``offset``, slope by slope.

    The curve comes as its ``U`` distinct log-concentrations ``ut`` with the sums of the
    weights ``uw`` and of the weighted responses ``uwy`` of their replicates: the sums the
    projection needs are linear in the weights, so each shape value is computed once per
    concentration, and ``exp(b (t - t0))`` once per slope (``et``), not once per cell.
    The shape values go to ``SH`` (one row per cell); ``fresh`` False takes them from
    there, as the caller's last call with the same ``ut``, ``b`` and ``tc`` left them
    (the sums then run over the same numbers in the same code).
    """
    T = tc.shape[0]
    t0 = 0.0
    for j in range(T):
        t0 += tc[j]
    t0 /= T
    cell = offset
    for bi in range(b.shape[0]):
        bb = b[bi]
        if fresh:
            for u in range(U):
                et[u] = math.exp(min(bb * (ut[u] - t0), 700.0))
        for j in range(T):
            if fresh:
                ec = math.exp(min(-bb * (tc[j] - t0), 700.0))
                for u in range(U):
                    SH[cell, u] = 1.0 / (1.0 + ec * et[u])
            ss = 0.0
            sss = 0.0
            ssy = 0.0
            for u in range(U):
                s = SH[cell, u]
                sws = s * uw[u]
                ss += sws
                sss += sws * s
                ssy += s * uwy[u]
            var_s = ss * ss / sw
            var_s = sss - var_s
            cov = ssy - ss * sy / sw
            slope = cov / var_s if var_s > 1e-12 * sw else 0.0
            rss[cell] = syy - sy * sy / sw - slope * cov
            d = (sy - slope * ss) / sw
            dd[cell] = d
            aa[cell] = d + slope
            cell += 1


_FB = np.array([0.6, 0.77, 1.0, 1.3, 1.67])
_FT = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
_B1 = np.array([0.5, 1.0, 2.0])
_FRAC = np.linspace(0.0, 1.0, 13)


@_jit_fast
def _start_all(x, y, mask, k, fb, ft, b1, frac):
    """:func:`cytosafe.curves.models._log_logistic_start` for every curve, ``(n, k)``
    (``g = 1`` appended for the 5-parameter families)."""
    n, m = y.shape
    out = np.empty((n, k))
    t = np.empty(m)
    yy = np.empty(m)
    w = np.empty(m)
    ut = np.empty(m)
    uw = np.empty(m)
    uwy = np.empty(m)
    et = np.empty(m)
    tc1 = np.empty(13)
    rss = np.empty(39)
    aa = np.empty(39)
    dd = np.empty(39)
    b2 = np.empty(5)
    t2 = np.empty(5)
    # log x of the curve before's concentrations (a plate's standards are shared).
    xprev = np.full(m, np.nan)
    lxc = np.empty(m)
    # The first grid's shape values depend on the distinct log-concentrations and the
    # range of the curve only, and the second grid's on those and the first grid's best
    # cell: both kept for the next curves with the same ones (a plate's standards), the
    # second for each of the 39 cells it can start from.
    SH1 = np.empty((39, m))
    SH2 = np.empty((39, 25, m))
    have2 = np.zeros(39, dtype=np.bool_)
    ut1 = np.full(m, np.nan)
    tc1_prev = np.full(13, np.nan)
    span_prev = np.nan
    U1 = -1
    big = np.finfo(np.float64).max
    for c in range(n):
        _row_logs(x[c], xprev, lxc)
        t_lo = big
        t_hi = -big
        amax = 0.0
        anyp = False
        for i in range(m):
            xi = x[c, i]
            yi = y[c, i]
            mi = mask[c, i] and math.isfinite(yi) and math.isfinite(xi) and xi >= 0
            if mi and xi > 0:
                ti = lxc[i]
                anyp = True
                t_lo = min(t_lo, ti)
                t_hi = max(t_hi, ti)
                t[i] = ti
            elif mi:
                t[i] = -math.inf
            else:
                t[i] = 0.0
            yy[i] = yi if mi else 0.0
            amax = max(amax, abs(yy[i]))
            w[i] = 1.0 if mi else 0.0  # marks m until the weights are set
        if not anyp:
            t_lo = 0.0
            t_hi = 1.0
        t_hi = max(t_hi, t_lo + 1e-6)
        floor = max(1e-3 * amax, 1e-300)
        wmax = 0.0
        for i in range(m):
            if w[i] > 0:
                w[i] = 1.0 / max(abs(yy[i]), floor) ** 2
                wmax = max(wmax, w[i])
        wmax = max(wmax, 1e-300)
        sw = 0.0
        sy = 0.0
        syy = 0.0
        for i in range(m):
            w[i] = w[i] / wmax
            sw += w[i]
            wy = w[i] * yy[i]
            sy += wy
            syy += wy * yy[i]
        # Replicates pooled: distinct log-concentrations with their weight sums.
        U = 0
        for i in range(m):
            if w[i] == 0.0:
                continue
            u = 0
            while u < U and ut[u] != t[i]:
                u += 1
            if u == U:
                ut[u] = t[i]
                uw[u] = 0.0
                uwy[u] = 0.0
                U += 1
            uw[u] += w[i]
            uwy[u] += w[i] * yy[i]
        span = t_hi - t_lo
        for j in range(13):
            tc1[j] = (t_lo - 1.0) + (span + 3.5) * frac[j]
        fresh = U != U1
        for u in range(U):
            if ut[u] != ut1[u]:
                fresh = True
        for j in range(13):
            if tc1[j] != tc1_prev[j]:
                fresh = True
        if span != span_prev:
            fresh = True
        if fresh:
            U1 = U
            for u in range(U):
                ut1[u] = ut[u]
            for j in range(13):
                tc1_prev[j] = tc1[j]
            span_prev = span
            for j in range(39):
                have2[j] = False
        _grid_rss(ut, uw, uwy, U, b1, tc1, sw, sy, syy, et, rss, aa, dd, 0, SH1, fresh)
        best = 0
        bestv = math.inf
        for j in range(39):
            v = rss[j] if math.isfinite(rss[j]) else math.inf
            if v < bestv:
                bestv = v
                best = j
        first_best = best
        b0 = b1[best // 13]
        t0 = tc1[best % 13]
        step = (span + 3.5) / 12.0
        for j in range(5):
            b2[j] = b0 * fb[j]
            t2[j] = t0 + step * ft[j]
        _grid_rss(
            ut, uw, uwy, U, b2, t2, sw, sy, syy, et, rss, aa, dd, 0, SH2[first_best],
            not have2[first_best],
        )  # fmt: skip
        have2[first_best] = True
        best = 0
        bestv = math.inf
        for j in range(25):
            v = rss[j] if math.isfinite(rss[j]) else math.inf
            if v < bestv:
                bestv = v
                best = j
        a = aa[best]
        d = dd[best]
        if not (math.isfinite(a) and math.isfinite(d)):
            swy = 0.0
            for i in range(m):
                swy += w[i] * yy[i]
            a = swy / max(sw, 1e-300)
            d = a
        out[c, 0] = a
        out[c, 1] = b2[best // 5]
        out[c, 2] = math.exp(t2[best % 5])
        out[c, 3] = d
        if k == 5:
            out[c, 4] = 1.0
    return out


@_jit_scratch
def _jacobi_svd(A, V, sv, k):
    """One-sided Jacobi SVD (Hestenes 1958; Demmel & Veselic, SIAM J Matrix Anal Appl
    1992;13:1204-1245) of ``A`` ``(m, k)``, in place: on return the columns of ``A`` are
    ``U S``, ``V`` ``(k, k)`` the right singular vectors and ``sv`` the singular values.
    Accurate to high relative precision in the small singular values, which decide the
    rank (see :func:`cytosafe.curves.fit._covariance`)."""
    m = A.shape[0]
    for i in range(k):
        for j in range(k):
            V[i, j] = 1.0 if i == j else 0.0
    for _sweep in range(60):
        rotated = False
        for p in range(k - 1):
            for q in range(p + 1, k):
                alpha = 0.0
                beta = 0.0
                gamma = 0.0
                for i in range(m):
                    alpha += A[i, p] * A[i, p]
                    beta += A[i, q] * A[i, q]
                    gamma += A[i, p] * A[i, q]
                if gamma == 0.0 or abs(gamma) <= 1e-15 * math.sqrt(alpha * beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gamma)
                t = math.copysign(1.0, zeta) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                c = 1.0 / math.sqrt(1.0 + t * t)
                s = c * t
                for i in range(m):
                    ap = A[i, p]
                    aq = A[i, q]
                    A[i, p] = c * ap - s * aq
                    A[i, q] = s * ap + c * aq
                for i in range(k):
                    vp = V[i, p]
                    vq = V[i, q]
                    V[i, p] = c * vp - s * vq
                    V[i, q] = s * vp + c * vq
        if not rotated:
            break
    for j in range(k):
        t = 0.0
        for i in range(m):
            t += A[i, j] * A[i, j]
        sv[j] = math.sqrt(t)


@_jit_scratch
def _householder_r(A, k, R):
    """The ``k x k`` triangle ``R`` of ``A = QR`` (``A`` ``(m, k)``, overwritten) by
    Householder reflections (Golub & Van Loan, Matrix Computations, 4th ed., Alg. 5.2.1);
    ``R``'s columns have the norms, inner products and singular values of ``A``'s."""
    m = A.shape[0]
    for j in range(min(k, m)):
        nrm = 0.0
        for i in range(j, m):
            nrm += A[i, j] * A[i, j]
        nrm = math.sqrt(nrm)
        if nrm == 0.0:
            continue
        alpha = -nrm if A[j, j] >= 0 else nrm
        v0 = A[j, j] - alpha
        # v = (v0, A[j+1:, j]); H = I - 2 v v^T / (v^T v), v^T v = -2 alpha v0.
        vtv = -2.0 * alpha * v0
        A[j, j] = alpha
        for q in range(j + 1, k):
            t = v0 * A[j, q]
            for i in range(j + 1, m):
                t += A[i, j] * A[i, q]
            f = 2.0 * t / vtv
            A[j, q] -= f * v0
            for i in range(j + 1, m):
                A[i, q] -= f * A[i, j]
    for i in range(k):
        for j in range(k):
            R[i, j] = A[i, j] if (j >= i and i < m) else 0.0


@_jit_scratch
def _triangular_inverse(R, k, Ri):
    """``Ri = R^-1`` for the upper triangle ``R`` (back substitution, column by column);
    False where a diagonal element is zero or the inverse is not finite."""
    for j in range(k):
        if R[j, j] == 0.0:
            return False
    for i in range(k):
        for j in range(k):
            Ri[i, j] = 0.0
    for j in range(k):
        Ri[j, j] = 1.0 / R[j, j]
        for i in range(j - 1, -1, -1):
            t = 0.0
            for q in range(i + 1, j + 1):
                t += R[i, q] * Ri[q, j]
            Ri[i, j] = -t / R[i, i]
    for i in range(k):
        for j in range(i, k):
            if not math.isfinite(Ri[i, j]):
                return False
    return True


@_jit_scratch
def _cov_one(
    fam, x, lx, w, m, p, fixed, s2, shp, src, reuse, cov, Js, V, sv, dsafe, inv, xu, Wu, lxu,
    iu, Rk, Ri,
):  # fmt: skip
    """``_covariance(..., "expected")`` of one curve into ``cov`` ``(k, k)``, all zeros on
    entry: ``σ² D⁻¹ V S⁻² Vᵀ D⁻¹`` from the column-equilibrated weighted Jacobian, rank by
    ``s_min > 1e-10 s_max``. ``lx``: the logs of ``x`` (see :func:`_row_logs`). ``reuse``:
    ``shp[:, src[i]]`` already hold :func:`_shape`'s five values at ``p`` for point ``i``
    (as :func:`_final_rows` leaves them), which are then not computed again."""
    mm = x.shape[0]
    k = p.shape[0]
    a = p[0]
    b = p[1]
    cc = p[2]
    d = p[3]
    g = p[4] if k == 5 else 1.0
    if not math.isfinite(a):
        a = 0.0
    if not math.isfinite(b):
        b = 0.0
    if not math.isfinite(cc):
        cc = 0.0
    if not math.isfinite(d):
        d = 0.0
    if not math.isfinite(g):
        g = 0.0
    logc = math.log(cc)
    amd = a - d
    good = math.isfinite(s2)
    n_free = 0
    for j in range(k):
        if not fixed[j]:
            n_free += 1
    # The points used, pooled by concentration: rows sqrt(W_u) J(x_u) have the same
    # J^T W J as the points' rows, so the same singular values and vectors.
    U = 0
    for i in range(mm):
        if not m[i]:
            continue
        u = 0
        while u < U and xu[u] != x[i]:
            u += 1
        if u == U:
            xu[u] = x[i]
            lxu[u] = lx[i]
            iu[u] = i
            Wu[u] = 0.0
            U += 1
        Wu[u] += w[i]
    for u in range(U):
        if reuse:
            q = src[iu[u]]
            s = shp[0, q]
            oms = shp[1, q]
            ds0 = shp[2, q]
            ds1 = shp[3, q]
            ds2 = shp[4, q]
        else:
            xi = xu[u]
            pos = xi > 0
            lr = lxu[u] - logc if pos else 0.0
            s, oms, ds0, ds1, ds2 = _shape(fam, pos, lr, b, cc, g)
        sw = math.sqrt(Wu[u])
        for j in range(k):
            if j == 0:
                v = s
            elif j == 1:
                v = amd * ds0
            elif j == 2:
                v = amd * ds1
            elif j == 3:
                v = oms
            else:
                v = amd * ds2
            v = v * (0.0 if fixed[j] else 1.0)
            v = sw * v
            if not math.isfinite(v):
                good = False
            Js[u, j] = v
    if not good or n_free == 0:
        for i in range(k):
            for j in range(k):
                cov[i, j] = math.nan if not (fixed[i] or fixed[j]) else 0.0
        return
    for j in range(k):
        t = 0.0
        for i in range(U):
            t += Js[i, j] * Js[i, j]
        t = math.sqrt(t)
        dsafe[j] = t if t > 0 else 1.0
        for i in range(U):
            Js[i, j] = Js[i, j] / dsafe[j]
    # Householder QR first (Demmel & Veselic 1992, section 5): the Jacobi sweeps then
    # rotate the k x k triangle instead of m x k columns, with the same singular
    # values and right singular vectors.
    _householder_r(Js[:U], k, Rk)
    if n_free == k and _triangular_inverse(Rk, k, Ri):
        # Clearly of full rank: (J_s^T J_s)^-1 = R^-1 R^-T, no SVD needed. The test
        # bounds s_min / s_max from below by 1 / (|R|_F |R^-1|_F) >= ratio / k, so
        # > 1e-9 proves s_min > 1e-9 s_max, ten times the rank threshold below.
        fr = 0.0
        fi = 0.0
        for i in range(k):
            for j in range(i, k):
                fr += Rk[i, j] * Rk[i, j]
                fi += Ri[i, j] * Ri[i, j]
        if 1.0 / math.sqrt(fr * fi) > 1e-9:
            for i in range(k):
                for j in range(i, k):
                    t = 0.0
                    for q in range(j, k):
                        t += Ri[i, q] * Ri[j, q]
                    v = t / (dsafe[i] * dsafe[j]) * s2
                    cov[i, j] = v
                    cov[j, i] = v
            return
        # Clearly rank-deficient: s_max >= the largest column norm of R, and s_min =
        # 1 / |R^-1|_2 <= 1 / the largest column norm of R^-1, so a product of the
        # two norms above 1e11 proves s_min < 1e-11 s_max, ten times under the rank
        # threshold below: the SVD would keep fewer than k values, and every entry is
        # NaN. (Most fits along a limit of the 5PL: 18 % of bench_fit's curves, whose
        # Jacobi sweeps were a quarter of the covariance's time.)
        cr = 0.0
        ci = 0.0
        for j in range(k):
            tr = 0.0
            ti = 0.0
            for i in range(j + 1):
                tr += Rk[i, j] * Rk[i, j]
                ti += Ri[i, j] * Ri[i, j]
            cr = max(cr, tr)
            ci = max(ci, ti)
        if math.sqrt(cr * ci) > 1e11:
            for i in range(k):
                for j in range(k):
                    cov[i, j] = math.nan
            return
    _jacobi_svd(Rk, V, sv, k)
    top = 0.0
    for j in range(k):
        top = max(top, sv[j])
    n_keep = 0
    for j in range(k):
        if sv[j] > 1e-10 * top:
            n_keep += 1
            inv[j] = 1.0 / sv[j] ** 2
        else:
            inv[j] = 0.0
    full = n_keep == n_free
    for i in range(k):
        for j in range(k):
            if fixed[i] or fixed[j]:
                cov[i, j] = 0.0
            elif not full:
                cov[i, j] = math.nan
            else:
                t = 0.0
                for q in range(k):
                    t += V[i, q] * inv[q] * V[j, q]
                cov[i, j] = t / (dsafe[i] * dsafe[j]) * s2


@_jit_scratch
def _final_rows(
    fam, x, y, w, m, params, fixed, with_rss, rss_lm, df, with_cov, sigma2_in, rss_out,
    sigma2, cov, src, shp, xprev, lxc, Js, V, sv, dsafe, inv, xu, Wu, lxu, iu, Rk, Ri,
):  # fmt: skip
    # The loop over the curves, in a helper without reference counting (the rows taken
    # per curve are views; see _fit_rows). Without ``with_rss`` only the covariance is
    # computed, with ``sigma2_in``.
    n, mm = x.shape
    k = params.shape[1]
    for c in range(n):
        if not _row_logs(x[c], xprev, lxc):
            _replicates(x[c], src)
        a = params[c, 0]
        b = params[c, 1]
        cc = params[c, 2]
        d = params[c, 3]
        g = params[c, 4] if k == 5 else 1.0
        if not with_rss:
            s2 = sigma2_in[c]
            reuse = False
        else:
            # The weighted RSS at ``params``, from the model's own formula
            # ``f = a s + d (1 - s)`` (as ``FivePL.f``), ``inf``/NaN passed through; the
            # shape values and their derivatives are kept for the covariance.
            logc = math.log(cc) if cc > 0 else (-math.inf if cc == 0 else math.nan)
            t = 0.0
            for i in range(mm):
                j0 = src[i]
                if j0 == i:
                    pos = x[c, i] > 0
                    lr = lxc[i] - logc if pos else 0.0
                    s, oms, d0, d1, d2 = _shape(fam, pos, lr, b, cc, g)
                    shp[0, i] = s
                    shp[1, i] = oms
                    shp[2, i] = d0
                    shp[3, i] = d1
                    shp[4, i] = d2
                if m[c, i]:
                    ri = math.sqrt(w[c, i]) * (y[c, i] - (a * shp[0, j0] + d * shp[1, j0]))
                    t += ri * ri
            # fit.py's rules: the LM's RSS where it is not finite, sigma^2 = RSS / df.
            rep = t if math.isfinite(rss_lm[c]) else rss_lm[c]
            rss_out[c] = rep
            s2 = rep / max(df[c], 1) if df[c] > 0 else math.nan
            sigma2[c] = s2
            # The covariance takes _shape at the same parameters, which the loop above
            # computed with the same arguments where they are finite (with c > 0): the
            # covariance replaces a non-finite one by 0 first.
            reuse = (
                math.isfinite(a) and math.isfinite(b) and math.isfinite(cc) and cc > 0
                and math.isfinite(d) and math.isfinite(g)
            )  # fmt: skip
        if with_cov:
            _cov_one(
                fam, x[c], lxc, w[c], m[c], params[c], fixed[c], s2, shp, src, reuse, cov[c],
                Js, V, sv, dsafe, inv, xu, Wu, lxu, iu, Rk, Ri,
            )  # fmt: skip


@_jit
def _final_all(fam, x, y, w, m, params, fixed, with_rss, rss_lm, df, with_cov, sigma2_in):
    n, mm = x.shape
    k = params.shape[1]
    rss_out = np.empty(n)
    sigma2 = np.empty(n)
    cov = np.zeros((n if with_cov else 0, k, k))
    xprev = np.full(mm, np.nan)
    _final_rows(
        fam, x, y, w, m, params, fixed, with_rss, rss_lm, df, with_cov, sigma2_in, rss_out,
        sigma2, cov, np.empty(mm, dtype=np.int64), np.empty((5, mm)), xprev, np.empty(mm),
        np.empty((mm, k)), np.empty((k, k)), np.empty(k), np.empty(k), np.empty(k),
        np.empty(mm), np.empty(mm), np.empty(mm), np.empty(mm, dtype=np.int64),
        np.empty((k, k)), np.empty((k, k)),
    )  # fmt: skip
    return rss_out, sigma2, cov


@_jit
def _y_weights_all(y, m, power):
    """:func:`cytosafe.curves.fit.curve_weights` for ``"1/y"`` (``power`` 1) and ``"1/y2"``
    (2), bit for bit: the same operations in the same order, the row sums in NumPy's
    pairwise order (:func:`_numpy_row_sum`). Rows of at most 128 points."""
    n, mm = y.shape
    out = np.empty((n, mm))
    for c in range(n):
        floor = math.inf
        for i in range(mm):
            if m[c, i] and math.isfinite(y[c, i]) and y[c, i] > 0:
                floor = min(floor, y[c, i])
        if not math.isfinite(floor):
            floor = 1.0
        cnt = 0
        for i in range(mm):
            mi = m[c, i] and math.isfinite(y[c, i])
            yy = y[c, i] if (mi and y[c, i] > 0) else floor
            if mi:
                cnt += 1
                out[c, i] = 1.0 / yy if power == 1 else 1.0 / (yy * yy)
            else:
                out[c, i] = 0.0
        mean = _numpy_row_sum(out[c]) / max(cnt, 1)
        div = mean if mean > 0 else 1.0
        for i in range(mm):
            out[c, i] = out[c, i] / div
    return out


@_jit
def _numpy_row_sum(a):
    """``a.sum()`` as NumPy's pairwise summation adds a row of at most 128 (its block):
    sequentially under 8 values, else in 8 running sums combined as a tree, then the
    remainder in order (numpy/_core/src/umath/loops_utils.h.src, pairwise_sum)."""
    n = a.shape[0]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return 0.0 + res
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    i = 8
    while i < n - (n % 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return 0.0 + res


def finish(fam, x, y, w, m, params, is_fixed, rss, df, with_cov):
    """What :func:`cytosafe.curves.fit._fit_block` reports at the final ``params``, in one
    pass: ``(rss, sigma2, cov)``, the weighted RSS recomputed at ``params`` (the LM's
    ``rss`` where that is not finite), ``sigma2 = rss / df`` (NaN where ``df <= 0``) and,
    with ``with_cov``, the expected-information covariance (see :func:`_cov_one`; else an
    empty array). The covariance takes the shape values and derivatives the RSS computed
    at the same parameters instead of computing them again (bit for bit the same)."""
    c = np.ascontiguousarray
    return _final_all(
        fam, c(x, dtype=float), c(y, dtype=float), c(w, dtype=float), c(m, dtype=np.bool_),
        c(params, dtype=float), c(is_fixed, dtype=np.bool_), True, c(rss, dtype=float),
        c(df, dtype=np.int64), bool(with_cov), np.empty(0),
    )  # fmt: skip


def weighted_rss(fam, x, y, w, m, params):
    """The weighted residual sum of squares of every curve at ``params``."""
    n = np.shape(params)[0]
    return finish(fam, x, y, w, m, params, np.zeros(np.shape(params), dtype=bool),
                  np.zeros(n), np.zeros(n, dtype=np.int64), False)[0]  # fmt: skip


def covariance(fam, x, w, m, params, is_fixed, sigma2):
    """The expected-information covariance of every curve (see :func:`_cov_one`)."""
    c = np.ascontiguousarray
    x = c(x, dtype=float)
    n = x.shape[0]
    return _final_all(
        fam, x, x, c(w, dtype=float), c(m, dtype=np.bool_), c(params, dtype=float),
        c(is_fixed, dtype=np.bool_), False, np.zeros(n), np.zeros(n, dtype=np.int64), True,
        c(sigma2, dtype=float),
    )[2]  # fmt: skip


def y_weights(y, m, power):
    """``curve_weights(x, y, m, "1/y" or "1/y2")`` compiled (``power`` 1 or 2), the same
    numbers; None where a curve has more than 128 points (NumPy then computes them)."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 2 or y.shape[1] > 128:
        return None
    return _y_weights_all(
        np.ascontiguousarray(y), np.ascontiguousarray(m, dtype=np.bool_), int(power)
    )


def start(x, y, mask, k):
    """The self-starter of the log-logistic families, compiled (see :func:`_start_all`)."""
    c = np.ascontiguousarray
    x = np.broadcast_to(x, y.shape)
    return _start_all(
        c(x, dtype=float), c(y, dtype=float), c(mask, dtype=np.bool_), int(k), _FB, _FT, _B1,
        _FRAC,
    )  # fmt: skip


def levenberg_marquardt(
    fam,
    x,
    y,
    w,
    m,
    theta0,
    is_fixed,
    lo,
    hi,
    max_iter,
    ftol,
    xtol,
    gtol,
    n_jump=None,
    jump_min=None,
):
    """:func:`cytosafe.curves.fit._levenberg_marquardt` for family ``fam`` (0: 5PL, 1:
    5PL-mirror, 2: 4PL).

    ``theta0`` is already on the internal scale and clipped; returns ``theta, rss,
    status, n_iter`` as the NumPy function does (status as names).
    """
    c = np.ascontiguousarray
    n_jump = VALLEY_JUMPS if n_jump is None else n_jump
    jump_min = VALLEY_FROM if jump_min is None else jump_min
    theta, rss, code, n_iter = _fit_all(
        fam, c(x, dtype=float), c(y, dtype=float), c(w, dtype=float), c(m, dtype=np.bool_),
        c(theta0, dtype=float), c(is_fixed, dtype=np.bool_), c(lo, dtype=float),
        c(hi, dtype=float), int(max_iter), float(ftol), float(xtol), float(gtol), int(n_jump),
        float(jump_min),
    )  # fmt: skip
    return theta, rss, _STATUS_OBJECTS[code], n_iter.astype(int)
