"""The batched fitter against numbers others published, and its own contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytosafe.curves import MODELS, FitResult, Model, curve_weights, fit_curves, get_model
from cytosafe.curves.potency import effective_concentration
from cytosafe.errors import FitError, InputError

# --- R drc: ryegrass, LL.4 --------------------------------------------------------------
# Data: drc's `ryegrass` (Inderjit, Streibig & Olofsdotter, Physiologia Plantarum
# 2002;114:422-428), root length (cm) against ferulic acid (mM).
RYEGRASS_CONC = np.array(
    [0] * 6 + [0.94] * 3 + [1.88] * 3 + [3.75] * 3 + [7.5] * 3 + [15] * 3 + [30] * 3, float
)
RYEGRASS_ROOTL = np.array(
    [7.58, 8.0, 8.3285714, 7.25, 7.375, 7.9625, 8.3555556, 6.9142857, 7.75, 6.8714286, 6.45, 5.9222222,
     1.925, 2.8857143, 4.2333333, 1.1875, 0.8571429, 1.0571429, 0.6875, 0.525, 0.825, 0.25, 0.22, 0.44]
)  # fmt: skip
# summary(drm(rootl ~ conc, data = ryegrass, fct = LL.4())), as printed in the drc
# documentation and Ritz et al., PLOS ONE 2015;10:e0146021:
#   b 2.98222 (0.46506), c 0.48141 (0.21219), d 7.79296 (0.18857), e 3.05795 (0.18573);
#   residual standard error 0.5196256 on 20 degrees of freedom.
# drc's (b, c, d, e) are CytoSafe's (b, d, a, c).
DRC_LL4 = {
    "a": (7.79296, 0.18857),
    "b": (2.98222, 0.46506),
    "c": (3.05795, 0.18573),
    "d": (0.48141, 0.21219),
}


def test_ryegrass_ll4_estimates_match_drc():
    res = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", covariance="observed")
    assert res.status[0] == "converged"
    for j, name in enumerate(res.model.names):
        est, se = DRC_LL4[name]
        assert res.params[0, j] == pytest.approx(est, abs=6e-5)
        assert res.se[0, j] == pytest.approx(se, abs=6e-5)
    assert res.sigma[0] == pytest.approx(0.5196256, rel=1e-6)
    assert res.df[0] == 20


def test_ryegrass_expected_information_matches_nls_style_errors():
    # Gauss-Newton covariance (R nls / SciPy curve_fit): same estimates, slightly different
    # standard errors from drc's observed-Hessian ones; both are offered.
    obs = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", covariance="observed")
    exp = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", covariance="expected")
    np.testing.assert_allclose(obs.params, exp.params)
    assert not np.allclose(obs.se, exp.se, rtol=1e-3)
    from scipy.optimize import curve_fit

    f = lambda x, a, b, c, d: get_model("4PL").f(x[None], np.array([[a, b, c, d]]))[0]  # noqa: E731
    popt, pcov = curve_fit(f, RYEGRASS_CONC, RYEGRASS_ROOTL, p0=exp.params[0])
    np.testing.assert_allclose(exp.se[0], np.sqrt(np.diag(pcov)), rtol=1e-5)
    np.testing.assert_allclose(exp.params[0], popt, rtol=1e-6)


# --- R drc: ryegrass, L.4 and LL.5, and effective concentrations -----------------------
# summary(drm(rootl ~ conc, data = ryegrass, fct = L.4())) in the drc reference manual
# (logistic.Rd): b 1.10548 (0.22737), c 0.64966 (0.18978), d 8.07122 (0.35994),
# e 3.06924 (0.19638); residual standard error 0.5527393 on 20 degrees of freedom. L.4 is
# fitted in linear concentration with e its ED50 ("ED50 as parameter"). drc's (b, c, d, e)
# are CytoSafe's (b, d, a, c).
DRC_L4 = {
    "a": (8.07122, 0.35994),
    "b": (1.10548, 0.22737),
    "c": (3.06924, 0.19638),
    "d": (0.64966, 0.18978),
}
# summary(drm(rootl ~ conc, data = ryegrass, fct = LL.5())) in the drc reference manual
# (LL.5.Rd): b 3.92870, c 0.32165, d 7.76054, e 2.21539, f 0.46831; residual standard
# error 0.5270098 on 19 degrees of freedom. drc's (b, c, d, e, f) are CytoSafe's
# (b, d, a, c, g).
DRC_LL5 = {"a": 7.76054, "b": 3.92870, "c": 2.21539, "d": 0.32165, "g": 0.46831}


def test_ryegrass_l4_estimates_and_its_ed50_match_drc():
    res = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="L4", covariance="observed")
    assert res.status[0] == "converged"
    for j, name in enumerate(res.model.names):
        est, se = DRC_L4[name]
        assert res.params[0, j] == pytest.approx(est, abs=6e-5)
        assert res.se[0, j] == pytest.approx(se, abs=6e-5)
    assert res.sigma[0] == pytest.approx(0.5527393, rel=1e-6)
    ec50, se = effective_concentration(res.params, res.cov, 50, model="L4")
    assert ec50[0] == pytest.approx(3.06924, abs=6e-5)
    assert se[0] == pytest.approx(0.19638, abs=6e-5)


def test_ryegrass_5pl_matches_drc_ll5_and_so_do_its_effective_concentrations():
    res = fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="5PL", covariance="observed")
    assert res.status[0] == "converged" and res.df[0] == 19
    assert res.sigma[0] == pytest.approx(0.5270098, rel=1e-6)
    # The 5PL's slope, inflection and asymmetry are weakly determined on these data
    # (standard errors 40-110% of the estimates): drc stops within 0.1% of the optimum.
    printed = np.array([[DRC_LL5[k] for k in res.model.names]])
    np.testing.assert_allclose(res.params, printed, rtol=1e-3)
    model = get_model("5PL")
    for q in (0.1, 0.5, 0.9):
        ours = model.effective_concentration(res.params, q)
        assert ours[0] == pytest.approx(model.effective_concentration(printed, q)[0], rel=1e-3)


def _random_params(model, n, rng, rising):
    a, d = rng.uniform(10, 100, n), rng.uniform(1000, 5000, n)
    if not rising:
        a, d = d, a
    cols = [a, rng.uniform(0.5, 3, n), rng.uniform(0.5, 20, n), d, rng.uniform(0.3, 3, n)]
    return np.column_stack(cols[: model.n_params])


@pytest.mark.parametrize("rising", [True, False], ids=["rising", "falling"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_effective_concentration_solves_its_definition_for_every_family(name, rising):
    # ECx is where the response has gone the fraction x of the way from a to d.
    model = get_model(name)
    p = _random_params(model, 6, np.random.default_rng(5), rising)
    a, d = p[:, 0], p[:, 3]
    for q in (0.05, 0.2, 0.5, 0.8, 0.95):
        ec = model.effective_concentration(p, q)
        np.testing.assert_allclose(model.f(ec[:, None], p)[:, 0], a + q * (d - a), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_effective_concentration_gradient_is_its_derivative(name):
    # The closed form against implicit differentiation of f(ECx, p) = a + x (d - a) (the
    # generic Model method) and against central differences.
    model = get_model(name)
    p = _random_params(model, 4, np.random.default_rng(6), True)
    for q in (0.1, 0.5, 0.9):
        g = model.effective_concentration_jac(p, q)
        np.testing.assert_allclose(g, Model.effective_concentration_jac(model, p, q), atol=1e-9)
        for j in range(model.n_params):
            h = 1e-6 * np.maximum(np.abs(p[:, j]), 1.0)
            up, down = p.copy(), p.copy()
            up[:, j] += h
            down[:, j] -= h
            fd = model.effective_concentration(up, q) - model.effective_concentration(down, q)
            np.testing.assert_allclose(g[:, j], fd / (2 * h), rtol=1e-5, atol=1e-7)


def test_4pl_effective_concentration_is_the_textbook_formula():
    p = np.array([[20.0, 1.3, 7.0, 3000.0]])
    x = get_model("4PL").effective_concentration(p, 0.2)
    assert x[0] == pytest.approx(7.0 * (20 / 80) ** (1 / 1.3), rel=1e-14)


def test_a_model_with_an_inverse_gets_its_effective_concentration_for_free():
    four = get_model("4PL")

    class Mirror4PL(Model):
        """The 4PL through its value, Jacobian and inverse only (no closed-form ECx)."""

        name, names = "mirror", ("a", "b", "c", "d")

        def f(self, x, p):
            return four.f(x, p)

        def jac(self, x, p):
            return four.jac(x, p)

        def dfdx(self, x, p):
            return four.dfdx(x, p)

        def inverse(self, y, p):
            return four.inverse(y, p)

    p = np.array([[20.0, 1.3, 7.0, 3000.0]])
    for q in (0.1, 0.5, 0.9):
        ec = Mirror4PL().effective_concentration(p, q)
        np.testing.assert_allclose(ec, four.effective_concentration(p, q), rtol=1e-13)
        grad = Mirror4PL().effective_concentration_jac(p, q)
        np.testing.assert_allclose(grad, four.effective_concentration_jac(p, q), atol=1e-12)


def test_effective_concentration_takes_a_fraction_not_a_percent():
    p = np.array([[20.0, 1.3, 7.0, 3000.0]])
    with pytest.raises(InputError, match="outside"):
        get_model("4PL").effective_concentration(p, 20)


# --- NIST StRD: Rat42 -------------------------------------------------------------------
# https://www.itl.nist.gov/div898/strd/nls/data/rat42.shtml (Ratkowsky 1983), higher
# difficulty. y = b1 / (1 + exp(b2 - b3 x)). Certified values and standard deviations:
RAT42_X = np.array([9, 14, 21, 28, 42, 57, 63, 70, 79], float)
RAT42_Y = np.array([8.93, 10.8, 18.59, 22.33, 39.35, 56.11, 61.73, 64.62, 67.08])
RAT42_CERTIFIED = np.array([7.2462237576e01, 2.6180768402e00, 6.7359200066e-02])
RAT42_CERTIFIED_SD = np.array([1.7340283401e00, 8.8295217536e-02, 3.4465663377e-03])
RAT42_RSS = 8.0565229338e00
RAT42_STARTS = {"start 1": [100.0, 1.0, 0.1], "start 2": [75.0, 2.5, 0.07]}


class Rat42Model(Model):
    """NIST's Rat42 model, written exactly as certified, to show the fitter is generic."""

    name = "rat42"
    names = ("b1", "b2", "b3")
    positive = (False, False, False)

    def f(self, x, p):
        return p[:, 0:1] / (1 + np.exp(p[:, 1:2] - p[:, 2:3] * x))

    def jac(self, x, p):
        e = np.exp(p[:, 1:2] - p[:, 2:3] * x)
        d = 1 + e
        return np.stack(
            np.broadcast_arrays(1 / d, -p[:, 0:1] * e / d**2, p[:, 0:1] * e * x / d**2), -1
        )


@pytest.mark.parametrize("start", list(RAT42_STARTS), ids=list(RAT42_STARTS))
def test_rat42_certified_values_from_both_starts(start):
    res = fit_curves(RAT42_X, RAT42_Y, model=Rat42Model(), start=[RAT42_STARTS[start]])
    assert res.status[0] == "converged"
    np.testing.assert_allclose(res.params[0], RAT42_CERTIFIED, rtol=1e-7)
    np.testing.assert_allclose(res.se[0], RAT42_CERTIFIED_SD, rtol=1e-6)
    assert res.rss[0] == pytest.approx(RAT42_RSS, rel=1e-9)


def test_rat42_as_l4_with_fixed_lower_asymptote():
    # b1/(1+exp(b2 - b3 x)) is drc's L.4 with a = 0 fixed, b = b3, c = b2/b3, d = b1: the
    # fixed-parameter path must reach the same certified optimum.
    res = fit_curves(RAT42_X, RAT42_Y, model="L4", fixed={"a": 0.0})
    assert res.status[0] == "converged"
    a, b, c, d = res.params[0]
    assert a == 0.0 and np.isnan(res.se[0, 0])
    np.testing.assert_allclose([d, b * c, b], RAT42_CERTIFIED, rtol=1e-7)
    assert res.rss[0] == pytest.approx(RAT42_RSS, rel=1e-9)
    assert res.se[0, 3] == pytest.approx(RAT42_CERTIFIED_SD[0], rel=1e-6)


# --- batching, masking, weights ---------------------------------------------------------
def _simulate(n, rng, model="5PL", noise=0.03):
    conc = 10000 / 4.0 ** np.arange(8)[::-1]
    x = np.repeat(conc, 2)[None].repeat(n, 0)
    p = np.column_stack(
        [
            rng.uniform(20, 200, n),
            rng.uniform(0.7, 1.6, n),
            rng.uniform(200, 3000, n),
            rng.uniform(2e4, 6e4, n),
            rng.uniform(0.5, 2.0, n),
        ]
    )
    if model == "4PL":
        p = p[:, :4]
    y = get_model(model).f(x, p)
    y = y * (1 + noise * rng.standard_normal(y.shape))
    return x, y, p


def test_batched_fit_equals_one_at_a_time():
    rng = np.random.default_rng(1)
    x, y, _ = _simulate(20, rng, "4PL")
    batch = fit_curves(x, y, model="4PL", weighting="1/y2")
    for i in range(0, 20, 5):
        single = fit_curves(x[i], y[i], model="4PL", weighting="1/y2")
        np.testing.assert_allclose(batch.params[i], single.params[0], rtol=1e-6)
        np.testing.assert_allclose(batch.se[i], single.se[0], rtol=1e-5)


def test_ragged_curves_are_masked_not_padded_into_the_fit():
    rng = np.random.default_rng(2)
    x, y, _ = _simulate(2, rng, "4PL")
    short = fit_curves(x[0, :12], y[0, :12], model="4PL")
    padded_y = y.copy()
    padded_y[0, 12:] = 1e9  # garbage that must be ignored
    mask = np.ones_like(y, dtype=bool)
    mask[0, 12:] = False
    res = fit_curves(x, padded_y, model="4PL", mask=mask)
    np.testing.assert_allclose(res.params[0], short.params[0], rtol=1e-7)
    assert res.n_obs.tolist() == [12, 16]


def test_fixed_parameters_are_held_per_curve():
    rng = np.random.default_rng(3)
    x, y, p = _simulate(3, rng, "5PL", noise=0.0)
    res = fit_curves(x, y, model="5PL", fixed={"g": [1.0, np.nan, p[2, 4]]})
    assert res.params[0, 4] == 1.0 and res.params[2, 4] == p[2, 4]
    assert res.fixed[:, 4].tolist() == [True, False, True]
    np.testing.assert_allclose(res.params[1], p[1], rtol=1e-5)


def test_insufficient_data_is_a_status_not_an_exception():
    res = fit_curves([[1.0, 10, 100, np.nan, np.nan]], [[1.0, 2, 3, np.nan, np.nan]], model="5PL")
    assert res.status[0] == "insufficient_data"


def test_weights_1_over_y_squared_and_replicate_variance():
    x = np.array([[1, 1, 10, 10, 100, 100.0]])
    y = np.array([[2, 4, 10, 14, 100, 100.0]])
    m = np.ones_like(y, dtype=bool)
    w = curve_weights(x, y, m, "1/y2")
    expected = 1 / y**2
    np.testing.assert_allclose(w, expected / expected.mean())
    wv = curve_weights(x, y, m, "1/var")
    # level variances 2, 8, 0 -> the identical duplicates take 1% of the median level
    # variance (median of 2, 8, 0 is 2 -> floor 0.02)
    raw = 1 / np.array([2, 2, 8, 8, 0.02, 0.02])
    np.testing.assert_allclose(wv[0], raw / raw.mean())
    with pytest.raises(FitError, match="unknown weighting"):
        curve_weights(x, y, m, "1/x")


def test_unknown_parameter_cannot_be_fixed():
    with pytest.raises(FitError, match="cannot fix 'e'"):
        fit_curves(RYEGRASS_CONC, RYEGRASS_ROOTL, model="4PL", fixed={"e": 1.0})


def test_result_table_has_one_row_per_curve():
    rng = np.random.default_rng(4)
    x, y, _ = _simulate(5, rng, "5PL")
    res = fit_curves(x, y, model="5PL", weighting="1/y2")
    assert isinstance(res, FitResult)
    table = res.to_frame()
    assert len(table) == 5 and {"a", "g_se", "rss", "status"} <= set(table.columns)


# --- properties ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(10, 500),
    b=st.floats(0.6, 2.5),
    log_c=st.floats(np.log(100), np.log(5000)),
    d=st.floats(1e4, 1e5),
    g=st.floats(0.6, 1.8),
)
def test_noise_free_5pl_curves_recover_their_parameters(a, b, log_c, d, g):
    conc = 40000 / 3.0 ** np.arange(10)[::-1]
    p = np.array([[a, b, np.exp(log_c), d, g]])
    y = get_model("5PL").f(conc[None], p)
    res = fit_curves(conc, y, model="5PL")
    assert res.status[0] in ("converged", "stalled")
    fitted = get_model("5PL").f(conc[None], res.params)
    np.testing.assert_allclose(fitted, y, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(10, 500), b=st.floats(0.5, 3), log_c=st.floats(0, 8), d=st.floats(1e3, 1e5))
def test_noise_free_4pl_curves_recover_their_parameters(a, b, log_c, d):
    conc = np.exp(np.linspace(log_c - 4, log_c + 4, 9))
    p = np.array([[a, b, np.exp(log_c), d]])
    y = get_model("4PL").f(conc[None], p)
    res = fit_curves(conc, y, model="4PL")
    np.testing.assert_allclose(res.params[0], p[0], rtol=1e-5)
