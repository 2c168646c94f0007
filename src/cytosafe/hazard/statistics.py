"""Across donors: responder counts, paired tests, mixed models, multiplicity, effect sizes.

Per treatment x concentration x analyte (x format, incubation), over the donors with a
matched negative control:

* **responder count and fraction** of the donor calls, and the number of **indeterminate**
  calls (a bound from a censored value that could lie on either side of the rule); these
  count as neither responder nor non-responder, so the fraction is over the donors with a
  determinate call;
* **Wilcoxon signed-rank test** of the paired differences of log concentrations (test -
  matched negative control) (Wilcoxon 1945; Hollander & Wolfe 1999, ch. 3), by
  :func:`scipy.stats.wilcoxon` (exact null distribution for small samples without ties,
  zero differences dropped — Wilcoxon's own treatment). With censored values tied at the
  LLOQ (Helsel 2012), a donor whose test and control are both below the LLOQ is a zero
  difference and drops out;
* **geometric mean ratio** (GMR) test / control with a confidence interval: the mean of
  the paired log differences back-transformed, with Student's t on n - 1 degrees of
  freedom (the paired t interval on the log scale);
* **multiplicity** across the analytes of one treatment x concentration x format
  (Benjamini & Hochberg 1995 by default; Holm 1979 or Bonferroni), by
  :func:`statsmodels.stats.multitest.multipletests`.

Per treatment x analyte, when the treatment was tested at several concentrations or in
several formats, a **linear mixed model** of the log concentration with the treatment
level (the negative control as reference, each concentration a level) and the format as
fixed effects and a random intercept per donor (Laird & Ware 1982), by
:class:`statsmodels.regression.mixed_linear_model.MixedLM` (REML). Reported: the ratio to
the control at each level with its Wald interval and p-value, and the joint Wald test of
all levels (adjusted across analytes like the paired tests).
"""

from __future__ import annotations

import warnings as _warnings

import numpy as np
import pandas as pd
from scipy import stats

from cytosafe.hazard.design import HazardSettings

__all__ = [
    "SUMMARY_KEY",
    "across_donors",
    "adjust_pvalues",
    "geometric_mean_ratio",
    "mixed_models",
    "paired_wilcoxon",
    "paired_wilcoxon_many",
]

SUMMARY_KEY = [
    "study_id", "assay_format", "incubation_h", "treatment", "treatment_concentration", "analyte",
]  # fmt: skip


def paired_wilcoxon(
    test: np.ndarray, control: np.ndarray, *, alternative: str = "two-sided"
) -> tuple[float, float, int]:
    """Wilcoxon signed-rank test of paired values (already on the log scale).

    Returns ``(statistic, p_value, n_used)``; ``statistic`` is the sum of the ranks of the
    positive differences (R's ``V``, Hollander & Wolfe's T+), ``n_used`` the number of
    non-zero differences. NaN p-value when no difference is non-zero.
    """
    d = np.asarray(test, dtype=float) - np.asarray(control, dtype=float)
    d = d[np.isfinite(d)]
    nz = d[d != 0]
    if nz.size == 0:
        return np.nan, np.nan, 0
    ranks = stats.rankdata(np.abs(nz))
    t_plus = float(ranks[nz > 0].sum())
    res = stats.wilcoxon(nz, zero_method="wilcox", alternative=alternative)
    return t_plus, float(res.pvalue), int(nz.size)


def paired_wilcoxon_many(
    diffs: list[np.ndarray], *, alternative: str = "two-sided"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`paired_wilcoxon` of many sets of paired differences at once.

    Sets with the same number of non-zero differences and no tied magnitudes go through
    one vectorised :func:`scipy.stats.wilcoxon` call (the same exact or normal
    distribution as one call per set); sets with ties one at a time.
    """
    k = len(diffs)
    v, p, n = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k, dtype=int)
    nonzero = [d[np.isfinite(d) & (d != 0)] for d in map(np.asarray, diffs)]
    by_n: dict[int, list[int]] = {}
    for i, nz in enumerate(nonzero):
        n[i] = nz.size
        if nz.size == 0:
            continue
        if np.unique(np.abs(nz)).size < nz.size:
            v[i], p[i], _ = paired_wilcoxon(nz, np.zeros_like(nz), alternative=alternative)
        else:
            by_n.setdefault(nz.size, []).append(i)
    for rows in by_n.values():
        M = np.vstack([nonzero[i] for i in rows])
        res = stats.wilcoxon(M, axis=1, zero_method="wilcox", alternative=alternative)
        ranks = stats.rankdata(np.abs(M), axis=1)
        v[rows] = np.where(M > 0, ranks, 0).sum(axis=1)
        p[rows] = np.atleast_1d(res.pvalue)
    return v, p, n


def geometric_mean_ratio(
    test: np.ndarray, control: np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Geometric mean ratio of paired values (natural logs) with a t interval."""
    d = np.asarray(test, dtype=float) - np.asarray(control, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return np.nan, np.nan, np.nan
    m = float(d.mean())
    if n < 2:
        return float(np.exp(m)), np.nan, np.nan
    se = float(d.std(ddof=1)) / np.sqrt(n)
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return float(np.exp(m)), float(np.exp(m - t * se)), float(np.exp(m + t * se))


def adjust_pvalues(p: np.ndarray, method: str = "fdr_bh") -> np.ndarray:
    """Multiplicity-adjusted p-values (NaN stay NaN and do not count as tests)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if method == "none" or not ok.any():
        out[ok] = p[ok]
        return out
    from statsmodels.stats.multitest import multipletests

    out[ok] = multipletests(p[ok], method=method)[1]
    return out


def _per_donor(responses: pd.DataFrame) -> pd.DataFrame:
    """One row per donor and summary key: log concentrations averaged over plates."""
    r = responses.copy()
    r["incubation_h"] = r["incubation_h"].astype(float).fillna(-1.0)
    if "call" not in r:  # a responses table written before calls could be indeterminate
        r["call"] = np.where(r["responder"].astype(bool), "responder", "non-responder")
    # Over plates, a donor responds when any call does; otherwise it is indeterminate when
    # any call is, and a non-responder only when every call says so.
    r["_ind"] = r["call"].astype(str).eq("indeterminate")
    with np.errstate(divide="ignore", invalid="ignore"):
        r["_lt"] = np.log(r["test_concentration"].astype(float))
        r["_lc"] = np.log(r["control_concentration"].astype(float))
    g = r.groupby([*SUMMARY_KEY, "donor_id"], sort=False, dropna=False)
    out = g.agg(
        _lt=("_lt", "mean"),
        _lc=("_lc", "mean"),
        responder=("responder", "any"),
        _ind=("_ind", "any"),
        percent_of_positive=("percent_of_positive", "median"),
        log2_fold_change=("log2_fold_change", "mean"),
        treatment_role=("treatment_role", "first"),
        treatment_unit=("treatment_unit", "first"),
        positive_control=("positive_control", "first"),
    )
    out = out.reset_index()
    out["indeterminate"] = out["_ind"].astype(bool) & ~out["responder"].astype(bool)
    return out.drop(columns="_ind")


#: The columns of :func:`across_donors` before its multiplicity adjustment.
_SUMMARY_COLUMNS = [
    *SUMMARY_KEY, "treatment_role", "treatment_unit", "positive_control", "n_donors",
    "n_responders", "n_indeterminate", "responder_fraction", "responders",
    "indeterminate_donors", "median_log2_fold_change", "gmr",
    "gmr_ci_low", "gmr_ci_high", "wilcoxon_v", "wilcoxon_n", "p_value",
    "median_percent_of_positive", "note",
]  # fmt: skip


def across_donors(responses: pd.DataFrame, settings: HazardSettings) -> pd.DataFrame:
    """Summary across donors per treatment x concentration x analyte (x format).

    Columns: ``n_donors``, ``n_responders``, ``n_indeterminate`` (donors whose call could
    not be decided from censored values, see :func:`~cytosafe.hazard.response.donor_responses`),
    ``responder_fraction`` (responders / donors with a determinate call, NaN when none has
    one), ``responders`` and ``indeterminate_donors`` (donor ids),
    ``median_log2_fold_change``, ``gmr`` with ``gmr_ci_low``/``gmr_ci_high``,
    ``wilcoxon_v``, ``wilcoxon_n``, ``p_value``, ``p_adjusted``, ``significant``,
    ``median_percent_of_positive`` and ``note``.
    """
    if responses.empty:  # the same columns, so what reads a summary reads this one too
        return pd.DataFrame(
            columns=[*_SUMMARY_COLUMNS, "p_adjusted", "significant", "multiplicity"]
        )
    d = _per_donor(responses)
    groups = d.groupby(SUMMARY_KEY, sort=False, dropna=False)
    out = groups.agg(
        treatment_role=("treatment_role", "first"),
        treatment_unit=("treatment_unit", "first"),
        positive_control=("positive_control", "first"),
        n_donors=("donor_id", "size"),
        n_responders=("responder", "sum"),
        n_indeterminate=("indeterminate", "sum"),
        median_log2_fold_change=("log2_fold_change", "median"),
        median_percent_of_positive=("percent_of_positive", "median"),
    ).reset_index()
    out["n_responders"] = out["n_responders"].astype(int)
    out["n_indeterminate"] = out["n_indeterminate"].astype(int)
    determinate = out["n_donors"] - out["n_indeterminate"]
    # Indeterminate calls count as neither responder nor non-responder: the fraction rests
    # on the donors whose call was decided.
    out["responder_fraction"] = (out["n_responders"] / determinate.where(determinate > 0)).astype(
        float
    )
    for name, which in (
        ("responders", d["responder"]),
        ("indeterminate_donors", d["indeterminate"]),
    ):
        sel = d[which.astype(bool)].assign(donor_id=lambda x: x["donor_id"].astype(str))
        names = sel.groupby(SUMMARY_KEY, sort=False, dropna=False)["donor_id"].agg(
            lambda v: " ".join(sorted(v))
        )
        out = out.merge(names.rename(name).reset_index(), on=SUMMARY_KEY, how="left")
        out[name] = out[name].fillna("").astype(object)
    # The tests per group, on plain arrays (pandas' per-group overhead would dominate).
    gid = groups.ngroup().to_numpy()
    order = np.argsort(gid, kind="stable")
    bounds = np.flatnonzero(np.diff(gid[order])) + 1
    lt_all, lc_all = d["_lt"].to_numpy(dtype=float)[order], d["_lc"].to_numpy(dtype=float)[order]
    n_g = len(out)
    res = np.full((n_g, 6), np.nan)
    notes = np.full(n_g, "", dtype=object)
    parts = list(zip(np.split(lt_all, bounds), np.split(lc_all, bounds), strict=True))
    vs, ps, ns = paired_wilcoxon_many(
        [lt - lc for lt, lc in parts], alternative=settings.alternative
    )
    for k, (lt, lc) in enumerate(parts):
        n_used = ns[k]
        gmr, lo, hi = geometric_mean_ratio(lt, lc, confidence=settings.confidence)
        res[k] = (gmr, lo, hi, vs[k], n_used, ps[k] if lt.size >= 2 else np.nan)
        if n_used == 0:
            notes[k] = (
                "no donor differs from its control (all values tied, e.g. all below the LLOQ)"
            )
        elif lt.size < 2:
            notes[k] = "one donor: no across-donor test"
    for j, name in enumerate(
        ["gmr", "gmr_ci_low", "gmr_ci_high", "wilcoxon_v", "wilcoxon_n", "p_value"]
    ):
        out[name] = res[:, j]
    out["wilcoxon_n"] = out["wilcoxon_n"].astype(int)
    out["note"] = notes
    out = out[_SUMMARY_COLUMNS]
    family = ["study_id", "assay_format", "incubation_h", "treatment", "treatment_concentration"]
    out["p_adjusted"] = np.nan
    for _, idx in out.groupby(family, sort=False, dropna=False).groups.items():
        out.loc[idx, "p_adjusted"] = adjust_pvalues(
            out.loc[idx, "p_value"].to_numpy(), settings.multiplicity
        )
    out["significant"] = (out["p_adjusted"] < settings.alpha) & (out["gmr"] > 1)
    out["multiplicity"] = settings.multiplicity
    out["incubation_h"] = out["incubation_h"].where(out["incubation_h"] >= 0)
    return out


def _moment_start(y: np.ndarray, exog: np.ndarray, groups: np.ndarray):
    """Starting values: OLS fixed effects and ANOVA-type variance components.

    The REML optimum does not depend on them; a start near it cuts statsmodels' default
    search several-fold (the optimiser otherwise starts from a unit variance ratio).
    """
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    beta, *_ = np.linalg.lstsq(exog, y, rcond=None)
    res = y - exog @ beta
    _, gid = np.unique(groups, return_inverse=True)
    n_g = np.bincount(gid)
    g_mean = np.bincount(gid, res) / n_g
    within = res - g_mean[gid]
    dof = max(len(y) - len(n_g) - exog.shape[1] + 1, 1)
    s2 = max(float(within @ within) / dof, 1e-12)
    tau = (
        max(float(np.var(g_mean, ddof=1)) - s2 / float(np.mean(n_g)), 1e-3 * s2)
        if len(n_g) > 1
        else s2
    )
    return MixedLMParams.from_components(fe_params=beta, cov_re=np.array([[tau / s2]]))


def _fit_one(y: np.ndarray, exog: np.ndarray, groups: np.ndarray):
    from statsmodels.regression.mixed_linear_model import MixedLM

    with _warnings.catch_warnings():
        # Boundary fits (donor variance 0) and convergence chatter are reported as
        # status, not as warnings on the console.
        _warnings.simplefilter("ignore")
        model = MixedLM(y, exog, groups=groups)
        start = _moment_start(y, exog, groups)
        # L-BFGS is the fastest; near a zero donor variance it can fail on a singular
        # step, where BFGS and then Powell (derivative-free) still converge.
        for method in ("lbfgs", "bfgs"):
            try:
                return model.fit(reml=True, method=method, start_params=start)
            except np.linalg.LinAlgError:
                continue
        return model.fit(reml=True, method="powell")


def _fit_job(job: tuple) -> tuple | str:
    """One mixed model: ``(beta, cov, status, donor_sd)``, or why it was not fitted."""
    y, X, groups = job
    try:
        fit = _fit_one(y, X, groups)
        beta = np.asarray(fit.fe_params)
        cov = np.asarray(fit.cov_params())[: len(beta), : len(beta)]
        status = "converged" if fit.converged else "not converged"
        donor_sd = float(np.sqrt(max(float(np.asarray(fit.cov_re).ravel()[0]), 0.0)))
    except (np.linalg.LinAlgError, ValueError) as exc:
        return "no variation (values tied, e.g. all at the LLOQ)" if np.ptp(y) == 0 else str(exc)
    return beta, cov, status, donor_sd


def mixed_models(responses: pd.DataFrame, settings: HazardSettings) -> pd.DataFrame:
    """Donor random-intercept models per treatment x analyte with several levels.

    One row per treatment x analyte x level (format, concentration) with ``ratio``
    (exp of the level's coefficient), ``ci_low``/``ci_high``, ``p_value`` of the level;
    and per treatment x analyte ``joint_p_value`` (Wald test of every level against the
    control), ``joint_p_adjusted`` (across analytes), ``donor_sd`` (the random intercept's
    SD, log scale), ``status``.
    """
    cols = [
        "study_id", "treatment", "analyte", "assay_format", "treatment_concentration", "ratio",
        "ci_low", "ci_high", "p_value", "joint_p_value", "joint_p_adjusted", "n_donors",
        "n_observations", "donor_sd", "status",
    ]  # fmt: skip
    if settings.mixed_model == "never" or responses.empty:
        return pd.DataFrame(columns=cols)
    r = responses.copy()
    r["incubation_h"] = r["incubation_h"].astype(float).fillna(-1.0)
    r["_fmt"] = r["assay_format"].astype(str) + "|" + r["incubation_h"].astype(str)
    with np.errstate(divide="ignore", invalid="ignore"):
        r["_lt"] = np.log(r["test_concentration"].astype(float))
        r["_lc"] = np.log(r["control_concentration"].astype(float))
    z = stats.norm.ppf(0.5 + settings.confidence / 2)
    out: list[tuple] = []
    jobs: list[tuple] = []
    meta: list[tuple] = []
    key = ["study_id", "treatment", "analyte"]
    # Two aggregations over the whole table, then plain arrays per model: pandas'
    # per-group overhead would otherwise cost as much as the fits.
    tests_all = (
        r.groupby([*key, "donor_id", "_fmt", "treatment_concentration"], sort=True)["_lt"]
        .mean()
        .reset_index()
    )
    ctrls_all = r.groupby([*key, "donor_id", "_fmt"], sort=True)["_lc"].mean().reset_index()
    t_groups = {k: idx for k, idx in tests_all.groupby(key, sort=False).indices.items()}
    c_groups = {k: idx for k, idx in ctrls_all.groupby(key, sort=False).indices.items()}
    T = {c: tests_all[c].to_numpy() for c in ("donor_id", "_fmt", "treatment_concentration", "_lt")}
    C = {c: ctrls_all[c].to_numpy() for c in ("donor_id", "_fmt", "_lc")}
    for (study, treatment, analyte), ti in t_groups.items():
        ci = c_groups.get((study, treatment, analyte), np.array([], dtype=int))
        t_fmt, t_conc = T["_fmt"][ti], T["treatment_concentration"][ti].astype(float)
        # A level is a format x concentration: each format keeps its own effects (a CD28
        # superagonist releases after high-density pre-culture only); the format's own
        # control is its reference through the format fixed effect.
        level_keys = sorted(set(zip(t_fmt.tolist(), t_conc.tolist(), strict=True)))
        n_donors = len(set(T["donor_id"][ti].tolist()))
        if len(level_keys) < 2 or n_donors < 2:
            continue
        fmts = sorted(set(t_fmt.tolist()))
        y = np.concatenate([T["_lt"][ti].astype(float), C["_lc"][ci].astype(float)])
        donors = np.concatenate([T["donor_id"][ti], C["donor_id"][ci]])
        fmt_all = np.concatenate([t_fmt, C["_fmt"][ci]])
        conc_all = np.concatenate([t_conc, np.full(len(ci), np.nan)])
        ok = np.isfinite(y)
        cols_x = [np.ones(len(y))]
        cols_x += [(fmt_all == f).astype(float) for f in fmts[1:]]
        level_cols = [((fmt_all == f) & (conc_all == c)).astype(float) for f, c in level_keys]
        X = np.column_stack(cols_x + level_cols)[ok]
        meta.append((study, treatment, analyte, level_keys, len(cols_x), n_donors, int(ok.sum())))
        jobs.append((y[ok], X, donors[ok]))
    for (study, treatment, analyte, level_keys, k0, n_donors, n_obs), fitted in zip(
        meta, [_fit_job(j) for j in jobs], strict=True
    ):
        if isinstance(fitted, str):
            out.append(
                (
                    study,
                    treatment,
                    analyte,
                    "",
                    np.nan,
                    *[np.nan] * 6,
                    n_donors,
                    n_obs,
                    np.nan,
                    f"not fitted: {fitted}",
                )
            )
            continue
        beta, cov, status, donor_sd = fitted
        b = beta[k0:]
        V = cov[k0:, k0:]
        try:
            chi2 = float(b @ np.linalg.solve(V, b))
            joint = float(stats.chi2.sf(chi2, len(b)))
        except np.linalg.LinAlgError:
            joint = np.nan
        se = np.sqrt(np.maximum(np.diag(V), 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            pz = 2 * stats.norm.sf(np.abs(b / se))
        for i, (f, c) in enumerate(level_keys):
            out.append(
                (study, treatment, analyte, f.split("|")[0], float(c), float(np.exp(b[i])),
                 float(np.exp(b[i] - z * se[i])), float(np.exp(b[i] + z * se[i])), float(pz[i]),
                 joint, np.nan, n_donors, n_obs, donor_sd, status)
            )  # fmt: skip
    res = pd.DataFrame(out, columns=cols)
    if res.empty:
        return res
    joint = res.drop_duplicates(["study_id", "treatment", "analyte"])
    for _, idx in joint.groupby(["study_id", "treatment"], sort=False).groups.items():
        adj = adjust_pvalues(joint.loc[idx, "joint_p_value"].to_numpy(), settings.multiplicity)
        m = dict(zip(joint.loc[idx, "analyte"], adj, strict=True))
        sel = (res["study_id"] == joint.loc[idx[0], "study_id"]) & (
            res["treatment"] == joint.loc[idx[0], "treatment"]
        )
        res.loc[sel, "joint_p_adjusted"] = res.loc[sel, "analyte"].map(m)
    return res
