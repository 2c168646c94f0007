"""The CRS Bayesian network fitted to the reference compound library.

The elicited network (:mod:`cytosafe.aop.bayes`, ``data/crs_bayes.toml``) gives a CD28
superagonist P(severe CRS) = 0.12, against TGN1412's 6 of 6 volunteers with severe CRS
(Suntharalingam et al. 2006). Here its conditional probability tables are *fitted*: the
elicited tables are the prior, the reference library (:mod:`cytosafe.reference`) is the
data.

Structure. The network of one modality (MIE -> key events -> CRS) becomes one network for
all modalities: a root node ``modality`` is a parent of ``mie`` (P(mie) = the modality's
``mie_prior``) and of every key event a modality's MIE links into (t_cell, myeloid,
endothelial); the downstream tables (cytokines, leak, crs) are shared by every modality,
as in the elicited file. Every table is a full table (one column per parent
configuration), no longer a noisy-OR.

Data. Each reference compound with a known clinical outcome and a modality of the
parameter file is a case. With ``case_weight = "compound"`` (the default of ``[fit]``)
every compound weighs 1, whatever its trial size, so that a 600-patient trial does not
outweigh TGN1412 (6 of 6 then counts as much as 1 of 1). A published incidence is a count
of subjects, and the outcome is binomial over them: with ``case_weight = "subjects"`` a
compound weighs as many subjects as its source reports, capped at ``max_subjects`` (100)
because the subjects of one trial share its dose, schedule and premedication and are not
independent draws of the modality's risk; a compound whose source gives no patient count
weighs one subject. The elicited prior's equivalent sample size is then counted in
subjects, a far weaker prior: the CD28-superagonist P(severe CRS) is 0.59 with 2
subjects per column but 0.53 with 2.5 and 0.30 with 6, so the option's answer for TGN1412
rests on the prior's weight (see ``crs_bayes.toml``). Its outcome is
observed as the published incidences: weight ``1 - any`` on ``none``, ``any - severe`` on
``non_severe``, ``severe`` on ``severe`` (fractions of the label's or trial's patients,
times the compound's weight); where the
grade >= 3 incidence is not given, the CRS share is observed as "CRS of unknown grade"
(likelihood on non_severe or severe); a compound with no CRS reported counts as incidence
0. A compound with CRS reported but no incidence published is left out of the fit (it
says P(CRS) > 0, not how large), and is still predicted in the validation table. The key
events are latent.

Fitting. Expectation-maximisation (Dempster, Laird & Rubin 1977): the E-step enumerates
every latent state of each case under the current tables (exact; 192 states); the M-step
is pgmpy's Bayesian parameter estimator (``BayesianEstimator``, ``prior_type =
"dirichlet"``, ``weighted = True``) with the elicited tables as pseudo-counts, the
conjugate Dirichlet prior of Heckerman, Geiger & Chickering (1995): each column's prior
counts are ``equivalent_sample_size x`` the elicited distribution (``[fit]`` of the
parameter file). A column the data do not reach stays at its elicited value exactly,
and is labelled ``elicited``; a column with at least ``min_weight`` compounds' worth of
expected data is labelled ``fitted to N reference compounds``.

Every output carries its basis: ``elicited`` or ``fitted to N reference compounds``.
The library's figures come from the cited publications; CytoSafe's probabilities support,
never replace, a toxicologist's judgement.

References: Dempster AP, Laird NM, Rubin DB. Maximum likelihood from incomplete data via
the EM algorithm. J R Stat Soc B. 1977;39:1-38. Heckerman D, Geiger D, Chickering DM.
Learning Bayesian networks: the combination of knowledge and statistical data. Mach
Learn. 1995;20:197-243.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from cytosafe.aop.bayes import BINARY_STATES, BayesParameters, load_bayes_parameters
from cytosafe.errors import InputError

__all__ = [
    "DISCLAIMER",
    "ELICITED",
    "FitSettings",
    "FittedCrsNetwork",
    "basis_label",
    "consistent_with_outcome",
    "fit_network",
    "leave_one_compound_out",
    "library_cases",
    "loo_markdown",
]

ELICITED = "elicited"
MODALITY = "modality"


def basis_label(n: int) -> str:
    """``elicited`` for no compound, else ``fitted to N reference compound(s)``."""
    if n <= 0:
        return ELICITED
    return f"fitted to {n} reference compound{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class FitSettings:
    """How the network is fitted (``[fit]`` of the parameter file)."""

    equivalent_sample_size: float = 2.0
    min_weight: float = 0.5
    max_iter: int = 200
    tolerance: float = 1e-6
    case_weight: str = "compound"
    max_subjects: int = 100

    def describe_weight(self) -> str:
        """The case weight in words (for every output of the fit)."""
        if self.case_weight == "compound":
            return "one case per compound, whatever its trial size"
        return (
            f"each compound weighs its subjects (the outcome is binomial over subjects), "
            f"at most {self.max_subjects}; one when its source gives no patient count"
        )


def _settings(params: BayesParameters) -> FitSettings:
    raw = params.fit or {}
    return FitSettings(
        equivalent_sample_size=float(raw.get("equivalent_sample_size", 2.0)),
        min_weight=float(raw.get("min_weight", 0.5)),
        max_iter=int(raw.get("max_iter", 200)),
        tolerance=float(raw.get("tolerance", 1e-6)),
        case_weight=str(raw.get("case_weight", "compound")),
        max_subjects=int(raw.get("max_subjects", 100)),
    )


def _subjects(patients: int | None, settings: FitSettings) -> int:
    """How many subjects a compound's outcome weighs (see the module notes)."""
    if settings.case_weight == "compound" or not patients:
        return 1
    return min(int(patients), settings.max_subjects)


# -- structure --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Structure:
    order: tuple[str, ...]  # topological, ``modality`` first
    parents: dict[str, tuple[str, ...]]
    states: dict[str, tuple[str, ...]]
    modalities: tuple[str, ...]
    outcome: str


def _structure(params: BayesParameters) -> _Structure:
    import networkx as nx

    outcome = next(n.key for n in params.nodes.values() if n.severe_given_crs is not None)
    linked = {c for m in params.modalities.values() for c, p in m.links.items() if p.value > 0}
    parents: dict[str, tuple[str, ...]] = {MODALITY: (), "mie": (MODALITY,)}
    for node in params.nodes:
        if node == "mie":
            continue
        shared = tuple(p for (p, c) in params.links if c == node)
        parents[node] = ((MODALITY, "mie") if node in linked else ()) + shared
    g = nx.DiGraph([(p, c) for c, ps in parents.items() for p in ps])
    order = tuple(nx.topological_sort(g))
    states = {MODALITY: tuple(params.modalities)}
    states.update({k: n.states for k, n in params.nodes.items()})
    return _Structure(order, parents, states, tuple(params.modalities), outcome)


def _elicited_table(params: BayesParameters, s: _Structure, node: str) -> np.ndarray:
    """The elicited P(node | parents) as an array ``(card, *parent cards)`` in
    ``s.parents[node]`` order (the noisy-OR of ``crs_bayes.toml``, spelled out)."""
    parents = s.parents[node]
    cards = [len(s.states[p]) for p in parents]
    out = np.zeros((len(s.states[node]), *cards))
    if node == MODALITY:
        return np.full(len(s.modalities), 1.0 / len(s.modalities))
    spec = params.nodes[node]
    for config in itertools.product(*[range(c) for c in cards]):
        state = dict(zip(parents, config, strict=True))
        if node == "mie":
            prior = params.modalities[s.modalities[state[MODALITY]]].mie_prior.value
            out[(slice(None), *config)] = [1 - prior, prior]
            continue
        absent = 1 - spec.leak.value
        for p in parents:
            if p in (MODALITY, "mie"):
                continue
            if state[p] == 1:
                absent *= 1 - params.links[(p, node)].value
        if MODALITY in parents and state["mie"] == 1:
            link = params.modalities[s.modalities[state[MODALITY]]].links.get(node)
            absent *= 1 - (link.value if link is not None else 0.0)
        present = 1 - absent
        if spec.severe_given_crs is None:
            out[(slice(None), *config)] = [absent, present]
        else:
            share = spec.severe_given_crs[BINARY_STATES[state[spec.severity_parent]]].value
            out[(slice(None), *config)] = [absent, present * (1 - share), present * share]
    return out


# -- cases ------------------------------------------------------------------------------------
def library_cases(
    library=None, params: BayesParameters | None = None, *, confirmed_only: bool = False
) -> pd.DataFrame:
    """The reference compounds as fitting cases: one row per compound x observed outcome
    part, with ``weight`` (the part's share times the compound's ``subjects``, see the
    module notes) and the outcome ``likelihood`` (none, non_severe, severe).

    Compounds whose modality has no entry in the parameter file, or whose clinical outcome
    is unknown (or unconfirmed, with ``confirmed_only``), are left out.
    """
    from cytosafe.reference import load_library

    lib = library or load_library()
    params = params or load_bayes_parameters()
    settings = _settings(params)
    rows = []
    for c in lib.compounds.values():
        o = c.clinical
        if c.modality not in params.modalities or o.crs_any is None:
            continue
        if confirmed_only and not o.confirmed:
            continue
        parts: list[tuple[float, tuple[float, float, float], str]] = []
        if o.crs_any_percent is not None:
            a = o.crs_any_percent / 100
            s = None
            if o.crs_severe_percent is not None:
                s = o.crs_severe_percent / 100
            elif o.crs_severe is False:
                s = 0.0
            parts.append((1 - a, (1, 0, 0), "no CRS (published incidence)"))
            if s is None:
                parts.append((a, (0, 1, 1), "CRS of unknown grade (published incidence)"))
            else:
                parts.append((a - s, (0, 1, 0), "CRS below grade 3 (published incidence)"))
                parts.append((s, (0, 0, 1), "CRS of grade >= 3 (published incidence)"))
        elif not o.crs_any:
            parts.append((1.0, (1, 0, 0), "no CRS reported (incidence 0)"))
        else:
            # CRS reported without an incidence says P(CRS) > 0, not how large: such a
            # compound would count as a patient certain to have CRS, so it is left out.
            continue
        subjects = _subjects(o.patients, settings)
        for weight, like, what in parts:
            if weight > 0:
                rows.append(
                    {
                        "compound": c.key,
                        "modality": c.modality,
                        "subjects": subjects,
                        "weight": float(weight) * subjects,
                        "likelihood": like,
                        "observed": what,
                        "source": o.source,
                        "confirmed": o.confirmed,
                    }
                )
    columns = [
        "compound", "modality", "subjects", "weight", "likelihood", "observed", "source",
        "confirmed",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# -- the fitted network -----------------------------------------------------------------------
class FittedCrsNetwork:
    """CPTs of the all-modality CRS network (elicited or fitted) and exact inference.

    Use :func:`fit_network` to build one; ``FittedCrsNetwork.elicited(params)`` gives the
    elicited tables in the same form (its probabilities equal
    :class:`~cytosafe.aop.CrsBayesNetwork`'s).
    """

    def __init__(
        self,
        params: BayesParameters,
        tables: dict[str, np.ndarray],
        weights: dict[str, np.ndarray],
        compounds: tuple[str, ...],
        settings: FitSettings,
        iterations: int = 0,
    ) -> None:
        self.params = params
        self.structure = _structure(params)
        self.tables = tables
        self.weights = weights  # expected compounds' worth of data per column
        self.compounds = compounds
        self.settings = settings
        self.iterations = iterations
        self._states = _joint_states(self.structure)

    @classmethod
    def elicited(cls, params: BayesParameters | None = None) -> FittedCrsNetwork:
        params = params or load_bayes_parameters()
        s = _structure(params)
        tables = {n: _elicited_table(params, s, n) for n in s.order if n != MODALITY}
        weights = {n: np.zeros(t.shape[1:]) for n, t in tables.items()}
        return cls(params, tables, weights, (), _settings(params))

    @property
    def basis(self) -> str:
        return basis_label(len(self.compounds))

    def modality_compounds(self, modality: str) -> int:
        """How many fitting compounds have this modality."""
        cases = getattr(self, "_cases", None)
        if cases is None or cases.empty:
            return 0
        return int(cases.loc[cases["modality"] == modality, "compound"].nunique())

    def _joint(self, modality: str) -> np.ndarray:
        """P(every latent state | modality) over ``self._states``."""
        s = self.structure
        if modality not in s.modalities:
            raise InputError(
                f"no Bayesian-network parameters for modality {modality!r}",
                file=self.params.source,
                field="modality",
                expected=", ".join(s.modalities),
            )
        return _joint(s, self.tables, self._states, s.modalities.index(modality))

    def probability(self, modality: str, evidence: dict | None = None) -> dict:
        """P(CRS), P(severe CRS) for a modality, optionally given key-event evidence
        (``{node: "present" | "absent"}``), with the basis of the tables: ``basis`` for
        the network (``elicited`` or ``fitted to N reference compounds``) and
        ``modality_basis`` for the modality's own tables (``elicited`` when the library
        has no compound of that modality in the fit)."""
        s = self.structure
        prob = self._joint(modality)
        col = {n: i for i, n in enumerate(s.order[1:])}
        for node, value in (evidence or {}).items():
            if node not in col or value not in s.states[node]:
                raise InputError(
                    f"{node}={value!r} is not a node state of the network",
                    field="evidence",
                    expected=", ".join(col),
                )
            prob = prob * (self._states[:, col[node]] == s.states[node].index(value))
        total = prob.sum()
        if total <= 0:
            raise InputError("the evidence has probability zero", field="evidence")
        out = self._states[:, col[s.outcome]]
        n = self.modality_compounds(modality)
        return {
            "p_crs": float(prob[out > 0].sum() / total),
            "p_severe": float(prob[out == 2].sum() / total),
            "basis": self.basis,
            "modality_basis": basis_label(n) if n else ELICITED,
        }

    def parameters_table(self) -> pd.DataFrame:
        """Every column of every table: node, parent configuration, P(each state), the
        expected compounds' worth of data behind it and its basis."""
        s = self.structure
        rows = []
        for node, table in self.tables.items():
            parents = s.parents[node]
            cards = table.shape[1:]
            for config in itertools.product(*[range(c) for c in cards]):
                w = float(self.weights[node][config]) if cards else float(self.weights[node])
                n = self._column_compounds(node, config)
                fitted = w >= self.settings.min_weight and n > 0
                row = {
                    "node": node,
                    "parents": ", ".join(
                        f"{p}={s.states[p][i]}" for p, i in zip(parents, config, strict=True)
                    ),
                    "data_weight": w,
                    "basis": basis_label(n) if fitted else ELICITED,
                }
                for k, state in enumerate(s.states[node]):
                    row[f"p_{state}"] = float(table[(k, *config)])
                rows.append(row)
        return pd.DataFrame(rows)

    def _column_compounds(self, node: str, config: tuple) -> int:
        per = getattr(self, "_column_sets", {})
        return len(per.get((node, config), ()))


def _joint_states(s: _Structure) -> np.ndarray:
    nodes = s.order[1:]
    return np.array(
        list(itertools.product(*[range(len(s.states[n])) for n in nodes])), dtype=int
    ).reshape(-1, len(nodes))


@cache
def _pgmpy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import BayesianEstimator
        from pgmpy.models import DiscreteBayesianNetwork
    return BayesianEstimator, DiscreteBayesianNetwork


def fit_network(
    params: BayesParameters | None = None,
    library=None,
    *,
    exclude: tuple[str, ...] | list[str] = (),
    cases: pd.DataFrame | None = None,
    confirmed_only: bool = False,
) -> FittedCrsNetwork:
    """Fit the network's tables to the reference library (elicited tables as the prior).

    The EM iterations run on the expected counts in NumPy (the Dirichlet posterior mean,
    ``(pseudo-counts + expected counts) / column total``); the final M-step is pgmpy's
    ``BayesianEstimator`` (``prior_type="dirichlet"``, ``weighted=True``) on the
    completed, weighted cases, which computes the same quantity.

    Parameters
    ----------
    params:
        The parameter file (:func:`~cytosafe.aop.load_bayes_parameters`); its ``[fit]``
        section sets the prior's equivalent sample size.
    library:
        The reference library (the shipped one by default).
    exclude:
        Compound keys to leave out (leave-one-compound-out validation).
    cases:
        Fitting cases (:func:`library_cases`) instead of the library's.
    confirmed_only:
        Use only compounds whose clinical outcome is confirmed against its source.

    Returns
    -------
    FittedCrsNetwork

    Examples
    --------
    >>> net = fit_network()
    >>> net.basis
    'fitted to 8 reference compounds'
    """
    params = params or load_bayes_parameters()
    if cases is None:
        cases = library_cases(library, params, confirmed_only=confirmed_only)
    cases = cases[~cases["compound"].isin(list(exclude))].reset_index(drop=True)
    prior = FittedCrsNetwork.elicited(params)
    prior._cases = cases
    settings, s = prior.settings, prior.structure
    if cases.empty:
        return prior
    nodes = s.order[1:]
    pseudo = {n: settings.equivalent_sample_size * _elicited_table(params, s, n) for n in nodes}
    tables = dict(prior.tables)
    last, iterations = -np.inf, 0
    total = float(cases["weight"].sum())
    while iterations < settings.max_iter:
        iterations += 1
        counts, loglik, _ = _expected_counts(prior, tables, cases, complete=False)
        tables = {n: (pseudo[n] + counts[n]) / (pseudo[n] + counts[n]).sum(axis=0) for n in nodes}
        # per unit of data, so that weighing subjects instead of compounds does not
        # tighten the criterion a hundredfold
        if abs(loglik - last) < settings.tolerance * max(total, 1.0):
            break
        last = loglik
    counts, _, completed = _expected_counts(prior, tables, cases)
    tables = _pgmpy_m_step(s, pseudo, completed)
    net = FittedCrsNetwork(
        params,
        tables,
        {n: counts[n].sum(axis=0) for n in nodes},
        tuple(sorted(set(cases["compound"]))),
        settings,
        iterations,
    )
    net._cases = cases
    net._column_sets = _column_compounds(prior, tables, cases)
    return net


def _expected_counts(
    net: FittedCrsNetwork,
    tables: dict[str, np.ndarray],
    cases: pd.DataFrame,
    *,
    complete: bool = True,
) -> tuple[dict[str, np.ndarray], float, pd.DataFrame | None]:
    """E-step: expected counts of every table cell, the log-likelihood, and (with
    ``complete``) the completed cases (one row per case x latent state, with its
    posterior ``_weight``); the EM iterations need only the counts."""
    s, states = net.structure, net._states
    nodes = s.order[1:]
    col = {n: i for i, n in enumerate(nodes)}
    outcome_col = states[:, col[s.outcome]]
    counts = {n: np.zeros_like(t) for n, t in tables.items()}
    loglik, frames = 0.0, []
    joints: dict[int, np.ndarray] = {}  # the same for every case of a modality
    posterior: dict[int, np.ndarray] = {}
    for modality, likelihood, weight in zip(
        cases["modality"], cases["likelihood"], cases["weight"], strict=True
    ):
        m = s.modalities.index(modality)
        if m not in joints:
            joints[m] = _joint(s, tables, states, m)
        post = joints[m] * np.asarray(likelihood, float)[outcome_col]
        total = post.sum()
        if total <= 0:
            continue
        loglik += weight * np.log(total)
        w = weight * post / total
        # a cell's index depends only on the modality and the state: add per modality
        posterior[m] = posterior.get(m, 0.0) + w
        if complete:
            keep = w > 0
            frame = pd.DataFrame(states[keep], columns=list(nodes))
            frame[MODALITY] = m
            frame["_weight"] = w[keep]
            frames.append(frame)
    for m, w in posterior.items():
        for n in nodes:
            idx = [states[:, col[n]]] + [
                np.full(len(states), m) if p == MODALITY else states[:, col[p]]
                for p in s.parents[n]
            ]
            np.add.at(counts[n], tuple(idx), w)
    return counts, loglik, pd.concat(frames, ignore_index=True) if complete else None


def _joint(s: _Structure, tables: dict[str, np.ndarray], states: np.ndarray, m: int) -> np.ndarray:
    col = {n: i for i, n in enumerate(s.order[1:])}
    prob = np.ones(len(states))
    for n in s.order[1:]:
        idx = [states[:, col[n]]]
        for p in s.parents[n]:
            idx.append(np.full(len(states), m) if p == MODALITY else states[:, col[p]])
        prob = prob * tables[n][tuple(idx)]
    return prob


def _pgmpy_m_step(
    s: _Structure, pseudo: dict[str, np.ndarray], completed: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The M-step by pgmpy: Bayesian estimation with Dirichlet pseudo-counts on the
    completed, weighted cases."""
    estimator_cls, network_cls = _pgmpy()
    keys = [*s.order]
    data = completed.groupby(keys, as_index=False)["_weight"].sum()
    for n in s.order:
        data[n] = [str(s.states[n][i]) for i in data[n]]
    model = network_cls([(p, c) for c, ps in s.parents.items() for p in ps])
    names = {n: [str(x) for x in s.states[n]] for n in s.order}
    tables = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = estimator_cls(model, data, state_names=names)
        for n in s.order[1:]:
            cpd = est.estimate_cpd(
                n,
                prior_type="dirichlet",
                pseudo_counts=_to_pgmpy(pseudo[n], s, n, est),
                weighted=True,
            )
            tables[n] = _from_pgmpy(cpd, s, n)
    return tables


def _column_compounds(
    net: FittedCrsNetwork, tables: dict[str, np.ndarray], cases: pd.DataFrame
) -> dict[tuple[str, tuple], set[str]]:
    """The compounds with at least 0.01 of expected weight in each table column."""
    nodes = net.structure.order[1:]
    out: dict[tuple[str, tuple], set[str]] = {}
    for key, group in cases.groupby("compound", sort=False):
        counts, _, _ = _expected_counts(net, tables, group, complete=False)
        for n in nodes:
            per_column = counts[n].sum(axis=0)
            for config in zip(*np.nonzero(per_column >= 0.01), strict=True):
                out.setdefault((n, tuple(int(i) for i in config)), set()).add(key)
    return out


def _evidence_order(est, s: _Structure, node: str) -> list[str]:
    # pgmpy orders a CPD's evidence its own way; ask it once per node
    cache_ = est.__dict__.setdefault("_cytosafe_order", {})
    if node not in cache_:
        cards = [len(s.states[p]) for p in s.parents[node]]
        probe = np.ones((len(s.states[node]), int(np.prod(cards)) if cards else 1))
        cpd = est.estimate_cpd(node, prior_type="dirichlet", pseudo_counts=probe, weighted=True)
        cache_[node] = list(cpd.variables[1:])
    return cache_[node]


def _to_pgmpy(pseudo: np.ndarray, s: _Structure, node: str, est) -> np.ndarray:
    order = _evidence_order(est, s, node)
    axes = [0] + [1 + list(s.parents[node]).index(p) for p in order]
    return np.transpose(pseudo, axes).reshape(len(s.states[node]), -1)


def _from_pgmpy(cpd, s: _Structure, node: str) -> np.ndarray:
    order = list(cpd.variables[1:])
    values = np.asarray(cpd.get_values(), dtype=float).reshape(
        [len(s.states[node])] + [len(s.states[p]) for p in order]
    )
    # pgmpy's state names are strings; ours are indices in s.states order
    for axis, var in enumerate([node, *order]):
        names = [str(x) for x in cpd.state_names[var]]
        perm = [names.index(str(x)) for x in s.states[var]]
        values = np.take(values, perm, axis=axis)
    axes = [0] + [1 + order.index(p) for p in s.parents[node]]
    return np.transpose(values, axes)


def _column_weights(data: pd.DataFrame, s: _Structure, node: str) -> np.ndarray:
    parents = s.parents[node]
    cards = [len(s.states[p]) for p in parents]
    out = np.zeros(cards) if cards else np.zeros(())
    if not parents:
        out[()] = data["_weight"].sum()
        return out
    codes = [
        data[p].map({str(x): i for i, x in enumerate(s.states[p])}).to_numpy(dtype=int)
        for p in parents
    ]
    np.add.at(out, tuple(codes), data["_weight"].to_numpy())
    return out


# -- validation -------------------------------------------------------------------------------
def _consistent(p: float, o) -> bool | None:
    k = _severe_count(o)
    return None if k is None else consistent_with_outcome(p, k, o.patients)


def leave_one_compound_out(
    params: BayesParameters | None = None,
    library=None,
    *,
    confirmed_only: bool = False,
) -> pd.DataFrame:
    """Predicted P(CRS) and P(severe CRS) for each reference compound against what was
    observed: elicited, fitted to all compounds, and fitted without the compound itself.

    Every library compound with a known outcome and a modality of the parameter file is
    listed; one not used in the fit (CRS reported without an incidence) has its
    ``left_out`` prediction equal to the fitted one.

    Columns: ``compound, name, modality, used_in_fit, observed_crs_any, observed_crs_severe,
    observed_crs_any_percent, observed_crs_severe_percent, patients, clinical_source,
    clinical_confirmed, p_crs_elicited, p_severe_elicited, p_crs_fitted, p_severe_fitted,
    p_crs_left_out, p_severe_left_out, severe_consistent_fitted, severe_consistent_left_out,
    basis_fitted, basis_left_out, same_modality_compounds_left_out``. ``severe_consistent_*``:
    whether the compound's published grade >= 3 count lies inside the central 95 % interval
    of a binomial over its patients with the predicted P(severe CRS)
    (:func:`consistent_with_outcome`); empty without a count.
    """
    from cytosafe.reference import load_library

    params = params or load_bayes_parameters()
    lib = library or load_library()
    cases = library_cases(lib, params, confirmed_only=confirmed_only)
    elicited = FittedCrsNetwork.elicited(params)
    full = fit_network(params, cases=cases)
    used = set(cases["compound"])
    rows = []
    for key, c in lib.compounds.items():
        if c.modality not in params.modalities or c.clinical.crs_any is None:
            continue
        loo = fit_network(params, cases=cases, exclude=(key,)) if key in used else full
        e, f, o = (
            elicited.probability(c.modality),
            full.probability(c.modality),
            loo.probability(c.modality),
        )
        rows.append(
            {
                "compound": key,
                "name": c.name,
                "modality": c.modality,
                "used_in_fit": key in used,
                "observed_crs_any": c.clinical.crs_any,
                "observed_crs_severe": c.clinical.crs_severe,
                "observed_crs_any_percent": c.clinical.crs_any_percent,
                "observed_crs_severe_percent": c.clinical.crs_severe_percent,
                "patients": c.clinical.patients,
                "clinical_source": c.clinical.source,
                "clinical_confirmed": c.clinical.confirmed,
                "p_crs_elicited": e["p_crs"],
                "p_severe_elicited": e["p_severe"],
                "p_crs_fitted": f["p_crs"],
                "p_severe_fitted": f["p_severe"],
                "p_crs_left_out": o["p_crs"],
                "p_severe_left_out": o["p_severe"],
                "severe_consistent_fitted": _consistent(f["p_severe"], c.clinical),
                "severe_consistent_left_out": _consistent(o["p_severe"], c.clinical),
                "basis_fitted": f["basis"],
                "basis_left_out": o["basis"],
                "same_modality_compounds_left_out": loo.modality_compounds(c.modality),
            }
        )
    return pd.DataFrame(rows)


def consistent_with_outcome(p: float, severe: int, patients: int, level: float = 0.95) -> bool:
    """Whether ``severe`` of ``patients`` lies inside the central ``level`` interval of a
    binomial with probability ``p``: P(X >= severe) and P(X <= severe) both at least
    ``(1 - level) / 2``. For TGN1412's 6 of 6 that is p**6 >= 0.025, i.e. p >= 0.54.

    Examples
    --------
    >>> consistent_with_outcome(0.59, 6, 6), consistent_with_outcome(0.24, 6, 6)
    (True, False)
    """
    from scipy.stats import binom

    tail = (1 - level) / 2
    upper = float(binom.sf(severe - 1, patients, p))  # P(X >= severe)
    lower = float(binom.cdf(severe, patients, p))  # P(X <= severe)
    return upper >= tail and lower >= tail


def _severe_count(o) -> int | None:
    if o.patients is None or o.crs_severe_percent is None:
        return None
    return round(o.crs_severe_percent * o.patients / 100)


#: Said in every output of the fitted network.
DISCLAIMER = (
    "The reference library's figures come from the cited publications; the network's "
    "probabilities, elicited or fitted, support, never replace, a toxicologist's judgement."
)


def _pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:g} %"


def _p(x: float) -> str:
    return f"{x:.2f}"


def loo_markdown(table: pd.DataFrame, net: FittedCrsNetwork) -> str:
    """The leave-one-compound-out table in Markdown, with what each column means, the
    prior's weight, TGN1412's figures and the disclaimer."""
    es = net.settings.equivalent_sample_size
    unit = "compounds" if net.settings.case_weight == "compound" else "subjects"
    lines = [
        "# The CRS Bayesian network fitted to the reference library",
        "",
        f"**{DISCLAIMER}**",
        "",
        f"Tables: the elicited values of `{Path(net.params.source).name}` as a Dirichlet "
        f"prior (equivalent sample size {es:g} {unit} per column), {net.basis} as data "
        f"({net.settings.describe_weight()}; EM, {net.iterations} iterations; pgmpy "
        "BayesianEstimator for the final M-step). A column reached by less than "
        f"{net.settings.min_weight:g} {unit}' worth of data stays elicited.",
        "",
        "P(severe CRS) and P(CRS) per compound's modality: *elicited* (the tables as "
        "curated), *fitted* (to every compound with a published incidence) and *left out* "
        "(fitted without the compound itself). Observed: the label's or pivotal trial's "
        "incidence (any grade; grade >= 3).",
        "",
        "| compound | modality | observed CRS | observed grade >= 3 | P(severe) elicited | "
        "fitted | left out | P(CRS) elicited | fitted | left out | in fit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        any_ = (
            _pct(r.observed_crs_any_percent)
            if not pd.isna(r.observed_crs_any_percent)
            else ("yes" if r.observed_crs_any else "no")
        )
        sev = (
            _pct(r.observed_crs_severe_percent)
            if not pd.isna(r.observed_crs_severe_percent)
            else (
                "unknown"
                if r.observed_crs_severe is None
                else "yes"
                if r.observed_crs_severe
                else "no"
            )
        )
        lines.append(
            f"| {r.name} | {r.modality} | {any_} | {sev} | {_p(r.p_severe_elicited)} | "
            f"{_p(r.p_severe_fitted)} | {_p(r.p_severe_left_out)} | {_p(r.p_crs_elicited)} | "
            f"{_p(r.p_crs_fitted)} | {_p(r.p_crs_left_out)} | "
            f"{'yes' if r.used_in_fit else 'no (no incidence published)'} |"
        )
    tgn = table[table["compound"] == "tgn1412"]
    if len(tgn):
        t = tgn.iloc[0]

        def verdict(p: float) -> str:
            return "consistent" if consistent_with_outcome(p, 6, 6) else "not consistent"

        lines += [
            "",
            f"TGN1412 (CD28 superagonist; 6 of 6 volunteers with severe CRS, "
            f"Suntharalingam et al. 2006): P(severe CRS) {_p(t.p_severe_elicited)} elicited "
            f"({verdict(t.p_severe_elicited)}), {_p(t.p_severe_fitted)} fitted "
            f"({verdict(t.p_severe_fitted)}), {_p(t.p_severe_left_out)} when left out "
            f"({verdict(t.p_severe_left_out)}). Consistent means that 6 of 6 lies inside the "
            "central 95 % interval of a binomial over 6 subjects with that probability: "
            "P(6 of 6) = p^6 >= 0.025, i.e. p >= 0.54. It is the library's only CD28 "
            "superagonist, so leaving it out leaves its modality's tables elicited: the "
            "library cannot predict it from other compounds.",
        ]
    lines += ["", DISCLAIMER, ""]
    return "\n".join(lines)
