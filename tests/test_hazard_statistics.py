"""Statistics of the hazard step against SciPy/statsmodels and published worked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cytosafe.hazard.design import HazardSettings
from cytosafe.hazard.statistics import (
    adjust_pvalues,
    geometric_mean_ratio,
    mixed_models,
    paired_wilcoxon,
)

# Hollander & Wolfe, Nonparametric Statistical Methods (2nd ed., 1999), Example 3.1:
# Hamilton depression scale factor IV in 9 patients before (x) and after (y) a
# tranquilizer (data as in R's NSM3::pPairedWilcoxon example,
# https://www.rdocumentation.org/packages/NSM3/versions/1.1/topics/pPairedWilcoxon).
HW_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
HW_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]

# Benjamini & Hochberg (1995), section 4: the 15 p-values of the example.
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
           0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]  # fmt: skip


def test_wilcoxon_reproduces_hollander_wolfe_example_3_1():
    v, p, n = paired_wilcoxon(HW_X, HW_Y, alternative="greater")
    # T+ = 1 + 4 + 5 + 6 + 7 + 8 + 9 = 40 (the ranks of the seven positive differences).
    assert v == 40
    assert n == 9
    # Exact: P(T+ >= 40) = P(T+ <= 5) = 10 subsets of {1..9} out of 2^9 (H&W: 0.020).
    assert p == pytest.approx(10 / 512, rel=1e-12)


def test_wilcoxon_matches_scipy_two_sided_and_drops_zero_differences():
    rng = np.random.default_rng(3)
    a = rng.normal(1.0, 1.0, 12)
    b = a - rng.normal(0.4, 0.5, 12)
    b[[2, 7]] = a[[2, 7]]  # two ties: zero differences
    v, p, n = paired_wilcoxon(a, b)
    d = a - b
    ref = stats.wilcoxon(d[d != 0])
    assert n == 10
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert v == pytest.approx(stats.rankdata(np.abs(d[d != 0]))[d[d != 0] > 0].sum())


def test_wilcoxon_with_every_difference_zero_has_no_p_value():
    v, p, n = paired_wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert n == 0 and np.isnan(p) and np.isnan(v)


def test_benjamini_hochberg_reproduces_the_1995_worked_example():
    adj = adjust_pvalues(np.array(BH_1995), "fdr_bh")
    assert (adj <= 0.05).sum() == 4  # the paper's four rejections
    assert adj[3] == pytest.approx(0.0095 * 15 / 4)
    assert sum(p <= 0.05 / 15 for p in BH_1995) == 3  # Bonferroni finds three
    np.testing.assert_allclose(adj, multipletests(BH_1995, method="fdr_bh")[1])


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
def test_family_wise_adjustments_match_statsmodels(method):
    np.testing.assert_allclose(
        adjust_pvalues(np.array(BH_1995), method), multipletests(BH_1995, method=method)[1]
    )


def test_adjustment_ignores_missing_p_values():
    adj = adjust_pvalues(np.array([0.01, np.nan, 0.04]), "fdr_bh")
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], multipletests([0.01, 0.04], method="fdr_bh")[1])


def test_geometric_mean_ratio_is_the_paired_t_interval_on_the_log_scale():
    rng = np.random.default_rng(5)
    c = rng.lognormal(3, 0.5, 10)
    t = c * rng.lognormal(0.7, 0.3, 10)
    gmr, lo, hi = geometric_mean_ratio(np.log(t), np.log(c), confidence=0.95)
    ref = stats.ttest_rel(np.log(t), np.log(c)).confidence_interval(0.95)
    assert gmr == pytest.approx(np.exp(np.mean(np.log(t / c))))
    assert (lo, hi) == pytest.approx((np.exp(ref.low), np.exp(ref.high)))


def _responses(n_donors=10, levels=(1.0, 10.0), seed=7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_donors):
        donor_level = rng.normal(0, 0.8)
        ctrl = np.exp(3 + donor_level + rng.normal(0, 0.2))
        for k, x in enumerate(levels):
            test = np.exp(3 + donor_level + 0.5 * (k + 1) + rng.normal(0, 0.2))
            rows.append(("S", "wb", 24.0, f"D{i}", "TA", x, "IL-6", test, ctrl))
    return pd.DataFrame(
        rows,
        columns=["study_id", "assay_format", "incubation_h", "donor_id", "treatment",
                 "treatment_concentration", "analyte", "test_concentration", "control_concentration"],
    )  # fmt: skip


def test_mixed_model_fit_with_two_conditions_equals_the_paired_comparison():
    # Balanced random-intercept model with two conditions (control, test): the REML fixed
    # effect is the mean paired difference and its standard error that of the paired t.
    from cytosafe.hazard.statistics import _fit_one

    r = _responses(levels=(1.0,))
    n = len(r)
    y = np.concatenate([np.log(r["test_concentration"]), np.log(r["control_concentration"])])
    X = np.column_stack([np.ones(2 * n), np.r_[np.ones(n), np.zeros(n)]])
    fit = _fit_one(y, X, np.concatenate([r["donor_id"], r["donor_id"]]))
    d = np.log(r["test_concentration"]) - np.log(r["control_concentration"])
    assert fit.fe_params[1] == pytest.approx(d.mean(), rel=1e-6)
    assert fit.bse_fe[1] == pytest.approx(d.std(ddof=1) / np.sqrt(n), rel=1e-3)


def test_mixed_model_matches_statsmodels_formula_interface():
    import statsmodels.formula.api as smf

    r = _responses(levels=(0.1, 1.0, 10.0))
    res = mixed_models(r, HazardSettings())
    long = pd.concat(
        [
            r.assign(
                level=r["treatment_concentration"].astype(str), y=np.log(r["test_concentration"])
            ),
            r.drop_duplicates("donor_id").assign(
                level="control", y=np.log(r.drop_duplicates("donor_id")["control_concentration"])
            ),
        ]
    )
    fit = smf.mixedlm("y ~ C(level, Treatment('control'))", long, groups=long["donor_id"]).fit(
        reml=True
    )
    for conc in (0.1, 1.0, 10.0):
        coef = fit.params[f"C(level, Treatment('control'))[T.{conc}]"]
        got = res.loc[res["treatment_concentration"] == conc, "ratio"].iloc[0]
        assert np.log(got) == pytest.approx(coef, rel=1e-4)
    assert res["joint_p_value"].iloc[0] < 1e-6
    assert (res["status"] == "converged").all()


def test_mixed_model_is_skipped_for_one_concentration_in_one_format():
    assert mixed_models(_responses(levels=(1.0,)), HazardSettings()).empty


def test_batched_wilcoxon_equals_one_call_per_set():
    from cytosafe.hazard.statistics import paired_wilcoxon_many

    rng = np.random.default_rng(11)
    sets = [rng.normal(0.3, 1.0, n) for n in (3, 8, 8, 8, 12, 20, 20)]
    sets[2][[1, 4]] = 0.0  # zero differences drop out
    sets[3][5] = sets[3][6]  # tied magnitudes: handled one at a time
    sets.append(np.zeros(4))  # nothing differs
    v, p, n = paired_wilcoxon_many(sets)
    for i, d in enumerate(sets):
        v1, p1, n1 = paired_wilcoxon(d, np.zeros_like(d))
        assert n[i] == n1
        np.testing.assert_allclose([v[i], p[i]], [v1, p1], rtol=1e-12, equal_nan=True)


def test_an_empty_summary_has_every_column_so_the_ranking_reads_it():
    # No response to summarise (no test treatment): the summary keeps the columns of a
    # full one; with only its key and counts the ranking failed on 'gmr' (KeyError).
    from cytosafe.hazard.classify import best_concentration
    from cytosafe.hazard.response import _empty
    from cytosafe.hazard.statistics import across_donors

    empty = across_donors(_empty(), HazardSettings())
    documented = {  # across_donors' docstring
        "n_donors", "n_responders", "n_indeterminate", "responder_fraction", "responders",
        "indeterminate_donors", "median_log2_fold_change", "gmr", "gmr_ci_low", "gmr_ci_high",
        "wilcoxon_v", "wilcoxon_n", "p_value", "p_adjusted", "significant",
        "median_percent_of_positive", "note",
    }  # fmt: skip
    assert empty.empty and documented | {"treatment_role"} <= set(empty)
    assert best_concentration(empty).empty
