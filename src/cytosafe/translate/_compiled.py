"""A compiled kernel of the population simulation (issue 16: simulation >= 100x solve_ivp).

:func:`cytosafe.translate.model._integrate_numpy` advances all subjects together as NumPy
arrays, one time step after the other, about a hundred array operations per step. This
module runs the *same* scheme in machine code (Numba): the subjects go through in blocks
of :data:`BLOCK`, whose state stays in the first-level cache, and each operation of the
step is one loop over the block that the compiler runs in SIMD lanes. The exact
pharmacokinetic step (:func:`cytosafe.translate.model._pk_propagators`), the stimulation
at the start, middle and end of each step, the classical Runge-Kutta step of the pool and
IL-6, the graded first step after a dose, the doses, outputs and running peaks are written
after the NumPy path, with the same operations in the same order, so the two agree to
rounding (bit for bit but for ``pow``; ``tests/test_translate_compiled.py``). The NumPy path
stays the reference, and runs where Numba is absent or ``CYTOSAFE_COMPILED=0``.

Imported only when :func:`~cytosafe.translate.model.simulate` chooses it, so that importing
CytoSafe never pays for Numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["integrate"]

#: Stimulation forms, as :func:`cytosafe.translate.model._stimulus_arrays` codes them (the
#: same numbers as ``model.EMAX1`` ..; a test checks).
EMAX1, EMAX, TRIMER1, TRIMER = 0, 1, 2, 3


def _jit(func):
    # cache=True: compiled once per machine (a few seconds), then loaded from __pycache__.
    return numba.njit(cache=True, nogil=True, error_model="numpy")(func)


#: Subjects advanced together: their state fits in the first-level cache, and the loops
#: over them are independent, so the compiler runs them in SIMD lanes.
BLOCK = 128


@_jit
def _stim_block(kind, a1, v1, emax, c50, hill, kt, k3, tsum, out):
    """S(C) of :func:`cytosafe.translate.model._stimulus` for a block of subjects."""
    nb = a1.shape[0]
    if kind == EMAX1:
        for i in range(nb):
            c = max(a1[i] / v1[i], 0.0)
            out[i] = emax[i] * c / (c + c50[i])
    elif kind == EMAX:
        for i in range(nb):
            ch = max(a1[i] / v1[i], 0.0) ** hill[i]
            out[i] = emax[i] * ch / (ch + c50[i])
    elif kind == TRIMER1:
        for i in range(nb):
            c = max(a1[i] / v1[i], 0.0)
            tau = c * tsum[i] / ((kt[i] + c) * (k3[i] + c))
            out[i] = emax[i] * tau / (tau + c50[i])
    else:
        for i in range(nb):
            c = max(a1[i] / v1[i], 0.0)
            tau = (c * tsum[i] / ((kt[i] + c) * (k3[i] + c))) ** hill[i]
            out[i] = emax[i] * tau / (tau + c50[i])


@_jit
def integrate(
    grid,
    steps,
    step_h,
    prop_index,
    dose_at,
    rate_at,
    out_a,
    out_b,
    half,
    full,
    T,
    E,
    infusion,
    inf_rates,
    sc_amount,
    bolus_amount,
    iv_amount,
    kind,
    stim,
    v1,
    k_rec,
    k_dep,
    k_el,
    baseline,
    k_prod,
    priming,
    conc,
    il6,
    pool_out,
    peaks,
    peak_t,
    peak_c,
    final,
    dosed,
):
    """Every subject through every interval of ``grid``; fills the output arrays.

    The arguments are those :func:`cytosafe.translate.model._integrate_numpy` takes
    (one column per subject), with the outputs preallocated. Subjects go through in
    blocks of :data:`BLOCK`; within a block the loops run over subjects, as the NumPy
    path's array operations do, but fused.
    """
    n = v1.shape[0]
    n_dose = T.shape[0]
    n_int = steps.shape[0]
    keep_pool = pool_out.shape[0] > 0
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        nb = stop - start
        # Parameters of the block, contiguous.
        emax = stim[0, start:stop].copy()
        c50 = stim[1, start:stop].copy()
        hill = stim[2, start:stop].copy()
        kt = stim[3, start:stop].copy()
        k3 = stim[4, start:stop].copy()
        tsum = stim[5, start:stop].copy()
        vb = v1[start:stop].copy()
        krec = k_rec[start:stop].copy()
        kdep = k_dep[start:stop].copy()
        kel = k_el[start:stop].copy()
        y0 = baseline[start:stop].copy()
        kprod = k_prod[start:stop].copy()
        # State of the block.
        ad = np.zeros(nb)
        a1 = np.zeros(nb)
        a2 = np.zeros(nb)
        ae = np.zeros(nb)
        pool = np.ones(nb)
        y = y0.copy()
        given = np.zeros(nb)
        cur_j = np.full(nb, -1, dtype=np.int64)
        cur_y = np.full(nb, -np.inf)
        cur_t = np.zeros(nb)
        cur_a = np.zeros(nb)  # the largest central amount: C = A / V1 rounds monotonically
        rate = np.zeros(nb)
        a1m = np.empty(nb)
        s0 = np.empty(nb)
        sm = np.empty(nb)
        s1 = np.empty(nb)
        cf = np.empty((17, nb))  # the interval's propagators (rows below), x rate
        m0, m1, m2, g1h = cf[0], cf[1], cf[2], cf[3]
        f0, f1, f2, f3, f4, f5 = cf[4], cf[5], cf[6], cf[7], cf[8], cf[9]
        f6, f7, f8, f9 = cf[10], cf[11], cf[12], cf[13]
        g1, g2, g3 = cf[14], cf[15], cf[16]
        for g in range(n_int):
            a = grid[g]
            b = grid[g + 1]
            r_a = out_a[g]
            for ii in range(nb):
                i = start + ii
                if dose_at[g]:
                    for q in range(n_dose):
                        if abs(T[q, i] - a) < 1e-9:
                            ad[ii] += sc_amount[q, i]
                            a1[ii] += bolus_amount[q, i]
                            given[ii] += sc_amount[q, i] + iv_amount[q, i]
                    j = -1
                    for q in range(n_dose):
                        if T[q, i] <= a + 1e-9:
                            j += 1
                    if j != cur_j[ii]:
                        if cur_j[ii] >= 0:
                            peaks[cur_j[ii], i] = cur_y[ii]
                            peak_t[cur_j[ii], i] = cur_t[ii]
                            peak_c[cur_j[ii], i] = cur_a[ii] / vb[ii]
                        cur_j[ii] = j
                        cur_y[ii] = -np.inf
                        cur_a[ii] = 0.0
                if r_a >= 0:
                    conc[r_a, i] = a1[ii] / vb[ii]
                    il6[r_a, i] = y[ii]
                    if keep_pool:
                        pool_out[r_a, i] = pool[ii]
                if y[ii] > cur_y[ii]:
                    cur_y[ii] = y[ii]
                    cur_t[ii] = a
                cur_a[ii] = max(cur_a[ii], a1[ii])
                if rate_at[g]:
                    rt = 0.0
                    for q in range(n_dose):
                        if infusion[q, i] and T[q, i] <= a + 1e-9 and E[q, i] >= b - 1e-9:
                            rt += inf_rates[q, i]
                    rate[ii] = rt
            p = prop_index[g]
            levels = half.shape[1] - 1
            n_sub = steps[g] + (levels if dose_at[g] else 0)
            level = -1
            h = 0.0
            hh = 0.0
            h6 = 0.0
            _stim_block(kind, a1, vb, emax, c50, hill, kt, k3, tsum, s0)
            t = a
            for sub in range(n_sub):
                lev = min(levels, max(levels + 1 - sub, 0)) if dose_at[g] else 0
                if lev != level:
                    level = lev
                    for k in range(4):
                        for ii in range(nb):
                            cf[k, ii] = half[p, lev, k, start + ii]
                    for k in range(13):
                        for ii in range(nb):
                            cf[4 + k, ii] = full[p, lev, k, start + ii]
                    # The input's share of each step is constant over the interval.
                    for ii in range(nb):
                        cf[3, ii] *= rate[ii]
                        cf[14, ii] *= rate[ii]
                        cf[15, ii] *= rate[ii]
                        cf[16, ii] *= rate[ii]
                    h = step_h[g] * 0.5**lev
                    hh = 0.5 * h
                    h6 = h / 6.0
                for ii in range(nb):
                    a1m[ii] = m0[ii] * ad[ii] + m1[ii] * a1[ii] + m2[ii] * a2[ii] + g1h[ii]
                    n1 = f1[ii] * ad[ii] + f4[ii] * a1[ii] + f7[ii] * a2[ii] + g1[ii]
                    n2 = f2[ii] * ad[ii] + f5[ii] * a1[ii] + f8[ii] * a2[ii] + g2[ii]
                    ae[ii] = ae[ii] + (f3[ii] * ad[ii] + f6[ii] * a1[ii] + f9[ii] * a2[ii] + g3[ii])
                    ad[ii] = f0[ii] * ad[ii]
                    a1[ii] = n1
                    a2[ii] = n2
                _stim_block(kind, a1m, vb, emax, c50, hill, kt, k3, tsum, sm)
                _stim_block(kind, a1, vb, emax, c50, hill, kt, k3, tsum, s1)
                t += h
                if priming:
                    for ii in range(nb):
                        P, Y = pool[ii], y[ii]
                        k1p = krec[ii] * (1.0 - P) - kdep[ii] * s0[ii] * P
                        k1y = kel[ii] * (y0[ii] - Y) + kprod[ii] * s0[ii] * P
                        p2 = P + hh * k1p
                        k2p = krec[ii] * (1.0 - p2) - kdep[ii] * sm[ii] * p2
                        k2y = kel[ii] * (y0[ii] - (Y + hh * k1y)) + kprod[ii] * sm[ii] * p2
                        p3 = P + hh * k2p
                        k3p = krec[ii] * (1.0 - p3) - kdep[ii] * sm[ii] * p3
                        k3y = kel[ii] * (y0[ii] - (Y + hh * k2y)) + kprod[ii] * sm[ii] * p3
                        p4 = P + h * k3p
                        k4p = krec[ii] * (1.0 - p4) - kdep[ii] * s1[ii] * p4
                        k4y = kel[ii] * (y0[ii] - (Y + h * k3y)) + kprod[ii] * s1[ii] * p4
                        pool[ii] = P + h6 * (k1p + 2.0 * k2p + 2.0 * k3p + k4p)
                        Y = Y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
                        y[ii] = Y
                        s0[ii] = s1[ii]
                        better = Y > cur_y[ii]
                        cur_y[ii] = Y if better else cur_y[ii]
                        cur_t[ii] = t if better else cur_t[ii]
                        cur_a[ii] = max(cur_a[ii], a1[ii])
                else:
                    for ii in range(nb):
                        P, Y = pool[ii], y[ii]
                        k1y = kel[ii] * (y0[ii] - Y) + kprod[ii] * s0[ii] * P
                        k2y = kel[ii] * (y0[ii] - (Y + hh * k1y)) + kprod[ii] * sm[ii] * P
                        k3y = kel[ii] * (y0[ii] - (Y + hh * k2y)) + kprod[ii] * sm[ii] * P
                        k4y = kel[ii] * (y0[ii] - (Y + h * k3y)) + kprod[ii] * s1[ii] * P
                        Y = Y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
                        y[ii] = Y
                        s0[ii] = s1[ii]
                        better = Y > cur_y[ii]
                        cur_y[ii] = Y if better else cur_y[ii]
                        cur_t[ii] = t if better else cur_t[ii]
                        cur_a[ii] = max(cur_a[ii], a1[ii])
            r_b = out_b[g]
            if r_b >= 0:
                for ii in range(nb):
                    conc[r_b, start + ii] = a1[ii] / vb[ii]
                    il6[r_b, start + ii] = y[ii]
                    if keep_pool:
                        pool_out[r_b, start + ii] = pool[ii]
        for ii in range(nb):
            i = start + ii
            if cur_j[ii] >= 0:
                peaks[cur_j[ii], i] = cur_y[ii]
                peak_t[cur_j[ii], i] = cur_t[ii]
                peak_c[cur_j[ii], i] = cur_a[ii] / vb[ii]
            final[0, i] = ad[ii]
            final[1, i] = a1[ii]
            final[2, i] = a2[ii]
            final[3, i] = ae[ii]
            final[4, i] = pool[ii]
            final[5, i] = y[ii]
            dosed[i] = given[ii]
