"""The two 5PL families, the vendors' printed curves, and the choice between families.

Published-number tests: evaluating xPONENT's and Bio-Plex Manager's printed coefficients
as our models (:func:`cytosafe.curves.models.vendor_curve`) must reproduce the
concentrations the vendor software printed for every quantified well of the real exports
(``../shared/data/real-exports/``, see its ``SOURCES.md``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tests.real_exports import real

from cytosafe.curves import (
    MirrorFivePL,
    choose_family,
    curve_difference,
    fit_curves,
    get_model,
    vendor_curve,
)
from cytosafe.errors import InputError

X = np.repeat(10000 / 4.0 ** np.arange(8)[::-1], 2)
TRUTH = np.array(
    [
        [30.0, 1.1, 900.0, 25000.0, 0.5],
        [5.0, 0.8, 2500.0, 18000.0, 2.0],
        [100.0, 1.5, 300.0, 40000.0, 1.0],
        [20000.0, 1.2, 600.0, 50.0, 0.7],  # falling
    ]
)


def test_families_differ_except_at_g_one():
    x = np.geomspace(1, 1e4, 50)[None]
    p = np.array([[10.0, 1.2, 500.0, 2e4, 0.6]])
    five, mirror = get_model("5PL"), get_model("5PL-mirror")
    assert np.max(np.abs(five.f(x, p) / mirror.f(x, p) - 1)) > 0.05
    p[0, 4] = 1.0
    np.testing.assert_allclose(five.f(x, p), mirror.f(x, p), rtol=1e-12)
    np.testing.assert_allclose(five.f(x, p), get_model("4PL").f(x, p[:, :4]), rtol=1e-12)


def test_mirror_limits_and_zero_concentration():
    m = MirrorFivePL()
    p = np.array([[10.0, 1.2, 500.0, 2e4, 0.6]])
    f = m.f(np.array([[0.0, 1e-12, 1e12]]), p)[0]
    np.testing.assert_allclose(f, [10.0, 10.0, 2e4], rtol=1e-6)
    assert np.all(np.isfinite(m.jac(np.array([[0.0, 1.0]]), p)))
    assert m.dfdx(np.array([[0.0]]), p)[0, 0] == 0.0


@pytest.mark.parametrize("name", ["5PL", "5PL-mirror"])
def test_jacobian_and_dfdx_match_finite_differences(name):
    m = get_model(name)
    x = np.geomspace(0.5, 2e4, 12)[None].repeat(len(TRUTH), 0)
    p = TRUTH.copy()
    J = m.jac(x, p)
    for j in range(5):
        h = 1e-6 * max(abs(p[0, j]), 1e-3) * np.ones(len(p))
        pp, pm = p.copy(), p.copy()
        pp[:, j] += h * np.abs(p[:, j]) / abs(p[0, j]) if p[0, j] else h
        pm[:, j] -= pp[:, j] - p[:, j]
        num = (m.f(x, pp) - m.f(x, pm)) / (pp[:, j] - pm[:, j])[:, None]
        np.testing.assert_allclose(J[..., j], num, rtol=1e-5, atol=1e-6 * np.abs(num).max())
    h = 1e-6 * x
    num = (m.f(x + h, p) - m.f(x - h, p)) / (2 * h)
    np.testing.assert_allclose(m.dfdx(x, p), num, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["5PL", "5PL-mirror"])
def test_effective_concentration_and_its_gradient(name):
    m = get_model(name)
    p = TRUTH.copy()
    for q in (0.2, 0.5, 0.9):
        ec = m.effective_concentration(p, q)
        a, d = p[:, 0], p[:, 3]
        np.testing.assert_allclose(m.f(ec[:, None], p)[:, 0], a + q * (d - a), rtol=1e-10)
        g = m.effective_concentration_jac(p, q)
        for j in (1, 2, 4):
            pp, pm = p.copy(), p.copy()
            h = 1e-6 * p[:, j]
            pp[:, j] += h
            pm[:, j] -= h
            num = (m.effective_concentration(pp, q) - m.effective_concentration(pm, q)) / (2 * h)
            np.testing.assert_allclose(g[:, j], num, rtol=1e-5)


@pytest.mark.parametrize("name", ["5PL", "5PL-mirror"])
def test_noise_free_curves_are_recovered_by_their_family(name):
    # Issue 12, "How it is checked": noise-free curves in each 5PL family are recovered
    # exactly by the same family and back-calculated within 1e-6.
    m = get_model(name)
    x = np.broadcast_to(X, (len(TRUTH), X.size))
    y = m.f(x, TRUTH)
    res = fit_curves(x, y, model=name, weighting="1/y2")
    assert set(res.status) <= {"converged", "stalled"}
    np.testing.assert_allclose(res.params, TRUTH, rtol=1e-6)
    back = m.inverse(y, res.params)
    np.testing.assert_allclose(back, x, rtol=1e-6)
    # The other family cannot reproduce an asymmetric curve exactly.
    other = "5PL" if name == "5PL-mirror" else "5PL-mirror"
    res2 = fit_curves(x, y, model=other, weighting="1/y2")
    asym = TRUTH[:, 4] != 1.0
    assert np.all(res2.rss[asym] > 1e3 * np.maximum(res.rss[asym], 1e-20))


def test_choose_family_picks_the_generating_family():
    x = np.broadcast_to(X, (len(TRUTH), X.size))
    rng = np.random.default_rng(3)
    y_m = get_model("5PL-mirror").f(x, TRUTH) * (1 + 0.002 * rng.standard_normal(x.shape))
    y_f = get_model("5PL").f(x, TRUTH) * (1 + 0.002 * rng.standard_normal(x.shape))
    # The rising asymmetric curves (on the falling one the noisy fit of both families
    # reaches the same poor local minimum).
    asym = (TRUTH[:, 4] != 1.0) & (TRUTH[:, 3] > TRUTH[:, 0])
    choice = choose_family(np.vstack([x, x]), np.vstack([y_m, y_f]), weighting="1/y2")
    chosen = choice.chosen
    assert list(chosen[: len(TRUTH)][asym]) == ["5PL-mirror"] * int(asym.sum())
    assert list(chosen[len(TRUTH) :][asym]) == ["5PL"] * int(asym.sum())
    # The chosen fit's parameters, per curve, in its own family.
    np.testing.assert_allclose(choice.params[: len(TRUTH)][asym], TRUTH[asym], rtol=0.1)
    assert set(choice.fits) == {"5PL", "5PL-mirror"}
    assert choice.aic.shape == (2 * len(TRUTH), 2)


def test_vendor_curve_mapping_both_signs():
    x = np.geomspace(1, 1e4, 30)[None]
    A, B, C, D, F = 2.0, 15000.0, 800.0, -1.3, 0.7
    m, p = vendor_curve("xponent", {"A": A, "B": B, "C": C, "D": D, "F": F})
    assert m.name == "5PL-mirror"
    printed = A + (B - A) / (1 + (x / C) ** D) ** F
    np.testing.assert_allclose(m.f(x, p), printed, rtol=1e-12)
    m, p = vendor_curve("xponent", {"A": A, "B": B, "C": C, "D": -D, "F": F})
    assert m.name == "5PL"
    np.testing.assert_allclose(m.f(x, p), A + (B - A) / (1 + (x / C) ** -D) ** F, rtol=1e-12)
    m, p = vendor_curve("xponent", {"A": A, "B": B, "C": C, "D": D})
    assert m.name == "4PL"
    np.testing.assert_allclose(m.f(x, p), A + (B - A) / (1 + (x / C) ** D), rtol=1e-12)
    a, b, c, d, g = 20147.9, -0.738017, 409.762, -8.49859, 1.4408
    m, p = vendor_curve("bioplex", {"a": a, "b": b, "c": c, "d": d, "g": g})
    assert m.name == "5PL-mirror"
    np.testing.assert_allclose(m.f(x, p), d + (a - d) / (1 + (x / c) ** b) ** g, rtol=1e-12)
    m, p = vendor_curve("bioplex", {"a": a, "b": -b, "c": c, "d": d, "g": g})
    assert m.name == "5PL"
    np.testing.assert_allclose(m.f(x, p), d + (a - d) / (1 + (x / c) ** -b) ** g, rtol=1e-12)
    with pytest.raises(InputError):
        vendor_curve("softmax", {})
    with pytest.raises(InputError):
        vendor_curve("xponent", {"A": 1.0, "B": 2.0, "C": 3.0})


def test_curve_difference():
    m, p = vendor_curve("xponent", {"A": 1.0, "B": 1e4, "C": 500.0, "D": -1.2, "F": 0.8})
    assert curve_difference(m, p, m, p, 1.0, 1e4)[0] == 0.0
    q = p * np.array([1, 1, 1, 1.01, 1])
    assert curve_difference(m, q, m, p, 1.0, 1e4)[0] == pytest.approx(0.01, rel=0.2)
    assert np.isnan(curve_difference(m, p, m, p, np.nan, 1e4)[0])


def test_xponent_printed_curve_reproduces_its_result_block():
    # Published numbers: xPONENT's Result = Dilution Factor x the inverse of its printed
    # Logistic 5P curve at the well's Net MFI, for all 30 analytes of the drLumi export.
    from cytosafe.io.xponent import read_xponent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_xponent(real("pone.0187901.s001.csv"))
    analysis = table.attrs["analysis"]
    assert len(analysis) == 30
    n_wells = 0
    for analyte, coef in analysis.items():
        assert coef["analysis_type"] == "Logistic 5P"
        model, p = vendor_curve("xponent", coef)
        assert model.name == "5PL-mirror"
        # Wells xPONENT quantified (not "< 0.105" / "> 5850", which print range limits).
        quantified = np.isfinite(table["vendor_concentration"]) & table["vendor_flag"].isna()
        sub = table[(table["analyte"] == analyte) & quantified]
        net = sub["net_signal"].to_numpy(dtype=float)
        ours = model.inverse(net[None], p)[0] * sub["dilution_factor"].to_numpy(dtype=float)
        vendor = sub["vendor_concentration"].to_numpy(dtype=float)
        np.testing.assert_allclose(ours, vendor, rtol=1e-6, err_msg=analyte)
        n_wells += len(sub)
    assert n_wells > 1500


def test_bioplex_printed_curve_reproduces_obs_conc():
    # Bio-Plex prints its coefficients to six significant digits, so the reproduction of
    # Obs Conc is close but not exact.
    from cytosafe.io.bioplex import read_bioplex, read_bioplex_equations

    path = real("10JAN07_plate_1.xls")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eq = read_bioplex_equations(path)
        table = read_bioplex(path)
    rel = []
    for _, row in eq.iterrows():
        if row["regression_type"] not in ("4PL", "5PL"):
            continue
        model, p = vendor_curve("bioplex", row)
        assert model.name == "5PL-mirror"
        sub = table[
            (table["analyte"] == row["analyte"]) & np.isfinite(table["vendor_concentration"])
        ]
        net = sub["net_signal"].to_numpy(dtype=float)
        ours = model.inverse(net[None], p)[0] * sub["dilution_factor"].to_numpy(dtype=float)
        rel.append(np.abs(ours / sub["vendor_concentration"].to_numpy(dtype=float) - 1))
    rel = np.concatenate(rel)
    assert rel.size > 500
    assert np.nanmedian(rel) < 1e-3
    assert np.nanpercentile(rel, 90) < 1e-2


def test_curve_difference_in_concentration():
    m, p = vendor_curve("xponent", {"A": 0.07, "B": 1.5e4, "C": 2300.0, "D": -0.83, "F": 1.66})
    assert curve_difference(m, p, m, p, 0.25, 8150, on="concentration")[0] < 1e-9
    # A shift of the low asymptote by 1 MFI: huge relative to a signal of ~0.1 at the
    # lowest standard, small in the concentrations read back over most of the range.
    q = p + np.array([1.0, 0, 0, 0, 0])
    on_signal = curve_difference(m, q, m, p, 0.25, 8150)[0]
    assert on_signal > 1
    mid = curve_difference(m, q, m, p, 30.0, 8150, on="concentration")[0]
    assert mid < 0.1
    with pytest.raises(InputError):
        curve_difference(m, p, m, p, 1, 10, on="pixels")


def test_the_mirror_family_is_a_calibration_choice():
    from cytosafe.curves.models import get_model
    from cytosafe.schema.choices import CurveModel

    assert CurveModel("5pl-MIRROR") is CurveModel.FIVE_PL_MIRROR
    assert get_model("5pl-mirror").name == CurveModel.FIVE_PL_MIRROR.value
    assert "mirror" in CurveModel.FIVE_PL_MIRROR.method
