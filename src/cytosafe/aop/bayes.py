"""Quantitative CRS AOP: a Bayesian network over the key events (pgmpy).

The network has one binary node per key event of the CRS AOP (``absent`` / ``present``),
a node for the modality's molecular initiating event, and a three-state adverse outcome
(``none`` / ``non_severe`` / ``severe``; severe = ASTCT grade >= 3). Its conditional
probability tables are noisy-ORs whose parameters (leaks, link probabilities, the
probability of severe CRS given CRS) come from a data file, ``data/crs_bayes.toml`` by
default, each with a plausible interval, citations and a status; a user replaces them
with their own file.

:meth:`CrsBayesNetwork.probability` gives P(CRS) and P(severe CRS) given any key-event
evidence; :meth:`~CrsBayesNetwork.information_value` gives the expected information one
more assay brings about the outcome (mutual information, bits) and how far it is expected
to move P(CRS); :meth:`~CrsBayesNetwork.probability_interval` propagates the parameter
intervals by Monte Carlo over exact enumeration.

Examples
--------
>>> net = CrsBayesNetwork.for_modality("car_t")
>>> before = net.probability()["p_crs"]
>>> after = net.probability({"ke_vascular_leak": "present"})["p_crs"]
>>> after > before
True
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from cytosafe.assays.references import load_references
from cytosafe.data import Fields, entries, read_toml, unique_keys
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

__all__ = [
    "BINARY_STATES",
    "ELICITED",
    "OUTCOME_STATES",
    "AssaySpec",
    "BayesParameters",
    "CrsBayesNetwork",
    "load_bayes_parameters",
]

BINARY_STATES = ("absent", "present")
#: Every output of the elicited network says so (:mod:`cytosafe.aop.fit` fits it).
ELICITED = "elicited"
_FIT_KEYS = {
    "equivalent_sample_size", "min_weight", "max_iter", "tolerance", "citations", "status",
    "note", "method", "case_weight", "max_subjects",
}  # fmt: skip
#: How a reference compound's outcome weighs in the fit (``[fit] case_weight``).
CASE_WEIGHTS = ("subjects", "compound")
OUTCOME_STATES = ("none", "non_severe", "severe")


@dataclass(frozen=True)
class Param:
    """A probability with its plausible interval and sources."""

    value: float
    interval: tuple[float, float]
    citations: tuple[str, ...] = ()
    status: str = "unconfirmed"


@dataclass(frozen=True)
class BayesNode:
    key: str
    event: str
    leak: Param
    severity_parent: str | None = None
    severe_given_crs: dict[str, Param] | None = None

    @property
    def states(self) -> tuple[str, ...]:
        return OUTCOME_STATES if self.severe_given_crs is not None else BINARY_STATES


@dataclass(frozen=True)
class ModalityPrior:
    key: str
    mie_prior: Param
    links: dict[str, Param]


@dataclass(frozen=True)
class AssaySpec:
    """An observation of one node: a positive result with P = sensitivity if present."""

    key: str
    name: str
    node: str
    sensitivity: float
    specificity: float
    citations: tuple[str, ...] = ()
    status: str = "unconfirmed"


@dataclass(frozen=True)
class BayesParameters:
    version: str
    nodes: dict[str, BayesNode]
    links: dict[tuple[str, str], Param]
    modalities: dict[str, ModalityPrior]
    assays: dict[str, AssaySpec]
    detection_sensitivity: dict[str, float]
    detection_specificity: float
    source: str
    fit: dict | None = None


def load_bayes_parameters(path: str | Path | None = None) -> BayesParameters:
    """Load and validate the network's parameters (the shipped file by default).

    Raises
    ------
    InputError
        A malformed entry (probability outside [0, 1], a value outside its interval, an
        unknown node, a cycle), named by file, entry and field.
    """
    if path is None:
        return _shipped()
    return _load(Path(path))


@cache
def _shipped() -> BayesParameters:
    return _load(data_path("crs_bayes.toml"))


def _param(
    f: Fields, value_field: str, interval_field: str, known, *, value=None, interval=None
) -> Param:
    v = f.number(value_field, lo=0, hi=1) if value is None else value
    iv = f.get(interval_field, list) if interval is None else interval
    if (
        len(iv) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in iv)
        or not 0 <= iv[0] <= v <= iv[1] <= 1
    ):
        f.fail(
            f"interval {iv} does not hold the value {v}",
            field=interval_field,
            expected="[low, high] with 0 <= low <= value <= high <= 1",
        )
    return Param(float(v), (float(iv[0]), float(iv[1])), f.citations(known), f.status())


def _load(path: Path) -> BayesParameters:
    known = load_references().__contains__
    data = read_toml(path, schema="cytosafe.bayes")
    nodes: dict[str, BayesNode] = {}
    for key, f in unique_keys(entries(data, "node", path)).items():
        sev = None
        sev_parent = f.text("severity_parent", default=None)
        if "severe_given_crs" in f.table:
            values = f.get("severe_given_crs", dict)
            intervals = f.get("severe_intervals", dict)
            sev = {}
            for state in BINARY_STATES:
                if state not in values or state not in intervals:
                    f.fail(
                        f"no value for state {state!r}",
                        field="severe_given_crs",
                        expected="absent and present",
                    )
                v = values[state]
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                    f.fail(
                        f"{v!r} is not a probability",
                        field="severe_given_crs",
                        expected="a number in [0, 1]",
                    )
                sev[state] = _param(
                    f, "", "severe_intervals", known, value=float(v), interval=intervals[state]
                )
            if sev_parent is None:
                f.fail("severe_given_crs needs a severity_parent", field="severity_parent")
        nodes[key] = BayesNode(
            key=key,
            event=f.text("event"),
            leak=_param(f, "leak", "interval", known),
            severity_parent=sev_parent,
            severe_given_crs=sev,
        )
    outcomes = [n for n in nodes.values() if n.severe_given_crs is not None]
    if len(outcomes) != 1:
        raise InputError(
            f"{len(outcomes)} outcome nodes",
            file=str(path),
            field="node.severe_given_crs",
            expected="exactly one node with severe_given_crs",
        )
    if "mie" not in nodes:
        raise InputError(
            "no node 'mie'", file=str(path), field="node", expected="a node with key 'mie'"
        )
    links: dict[tuple[str, str], Param] = {}
    for f in entries(data, "link", path):
        parent, child = f.choice("parent", nodes), f.choice("child", nodes)
        if child == "mie":
            f.fail("a link into the MIE", field="child", expected="a key-event node")
        if (parent, child) in links:
            f.fail(f"link {parent} -> {child} listed twice", field="child")
        links[(parent, child)] = _param(f, "p", "interval", known)
    modalities: dict[str, ModalityPrior] = {}
    for key, f in unique_keys(entries(data, "modality", path)).items():
        values, intervals = f.get("links", dict), f.get("intervals", dict)
        mlinks = {}
        for child, v in values.items():
            if child not in nodes or child == "mie":
                f.fail(f"link to unknown node {child!r}", field="links", expected=", ".join(nodes))
            if child not in intervals:
                f.fail(f"no interval for {child!r}", field="intervals")
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                f.fail(f"{v!r} is not a probability", field="links", expected="a number in [0, 1]")
            mlinks[child] = _param(
                f, "", "intervals", known, value=float(v), interval=intervals[child]
            )
        modalities[key] = ModalityPrior(
            key=key,
            mie_prior=_param(f, "mie_prior", "mie_prior_interval", known),
            links=mlinks,
        )
    out = outcomes[0]
    if out.severity_parent not in nodes or (out.severity_parent, out.key) not in links:
        raise InputError(
            f"severity parent {out.severity_parent!r} is not a parent of {out.key!r}",
            file=str(path),
            field="node.severity_parent",
            expected="a node linked into the outcome",
        )
    g = nx.DiGraph(list(links))
    if not nx.is_directed_acyclic_graph(g):
        raise InputError(
            "the links form a cycle", file=str(path), field="link", expected="an acyclic network"
        )
    assays = {}
    for key, f in unique_keys(entries(data, "assay", path, required=False)).items():
        assays[key] = AssaySpec(
            key=key,
            name=f.text("name"),
            node=f.choice("node", nodes),
            sensitivity=f.number("sensitivity", lo=0, hi=1),
            specificity=f.number("specificity", lo=0, hi=1),
            citations=f.citations(known),
            status=f.status(),
        )
    # [detection] maps a CRA format's detection level to an assay sensitivity; a file
    # without it gets no format-based assays (only its own [[assay]] entries).
    sens: dict[str, float] = {}
    spec = 0.9
    if "detection" in data:
        det = Fields(data["detection"], path, "detection")
        for level, value in det.get("sensitivity", dict).items():
            if (
                level not in ("yes", "weak", "no")
                or isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 1
            ):
                det.fail(
                    f"{level} = {value!r}",
                    field="sensitivity",
                    expected="yes / weak / no = a probability",
                )
            sens[level] = float(value)
        spec = det.number("specificity", lo=0, hi=1)
        det.citations(known)
        det.status()
    fit = None
    if "fit" in data:
        ff = Fields(data["fit"], path, "fit")
        unknown = sorted(set(ff.table) - _FIT_KEYS)
        if unknown:
            ff.fail(
                f"unknown field {unknown[0]!r}",
                field=unknown[0],
                expected=", ".join(sorted(_FIT_KEYS)),
            )
        fit = {
            "equivalent_sample_size": ff.number("equivalent_sample_size", lo=0),
            "min_weight": ff.number("min_weight", lo=0),
        }
        for key in ("max_iter", "tolerance"):
            if key in ff.table:
                fit[key] = ff.number(key, lo=0)
        if "case_weight" in ff.table:
            fit["case_weight"] = ff.choice("case_weight", CASE_WEIGHTS)
        if "max_subjects" in ff.table:
            cap = ff.number("max_subjects", lo=1)
            if int(cap) != cap:
                ff.fail(f"{cap} is not a whole number", field="max_subjects", expected="an integer")
            fit["max_subjects"] = int(cap)
        ff.citations(known)
        ff.status()
    return BayesParameters(
        fit=fit,
        version=data["version"],
        nodes=nodes,
        links=links,
        modalities=modalities,
        assays=assays,
        detection_sensitivity=sens,
        detection_specificity=spec,
        source=str(path),
    )


class CrsBayesNetwork:
    """The Bayesian network of the CRS AOP for one modality.

    Parameters
    ----------
    params:
        The parameters (:func:`load_bayes_parameters`).
    modality:
        A modality key of the parameter file; its MIE prior and MIE links are used.
    """

    def __init__(self, params: BayesParameters, modality: str) -> None:
        with warnings.catch_warnings():
            # pgmpy announces its own API changes on import; they are not the user's concern.
            warnings.simplefilter("ignore", FutureWarning)
            from pgmpy.factors.discrete import TabularCPD
            from pgmpy.inference import VariableElimination
            from pgmpy.models import DiscreteBayesianNetwork

        if modality not in params.modalities:
            raise InputError(
                f"no Bayesian-network parameters for modality {modality!r}",
                file=params.source,
                field="modality",
                expected=", ".join(params.modalities),
            )
        self.params = params
        self.modality = modality
        self.outcome = next(n.key for n in params.nodes.values() if n.severe_given_crs is not None)
        self._values = self._default_values()
        self.parents: dict[str, list[str]] = {k: [] for k in params.nodes}
        for parent, child in self._edges():
            self.parents[child].append(parent)
        order = list(nx.topological_sort(nx.DiGraph(self._edges())))
        self.order = [n for n in order] + [n for n in params.nodes if n not in order]
        model = DiscreteBayesianNetwork(self._edges())
        model.add_nodes_from(params.nodes)
        for node in self.order:
            parents = self.parents[node]
            states = params.nodes[node].states
            configs = np.array(
                list(itertools.product(range(2), repeat=len(parents))), dtype=int
            ).reshape(2 ** len(parents), len(parents))
            dist = self._distribution(node, configs, self._values)
            model.add_cpds(
                TabularCPD(
                    node,
                    len(states),
                    dist.T,
                    evidence=parents or None,
                    evidence_card=[2] * len(parents) or None,
                    state_names={node: list(states), **{p: list(BINARY_STATES) for p in parents}},
                )
            )
        model.check_model()
        self.model = model
        self._infer = VariableElimination(model)
        self._event_to_node = {n.event: n.key for n in params.nodes.values()}

    #: The tables' basis: elicited, not fitted (see :func:`cytosafe.aop.fit.fit_network`).
    basis = ELICITED

    @classmethod
    def for_modality(cls, modality: str, parameters: str | Path | None = None) -> CrsBayesNetwork:
        return cls(load_bayes_parameters(parameters), modality)

    # -- structure and parameters ------------------------------------------------------------
    def _edges(self) -> list[tuple[str, str]]:
        m = self.params.modalities[self.modality]
        mie = [("mie", c) for c, p in m.links.items() if p.interval[1] > 0]
        return mie + list(self.params.links)

    def _default_values(self) -> dict[str, float]:
        return {name: p.value for name, p in self._param_table().items()}

    def _param_table(self) -> dict[str, Param]:
        p = self.params
        m = p.modalities[self.modality]
        table = {"prior:mie": m.mie_prior}
        for n in p.nodes.values():
            if n.key != "mie":
                table[f"leak:{n.key}"] = n.leak
            for state, sev in (n.severe_given_crs or {}).items():
                table[f"severe:{state}"] = sev
        for (parent, child), link in p.links.items():
            table[f"link:{parent}->{child}"] = link
        for child, link in m.links.items():
            table[f"link:mie->{child}"] = link
        return table

    def parameters_table(self) -> pd.DataFrame:
        """Every parameter in use: name, value, interval, citations, status."""
        refs = load_references()
        rows = [
            {
                "parameter": name,
                "value": p.value,
                "low": p.interval[0],
                "high": p.interval[1],
                "citations": "; ".join(refs[c].short() for c in p.citations),
                "status": p.status,
                "basis": ELICITED,
            }
            for name, p in self._param_table().items()
        ]
        return pd.DataFrame(rows)

    def _distribution(self, node: str, configs: np.ndarray, v: dict[str, float]) -> np.ndarray:
        """P(node state | parent states) for each row of ``configs`` (columns: parents)."""
        if node == "mie":
            prior = v["prior:mie"]
            return np.tile([1 - prior, prior], (max(len(configs), 1), 1))
        parents = self.parents[node]
        absent = np.full(len(configs), 1 - v[f"leak:{node}"])
        for j, parent in enumerate(parents):
            absent = absent * np.where(configs[:, j] == 1, 1 - v[f"link:{parent}->{node}"], 1.0)
        present = 1 - absent
        spec = self.params.nodes[node]
        if spec.severe_given_crs is None:
            return np.column_stack([absent, present])
        j = parents.index(spec.severity_parent)
        severe_share = np.where(configs[:, j] == 1, v["severe:present"], v["severe:absent"])
        return np.column_stack([absent, present * (1 - severe_share), present * severe_share])

    # -- inference ---------------------------------------------------------------------------
    def _evidence(self, evidence: dict | None) -> dict[str, str]:
        out = {}
        for key, value in (evidence or {}).items():
            node = key if key in self.params.nodes else self._event_to_node.get(key)
            if node is None:
                raise InputError(
                    f"unknown key event {key!r}",
                    field="evidence",
                    expected="a node or key-event key: " + ", ".join(self.params.nodes),
                )
            states = self.params.nodes[node].states
            if isinstance(value, bool | int | np.integer) and states == BINARY_STATES:
                value = BINARY_STATES[int(value)]
            if value not in states:
                raise InputError(
                    f"{value!r} is not a state of {node!r}", field=key, expected=" or ".join(states)
                )
            out[node] = value
        return out

    def query(self, node: str, evidence: dict | None = None) -> dict[str, float]:
        """The posterior distribution of ``node`` (a node or key-event key) given evidence.

        Raises
        ------
        InputError
            An unknown node or state, or evidence the network says cannot happen.
        """
        ev = self._evidence(evidence)
        target = node if node in self.params.nodes else self._event_to_node.get(node)
        if target is None:
            raise InputError(f"unknown key event {node!r}", field="node")
        if ev and self.evidence_probability(ev) <= 1e-15:
            # pgmpy would return a distribution even then; there is none.
            raise InputError(
                f"the evidence {ev} has probability zero under the network",
                field="evidence",
                expected="evidence the network allows",
            )
        if target in ev:
            return {s: float(s == ev[target]) for s in self.params.nodes[target].states}
        factor = self._infer.query([target], evidence=ev or None, show_progress=False)
        values = np.asarray(factor.values, dtype=float)
        names = factor.state_names[target]
        return {s: float(values[names.index(s)]) for s in self.params.nodes[target].states}

    def probability(self, evidence: dict | None = None) -> dict[str, float]:
        """P(CRS), P(severe CRS) and P(no CRS) given key-event evidence.

        Parameters
        ----------
        evidence:
            ``{node or key-event key: state}``; binary states are ``"absent"`` /
            ``"present"`` (or 0 / 1).
        """
        dist = self.query(self.outcome, evidence)
        return {
            "p_crs": dist["non_severe"] + dist["severe"],
            "p_severe": dist["severe"],
            "p_none": dist["none"],
        }

    def _joint_node_outcome(self, node: str, ev: dict[str, str]) -> np.ndarray:
        """P(node, outcome | evidence) as a 2 x 3 array."""
        factor = self._infer.query(
            [node, self.outcome], evidence=ev or None, joint=True, show_progress=False
        )
        names = factor.state_names
        values = np.asarray(factor.values, dtype=float)
        if factor.variables[0] != node:
            values = values.T
        rows = [names[node].index(s) for s in BINARY_STATES]
        cols = [names[self.outcome].index(s) for s in OUTCOME_STATES]
        return values[np.ix_(rows, cols)]

    def information_value(self, assay: AssaySpec | str, evidence: dict | None = None) -> dict:
        """Expected information one more assay brings about the outcome.

        Returns
        -------
        dict
            ``mutual_information_bits`` (expected reduction of the outcome's entropy),
            ``p_positive``, ``p_crs_if_positive`` / ``_negative``,
            ``p_severe_if_positive`` / ``_negative``, ``expected_change_p_crs``
            (expected absolute change of P(CRS)), and the current ``p_crs``.
        """
        spec = self.params.assays[assay] if isinstance(assay, str) else assay
        ev = self._evidence(evidence)
        if spec.node in ev:
            joint = None
        else:
            joint = self._joint_node_outcome(spec.node, ev)
        base = self.query(self.outcome, evidence)
        prior = np.array([base[s] for s in OUTCOME_STATES])
        if joint is None:  # the node is already known: the assay adds nothing
            return {
                "assay": spec.key,
                "node": spec.node,
                "mutual_information_bits": 0.0,
                "p_positive": float("nan"),
                "p_crs_if_positive": 1 - prior[0],
                "p_crs_if_negative": 1 - prior[0],
                "p_severe_if_positive": prior[2],
                "p_severe_if_negative": prior[2],
                "expected_change_p_crs": 0.0,
                "p_crs": 1 - prior[0],
            }
        like_pos = np.array([1 - spec.specificity, spec.sensitivity])
        pos = (like_pos[:, None] * joint).sum(axis=0)
        neg = ((1 - like_pos)[:, None] * joint).sum(axis=0)
        p_pos, p_neg = pos.sum(), neg.sum()
        post_pos = pos / p_pos if p_pos > 0 else prior
        post_neg = neg / p_neg if p_neg > 0 else prior
        mi = _entropy(prior) - (p_pos * _entropy(post_pos) + p_neg * _entropy(post_neg))
        p_crs = 1 - prior[0]
        change = p_pos * abs((1 - post_pos[0]) - p_crs) + p_neg * abs((1 - post_neg[0]) - p_crs)
        return {
            "assay": spec.key,
            "node": spec.node,
            "mutual_information_bits": float(max(mi, 0.0)),
            "p_positive": float(p_pos),
            "p_crs_if_positive": float(1 - post_pos[0]),
            "p_crs_if_negative": float(1 - post_neg[0]),
            "p_severe_if_positive": float(post_pos[2]),
            "p_severe_if_negative": float(post_neg[2]),
            "expected_change_p_crs": float(change),
            "p_crs": float(p_crs),
        }

    def format_assay(self, format_key: str, modality: str | None = None) -> AssaySpec:
        """A CRA format as an assay on the key event its molecule's primary mechanism starts.

        Its sensitivity follows the format's detection level of the modality's primary
        mechanism (knowledge base), through ``[detection]`` of the parameter file.
        """
        from cytosafe.aop.graph import load_crs_aop
        from cytosafe.assays.knowledge import load_knowledge_base

        kb = load_knowledge_base()
        mod = kb.modality(modality or self.modality)
        primary = [m for m in mod.mechanisms if m.role == "primary"] or list(mod.mechanisms)
        if not primary:
            raise InputError(f"modality {mod.key!r} has no mechanism", field="modality")
        levels = [kb.detection(format_key, m.key).level for m in primary]
        best = min(levels, key=("yes", "weak", "no").index)
        aop = load_crs_aop()
        event = kb.mechanisms[primary[0].key].aop_event
        g = aop.graph(include_feedback=False)
        node = self._event_to_node.get(event)
        if node is None or node == "mie":
            nxt = [s for s in g.successors(event) if s in self._event_to_node] if event in g else []
            node = self._event_to_node[nxt[0]] if nxt else "cytokines"
        return AssaySpec(
            key=f"format:{format_key}",
            name=kb.format(format_key).name,
            node=node,
            sensitivity=self.params.detection_sensitivity.get(best, 0.5),
            specificity=self.params.detection_specificity,
        )

    def rank_assays(self, evidence: dict | None = None, *, formats: bool = True) -> pd.DataFrame:
        """Every candidate assay (the file's assays and, for antibodies, each CRA format)
        ranked by expected information about the outcome."""
        from cytosafe.assays.knowledge import load_knowledge_base

        specs = list(self.params.assays.values())
        kb = load_knowledge_base()
        # A parameter file may name modalities the knowledge base does not describe; the
        # CRA formats are then left out (their sensitivity comes from the knowledge base).
        if formats and self.modality in kb.modalities:
            specs += [self.format_assay(f, self.modality) for f in kb.formats]
        rows = []
        for spec in specs:
            info = self.information_value(spec, evidence)
            rows.append(
                {
                    "name": spec.name,
                    "sensitivity": spec.sensitivity,
                    "specificity": spec.specificity,
                    **info,
                }
            )
        columns = [
            "name", "sensitivity", "specificity", "assay", "node", "mutual_information_bits",
            "p_positive", "p_crs_if_positive", "p_crs_if_negative", "p_severe_if_positive",
            "p_severe_if_negative", "expected_change_p_crs", "p_crs",
        ]  # fmt: skip
        table = pd.DataFrame(rows, columns=columns).sort_values(
            ["mutual_information_bits", "assay"], ascending=[False, True], kind="stable"
        )
        return table.reset_index(drop=True)

    # -- uncertainty -------------------------------------------------------------------------
    def _joint(self, values: dict[str, float]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Every joint state (rows of state indices, columns in ``self.order``) and its
        probability under parameter ``values``."""
        nodes = self.order
        cards = [len(self.params.nodes[n].states) for n in nodes]
        states = np.array(list(itertools.product(*[range(c) for c in cards])), dtype=int)
        prob = np.ones(len(states))
        col = {n: i for i, n in enumerate(nodes)}
        for n in nodes:
            parents = self.parents[n]
            configs = states[:, [col[p] for p in parents]]
            dist = self._distribution(n, configs, values)
            prob = prob * dist[np.arange(len(states)), states[:, col[n]]]
        return states, prob, col

    def _evidence_mask(
        self, ev: dict[str, str], states: np.ndarray, col: dict[str, int]
    ) -> np.ndarray:
        mask = np.ones(len(states), bool)
        for n, s in ev.items():
            mask &= states[:, col[n]] == self.params.nodes[n].states.index(s)
        return mask

    def evidence_probability(self, evidence: dict | None = None) -> float:
        """P(evidence) under the network (1 for no evidence)."""
        ev = self._evidence(evidence)
        states, prob, col = self._joint(self._values)
        return float(prob[self._evidence_mask(ev, states, col)].sum())

    def enumerate_probability(
        self, evidence: dict | None = None, values: dict | None = None
    ) -> dict:
        """P(CRS) and P(severe) by exact enumeration of the joint (no pgmpy): a cross-check,
        and the engine of :meth:`probability_interval`."""
        ev = self._evidence(evidence)
        states, prob, col = self._joint(values or self._values)
        mask = self._evidence_mask(ev, states, col)
        total = prob[mask].sum()
        if total <= 0:
            raise InputError("the evidence has probability zero", field="evidence")
        out = states[mask, col[self.outcome]]
        p = prob[mask] / total
        return {"p_crs": float(p[out > 0].sum()), "p_severe": float(p[out == 2].sum())}

    def probability_interval(
        self, evidence: dict | None = None, *, n: int = 400, seed: int = 0, level: float = 0.9
    ) -> dict:
        """P(CRS) and P(severe) with a ``level`` interval from the parameters' intervals
        (each sampled uniformly within its interval, independently)."""
        rng = np.random.default_rng(seed)
        table = self._param_table()
        draws = {name: rng.uniform(p.interval[0], p.interval[1], n) for name, p in table.items()}
        crs, severe = np.empty(n), np.empty(n)
        for i in range(n):
            r = self.enumerate_probability(evidence, {k: d[i] for k, d in draws.items()})
            crs[i], severe[i] = r["p_crs"], r["p_severe"]
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        point = self.probability(evidence)
        return {
            "p_crs": point["p_crs"],
            "p_crs_low": float(np.quantile(crs, lo)),
            "p_crs_high": float(np.quantile(crs, hi)),
            "p_severe": point["p_severe"],
            "p_severe_low": float(np.quantile(severe, lo)),
            "p_severe_high": float(np.quantile(severe, hi)),
            "level": level,
            "n": n,
        }


def _entropy(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=float)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
