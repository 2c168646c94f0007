"""The compiled Levenberg-Marquardt kernel (issue 16, item 2) against the NumPy iteration
it is written after, and against the published fits the NumPy path is tested on.

Both kernels run the same iteration; only the order of a few floating-point sums differs.
On well-determined curves they agree to 1e-10 in the parameters; on curves whose plateau
the standards do not reach, the optimum is flat and the two stop at points whose weighted
RSS agrees to 1e-12 while the parameters agree to well under a millionth of their standard
errors.
"""

from __future__ import annotations

import numpy as np
import pytest

import cytosafe.curves.fit as fit_module
from cytosafe.curves import FitLimits, fit_curves, get_model
from cytosafe.curves.fit import compiled_available
from cytosafe.errors import FitError
from test_curves_fit import DRC_LL4, DRC_LL5, RYEGRASS_CONC, RYEGRASS_ROOTL

FAMILIES = ("4PL", "5PL", "5PL-mirror")


def test_the_kernel_is_installed_where_the_tests_run():
    # numba is in requirements.lock: a CI without it would silently test only one path.
    assert compiled_available()


# --- published numbers, through the compiled kernel -------------------------------------
def test_compiled_ryegrass_ll4_matches_drc():
    # drc's LL.4 on ryegrass (source and numbers in tests/test_curves_fit.py).
    res = fit_curves(
        RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", covariance="observed", kernel="compiled"
    )
    assert res.status[0] == "converged"
    for j, name in enumerate(res.model.names):
        est, se = DRC_LL4[name]
        assert res.params[0, j] == pytest.approx(est, abs=6e-5)
        assert res.se[0, j] == pytest.approx(se, abs=6e-5)
    assert res.sigma[0] == pytest.approx(0.5196256, rel=1e-6)


def test_compiled_ryegrass_ll5_matches_drc():
    # drc's LL.5 on ryegrass: residual standard error 0.5270098 on 19 df; drc stops within
    # 0.1 % of the optimum on these weakly determined data (tests/test_curves_fit.py).
    res = fit_curves(
        RYEGRASS_CONC, RYEGRASS_ROOTL, model="5PL", covariance="observed", kernel="compiled"
    )
    assert res.status[0] == "converged" and res.df[0] == 19
    assert res.sigma[0] == pytest.approx(0.5270098, rel=1e-6)
    printed = np.array([[DRC_LL5[k] for k in res.model.names]])
    np.testing.assert_allclose(res.params, printed, rtol=1e-3)


@pytest.mark.parametrize("covariance", ["expected", "observed"])
@pytest.mark.parametrize("model", FAMILIES)
def test_kernels_agree_to_1e_10_on_the_published_data(model, covariance):
    a = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model=model, covariance=covariance,
                   kernel="compiled")  # fmt: skip
    b = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model=model, covariance=covariance,
                   kernel="numpy")  # fmt: skip
    assert a.status.tolist() == b.status.tolist() == ["converged"]
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10)
    np.testing.assert_allclose(a.rss, b.rss, rtol=1e-12)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-8)


# --- simulated standard curves ----------------------------------------------------------
def _curves(n, model, seed, hard=False):
    """Standard curves of 8 standards in duplicate. ``hard``: bench_fit's draw, where many
    upper plateaus lie beyond the top standard; else inflections among the standards."""
    rng = np.random.default_rng(seed)
    conc = 10000 / 4.0 ** np.arange(8)[::-1]
    x = np.repeat(conc, 2)[None].repeat(n, 0)
    c = np.exp(rng.uniform(np.log(300), np.log(8000), n)) if hard else rng.uniform(20, 1000, n)
    g = np.exp(rng.uniform(np.log(0.4), np.log(2.5), n)) if hard else rng.uniform(0.6, 1.6, n)
    p = np.column_stack(
        [rng.uniform(20, 300, n), rng.uniform(0.7, 1.6, n), c, rng.uniform(1e4, 1e5, n), g]
    )[:, : get_model(model).n_params]
    y = get_model(model).f(x, p)
    y = y * (1 + 0.05 * rng.standard_normal(y.shape)) + 5 * rng.standard_normal(y.shape)
    return x, np.abs(y)


@pytest.mark.parametrize("model", FAMILIES)
def test_kernels_agree_on_well_determined_standard_curves(model):
    x, y = _curves(300, model, seed=11)
    kw = dict(model=model, weighting="1/y2", limits=FitLimits())
    a = fit_curves(x, y, kernel="compiled", **kw)
    b = fit_curves(x, y, kernel="numpy", **kw)
    np.testing.assert_array_equal(a.status, b.status)
    usable = np.isin(b.status, ["converged", "stalled"])
    assert usable.mean() > 0.95
    np.testing.assert_allclose(a.rss[usable], b.rss[usable], rtol=1e-12)
    # Every curve within a millionth of a standard error; most to 1e-10 relative (the
    # rest stop at another point of a flat optimum, at the same RSS).
    dp = np.abs(a.params - b.params)[usable]
    assert np.all(dp <= 1e-6 * b.se[usable])
    rel = np.max(dp / np.abs(b.params[usable]), axis=1)
    assert np.median(rel) <= 1e-12 and np.mean(rel <= 1e-10) >= 0.8
    # The covariance (compiled: one-sided Jacobi SVD of the same scaled Jacobian).
    np.testing.assert_array_equal(np.isnan(a.se), np.isnan(b.se))
    np.testing.assert_allclose(a.se[usable], b.se[usable], rtol=1e-6)


@pytest.mark.parametrize("model", FAMILIES)
def test_compiled_kernel_never_ends_worse_on_hard_curves(model):
    # The benchmark's parity, kernel against kernel: equal or lower weighted RSS.
    x, y = _curves(400, model, seed=12, hard=True)
    a = fit_curves(x, y, model=model, weighting="1/y2", kernel="compiled")
    b = fit_curves(x, y, model=model, weighting="1/y2", kernel="numpy")
    assert np.all(a.rss <= b.rss * (1 + 1e-9) + 1e-12)
    assert np.mean(a.status == b.status) > 0.98
    # Same rank decision for the covariance wherever the fits agree.
    same = (a.status == b.status) & np.all(np.isclose(a.params, b.params, rtol=1e-9), axis=1)
    assert same.mean() > 0.5
    np.testing.assert_array_equal(np.isnan(a.se[same]), np.isnan(b.se[same]))


# --- the contract of fit_curves holds on the compiled path ------------------------------
def test_masks_fixed_parameters_and_insufficient_data_on_the_compiled_path():
    x, y = _curves(4, "5PL", seed=13)
    y[1, 10:] = 1e9  # garbage to be masked
    mask = np.ones_like(y, dtype=bool)
    mask[1, 10:] = False
    mask[3, 3:] = False  # 3 points for 5 parameters
    fixed = {"g": [1.0, np.nan, 0.8, np.nan]}
    kw = dict(model="5PL", weighting="1/y2", mask=mask, fixed=fixed)
    a = fit_curves(x, y, kernel="compiled", **kw)
    b = fit_curves(x, y, kernel="numpy", **kw)
    assert a.status.tolist() == b.status.tolist()
    assert a.status[3] == "insufficient_data"
    assert a.params[0, 4] == 1.0 and a.params[2, 4] == 0.8
    assert a.n_obs.tolist() == [16, 10, 16, 3]
    # Curve 1 keeps its 10 lowest standards only: its plateau is far out, so the two
    # kernels agree in RSS there; the curves with g held agree in every parameter.
    np.testing.assert_allclose(a.params[[0, 2]], b.params[[0, 2]], rtol=1e-8)
    np.testing.assert_allclose(a.rss[:3], b.rss[:3], rtol=1e-9)


def test_bounds_are_kept_on_the_compiled_path():
    x, y = _curves(50, "5PL", seed=14, hard=True)
    kw = dict(model="5PL", weighting="1/y2", bounds={"g": (0.1, 10)})
    a = fit_curves(x, y, kernel="compiled", **kw)
    b = fit_curves(x, y, kernel="numpy", **kw)
    g = a.params[:, 4]
    assert np.all((g >= 0.1 * (1 - 1e-9)) & (g <= 10 * (1 + 1e-9)))
    np.testing.assert_array_equal(a.extra["at_bound"], b.extra["at_bound"])
    assert a.extra["at_bound"][:, 4].any()
    assert np.all(a.rss <= b.rss * (1 + 1e-9) + 1e-12)


def test_compiled_blocks_change_nothing():
    x, y = _curves(23, "5PL", seed=15, hard=True)
    whole = fit_curves(x, y, model="5PL", kernel="compiled", block_size=None)
    blocks = fit_curves(x, y, model="5PL", kernel="compiled", block_size=5)
    for name in ("params", "se", "rss", "n_iter"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(blocks, name))
    np.testing.assert_array_equal(whole.status, blocks.status)


def test_a_curve_reuses_only_its_own_concentrations_logs():
    # The kernels keep the grouping and logarithms of the curve before's concentrations
    # for a curve with the same ones (a plate's standards): curves whose series differ
    # (another dilution, a replicate missing, a point masked) must fit exactly as alone.
    x, y = _curves(8, "5PL", seed=18)
    x[2] *= 3.0  # another series between two shared ones
    x[3, 5] = x[3, 4]  # a triplicate, one standard fewer
    x[5, 0] = np.nan  # a missing concentration
    mask = np.ones_like(y, dtype=bool)
    mask[6, 9] = False
    kw = dict(model="5PL", weighting="1/y2", covariance="expected", kernel="compiled")
    together = fit_curves(x, y, mask=mask, **kw)
    for i in range(len(y)):
        alone = fit_curves(x[i], y[i], mask=mask[i], **kw)
        for name in ("params", "se", "rss", "n_iter"):
            np.testing.assert_array_equal(getattr(together, name)[i], getattr(alone, name)[0])
        assert together.status[i] == alone.status[0]


def test_auto_takes_the_compiled_kernel_from_the_threshold(monkeypatch):
    x, y = _curves(12, "5PL", seed=16)
    monkeypatch.setattr(fit_module, "COMPILED_MIN_CURVES", 12)
    compiled = fit_curves(x, y, model="5PL", kernel="compiled")
    numpy_ = fit_curves(x, y, model="5PL", kernel="numpy")
    auto = fit_curves(x, y, model="5PL")
    np.testing.assert_array_equal(auto.params, compiled.params)
    small = fit_curves(x[:11], y[:11], model="5PL")
    np.testing.assert_array_equal(small.params, numpy_.params[:11])
    # Models the kernel does not cover take the NumPy path under "auto".
    assert fit_curves(x, y, model="L4").status.shape == (12,)


def test_the_kernel_can_be_turned_off_and_says_why_it_is_missing(monkeypatch):
    x, y = _curves(3, "4PL", seed=17)
    with pytest.raises(FitError, match="not for L4"):
        fit_curves(x, y, model="L4", kernel="compiled")
    with pytest.raises(FitError, match="unknown kernel"):
        fit_curves(x, y, model="4PL", kernel="fast")
    monkeypatch.setenv("CYTOSAFE_COMPILED", "0")
    assert not compiled_available()
    with pytest.raises(FitError, match="Numba is not installed, or CYTOSAFE_COMPILED=0"):
        fit_curves(x, y, model="4PL", kernel="compiled")
    monkeypatch.setattr(fit_module, "COMPILED_MIN_CURVES", 1)
    np.testing.assert_array_equal(
        fit_curves(x, y, model="4PL").params, fit_curves(x, y, model="4PL", kernel="numpy").params
    )


# --- the pattern move along the 5PL's limits (compiled kernel only) ----------------------
def test_pattern_moves_fire_only_on_degenerate_fits_and_never_end_worse(monkeypatch):
    # bench_fit's hard draw: many upper plateaus beyond the top standard, so the
    # least-squares optimum of many curves runs out along g -> 0 or g -> inf.
    from cytosafe.curves import _compiled

    x, y = _curves(400, "5PL", seed=12, hard=True)
    kw = dict(model="5PL", weighting="1/y2", kernel="compiled", limits=FitLimits())
    moved = fit_curves(x, y, **kw)
    monkeypatch.setattr(_compiled, "VALLEY_JUMPS", 0)
    walked = fit_curves(x, y, **kw)
    fired = moved.n_iter != walked.n_iter
    assert fired.sum() >= 20  # the fixture exercises the rule
    # The RSS parity on the curves the rule fires on (and nowhere else is anything moved).
    assert np.all(moved.rss <= walked.rss * (1 + 1e-9) + 1e-12)
    np.testing.assert_array_equal(moved.params[~fired], walked.params[~fired])
    # It saves most of the iterations of those curves...
    assert moved.n_iter[fired].sum() < 0.6 * walked.n_iter[fired].sum()
    # ...and fires only while the iteration is out beyond |ln g| = 3.5: nearly all of
    # those fits end degenerate under the default limits; the few that come back end at
    # the walk's optimum, to rounding.
    np.testing.assert_array_equal(moved.status, walked.status)
    assert np.mean(moved.status[fired] == "degenerate") >= 0.9
    back = fired & (moved.status != "degenerate")
    np.testing.assert_allclose(moved.rss[back], walked.rss[back], rtol=1e-12)
    assert np.all(np.abs(moved.params - walked.params)[back] <= 1e-6 * walked.se[back])


@pytest.mark.parametrize("weighting", ["1/y", "1/y2"])
def test_compiled_weights_are_curve_weights_bit_for_bit(weighting):
    # The compiled path computes the 1/y and 1/y2 weights in one pass, with NumPy's
    # pairwise order for the row sums: the same numbers, for rows shorter than, equal to
    # and longer than NumPy's 8 running sums, with masked, non-finite, zero and negative
    # responses and curves with no usable point.
    from cytosafe.curves import _compiled
    from cytosafe.curves.fit import curve_weights

    rng = np.random.default_rng(16)
    for m_points in (1, 5, 8, 12, 16, 24, 37):
        y = np.exp(rng.normal(5.0, 3.0, (200, m_points))) * rng.choice(
            [1, 1, 1, -1, 0], (200, m_points)
        )
        y[rng.random(y.shape) < 0.03] = np.nan
        m = rng.random(y.shape) > 0.1
        m[:3] = False
        want = curve_weights(None, y, m, weighting)
        got = _compiled.y_weights(y, m, 1 if weighting == "1/y" else 2)
        assert np.array_equal(got, want, equal_nan=True)
        assert (got == 0).sum() == (want == 0).sum()
    assert _compiled.y_weights(np.ones((2, 129)), np.ones((2, 129), bool), 2) is None
