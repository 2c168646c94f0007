"""Assay-model guidance: which cytokine release assay formats can see a molecule's mechanisms.

The knowledge (CRA formats, drug modalities, Fc formats, targets, controls, cytokine
panels) lives in versioned data files with a citation on every entry
(``data/assay_formats.toml``, ``data/drug_modalities.toml``, ``data/crs_references.toml``);
:func:`load_knowledge_base` validates them; :func:`recommend` ranks the formats for a
molecule, names the mechanisms no chosen format covers, and proposes controls and a panel.
"""

from cytosafe.assays.knowledge import KnowledgeBase, load_knowledge_base
from cytosafe.assays.recommend import Recommendation, recommend
from cytosafe.assays.references import Reference, load_references

__all__ = [
    "KnowledgeBase",
    "Recommendation",
    "Reference",
    "load_knowledge_base",
    "load_references",
    "recommend",
]
