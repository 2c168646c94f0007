"""The CRS immune-related adverse outcome pathway: graph, AOP-Wiki interop, quantitative
AOP (Bayesian network) and mechanism simulation (Boolean network, MaBoSS).

* :func:`load_crs_aop` — the typed pathway (MIEs per modality, key events with readouts
  and biomarkers, relationships with weight of evidence, the adverse outcome), from
  ``data/crs_aop.toml``;
* :func:`read_aopwiki_xml` / :func:`write_aopwiki_xml` — the AOP-Wiki XML export;
  :func:`to_graphml`, :func:`to_cytoscape_json`, :func:`aop_svg`, :func:`aop_html`;
* :class:`CrsBayesNetwork` — P(CRS), P(severe CRS) given key-event evidence, and the
  expected information of one more assay (``data/crs_bayes.toml``);
* :func:`load_evidence_rules` — mechanism-aware evidence mapping: which MIEs a modality
  engages, which cells each event needs and each assay format holds
  (``data/aop_evidence.toml``; :mod:`cytosafe.aop.evidence` uses them);
* :func:`fit_network` / :func:`leave_one_compound_out` — the network's tables fitted to
  the reference compound library (elicited tables as the Dirichlet prior), and its
  leave-one-compound-out validation; every output labelled ``elicited`` or ``fitted to N
  reference compounds``;
* :func:`simulate` — interventions in the Boolean model (``data/crs_mechanism.bnd``).
"""

from cytosafe.aop.aopwiki_xml import read_aopwiki_xml, write_aopwiki_xml
from cytosafe.aop.bayes import CrsBayesNetwork, load_bayes_parameters
from cytosafe.aop.boolean import load_boolean_model, simulate, summarise
from cytosafe.aop.export import aop_html, aop_svg, simulation_svg, to_cytoscape_json, to_graphml
from cytosafe.aop.fit import FittedCrsNetwork, fit_network, leave_one_compound_out
from cytosafe.aop.graph import (
    AdverseOutcomePathway,
    EvidenceRecord,
    KeyEvent,
    Relationship,
    load_crs_aop,
)
from cytosafe.aop.mechanisms import load_evidence_rules

__all__ = [
    "AdverseOutcomePathway",
    "CrsBayesNetwork",
    "EvidenceRecord",
    "FittedCrsNetwork",
    "KeyEvent",
    "Relationship",
    "aop_html",
    "aop_svg",
    "fit_network",
    "leave_one_compound_out",
    "load_bayes_parameters",
    "load_boolean_model",
    "load_crs_aop",
    "load_evidence_rules",
    "read_aopwiki_xml",
    "simulate",
    "simulation_svg",
    "summarise",
    "to_cytoscape_json",
    "to_graphml",
    "write_aopwiki_xml",
]
