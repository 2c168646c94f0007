"""Calibration of the hazard call: would this format, with this rule, have flagged the
compounds that caused CRS in people, and cleared those that did not?

Each responder rule set of :mod:`cytosafe.hazard.rules` is applied to the published
readouts of the reference library (:mod:`cytosafe.reference.library`), per assay format:

* a readout is put on the rule's scale where the paper allows it: a fold change over the
  paper's negative control (``fold_change``, or a concentration with its control value)
  is tested against ``min_fold_change``; an increase in pg/mL against ``min_difference``;
  a percentage of the positive control against ``min_percent_of_positive``. A published
  number is taken as quantifiable (``above_lloq``): papers report numbers above their
  assay's range. ``min_difference_lloq`` needs the paper's LLOQ, which the library does
  not hold, so a rule that requires it cannot be decided;
* the rule logic is the hazard layer's (:func:`cytosafe.hazard.summary.call_summary`):
  a rule fires when all its conditions hold, fails when one fails, and is undecided
  otherwise; a rule set detects when any rule fires (``responder``), does not detect when
  every rule fails (``non-responder``), and is *not evaluable* otherwise
  (``indeterminate``). With ``confirmed_only`` only what was confirmed against its
  source is used. Qualitative results, ranges across donors and
  concentrations without a control are not evaluable: they are listed, with the reason,
  and never counted as misses;
* the rule is applied to the paper's central value (the typical donor), not donor by
  donor, and the hazard classes (donor fractions, paired tests) cannot be formed from a
  summary;
* a result counts as detected only if a study of the assumed donor panel would have shown
  it: where the paper gives the donors needed for 90 % power at the 5 % level (Vessillier
  et al. 2015, Table 2: paired t-tests on log data against the isotype control), a
  readout that passes the rule but needs more donors than the panel is not detected. This
  is the across-donor question the live hazard call asks of a study with its paired test
  (the ``require_significant`` of the moderate class, ``hazard_rules.toml``; a Wilcoxon
  signed-rank test there, a t-test in the paper). The panel is ``donors=``, by default
  the library's ``[donor_panel]`` (9 donors: the panel Iwata et al. 2016 call a
  practical test design; the file cites it); ``donors=None`` judges every readout on its
  mean alone. A readout whose paper gives no power figure is judged on its mean alone,
  and its reason says so;
* a compound is detected in a format when any of its evaluable readouts is.

Against clinical CRS (any grade, and grade >= 3) each format and rule set gets a
confusion table, sensitivity and specificity with exact Clopper-Pearson 95 % intervals
(Clopper & Pearson 1934), and the compounds it misses with what the assay knowledge base
(``assay_formats.toml``) says the format sees of their mechanisms.

The figures come from the cited publications; CytoSafe's calls support, never replace, a
toxicologist's judgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from numbers import Integral
from typing import Final

import numpy as np
import pandas as pd

from cytosafe.assays import KnowledgeBase, load_knowledge_base
from cytosafe.errors import InputError
from cytosafe.hazard import RuleSet, get_rule_set
from cytosafe.hazard.rules import presets
from cytosafe.hazard.summary import INDETERMINATE, NON_RESPONDER, RESPONDER, call_summary
from cytosafe.reference.library import Compound, Readout, ReferenceLibrary, load_library
from cytosafe.reference.power import chance_text, detection_probability

__all__ = [
    "DISCLAIMER",
    "ENDPOINTS",
    "PANEL",
    "PANEL_SIZES",
    "QUALITATIVE",
    "Evaluation",
    "clopper_pearson",
    "detection_by_panel",
    "donor_panel",
    "evaluate",
    "expected_detection",
    "panel_choice",
    "summary_markdown",
]

#: Said in every output.
DISCLAIMER = (
    "The reference library's figures come from the cited publications (each row names "
    "its source and the table or figure). CytoSafe's calls on them support, never "
    "replace, a toxicologist's judgement."
)

#: Clinical endpoints: column of the compounds table -> words.
ENDPOINTS = {"crs_any": "CRS of any grade", "crs_severe": "CRS of grade >= 3"}

DETECTED, MISSED, NOT_EVALUABLE = "detected", "not detected", "not evaluable"

#: ``evaluate(donors=PANEL)``: the library's ``[donor_panel]`` (the shipped library's when
#: a user's file states none).
PANEL: Final = "panel"
_CALLS = {RESPONDER: DETECTED, NON_RESPONDER: MISSED, INDETERMINATE: NOT_EVALUABLE}

#: How a readout with only the authors' qualitative call is counted (``evaluate(
#: qualitative=...)``; a CytoSafe convention). A rule set needs a number, so by default such
#: a readout is not evaluable. ``"authors"`` counts the call as a reader tabulating the
#: literature by hand would: a published "positive" as detected, a "negative" as not
#: detected, each labelled as resting on the authors' call (column ``basis``), so that a
#: format's performance can be read with and without them. A "weak" call decides neither
#: way and stays not evaluable under both.
QUALITATIVE: Final = {
    "not_evaluable": "not evaluable: a rule set needs a number",
    "authors": "the authors' own positive or negative call counted (basis \"authors' call\"); "
    "a weak call is not evaluable",
}
RULE, AUTHORS = "rule", "authors' call"
_AUTHORS_CALLS = {"positive": DETECTED, "negative": MISSED}

CLOPPER_PEARSON = (
    "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the "
    "case of the binomial. Biometrika. 1934;26(4):404-413."
)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of a proportion ``k / n``.

    The bounds are beta quantiles: ``Beta(alpha/2; k, n-k+1)`` and
    ``Beta(1-alpha/2; k+1, n-k)``, 0 when ``k = 0`` and 1 when ``k = n`` (Clopper &
    Pearson 1934). ``(nan, nan)`` when ``n = 0``.

    Examples
    --------
    >>> lo, hi = clopper_pearson(0, 5)
    >>> round(lo, 3), round(hi, 3)
    (0.0, 0.522)
    """
    from scipy.stats import beta

    if n == 0:
        return (float("nan"), float("nan"))
    alpha = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (lo, hi)


@dataclass(frozen=True)
class Evaluation:
    """The calibration tables of :func:`evaluate`.

    Attributes
    ----------
    readouts:
        One row per rule set x published readout: the value on the rule's scale, the
        call (detected / not detected / not evaluable) and why.
    calls:
        One row per rule set x compound x format with a readout: the format's call, the
        clinical outcome and what the format sees of the compound's mechanisms;
        ``detection_probability`` is the best chance the donor panel has of showing a
        readout that the rule judges and passes on its mean (:func:`detection_by_panel`),
        whichever readout decides the call.
    performance:
        One row per rule set x format x endpoint: TP, FN, FP, TN, sensitivity and
        specificity with exact 95 % intervals, and the compounds not evaluable.
    misses:
        One row per false negative and false positive, with the mechanism that explains it.
    compounds:
        One row per compound: identity and clinical outcome with its source and dose.
    settings:
        What was applied (rule sets, donors, library version, assumptions, disclaimer).
    """

    readouts: pd.DataFrame
    calls: pd.DataFrame
    performance: pd.DataFrame
    misses: pd.DataFrame
    compounds: pd.DataFrame
    settings: dict


def _rule_sets(rule_set) -> list[RuleSet]:
    if rule_set is None:
        return list(presets().values())
    if isinstance(rule_set, RuleSet):
        return [rule_set]
    if isinstance(rule_set, str):
        return [get_rule_set(rule_set)]
    out = []
    for item in rule_set:
        out.extend(_rule_sets(item))
    return out


def _scale(r: Readout) -> tuple[dict[str, float], str | None]:
    """The quantities a readout gives on the rule's scale, or why it gives none."""
    if r.measure == "qualitative":
        call = f" (the authors' call: {r.published_call})" if r.published_call else ""
        return {}, "qualitative result only" + call
    if r.value_high is not None:
        return {}, (
            f"reported as a range across donors ({r.value:g}-{r.value_high:g}"
            f"{' ' + r.unit if r.unit else ''}), no central value"
        )
    if r.measure == "fold_change":
        return {"fold_change": r.value}, None
    if r.measure == "percent_of_positive":
        return {"percent_of_positive": r.value}, None
    # a concentration
    if r.control_value is None:
        return {}, "a concentration without its negative-control value: no fold change"
    q = {"difference": r.value - r.control_value}
    if r.control_value > 0:
        q["fold_change"] = r.value / r.control_value
    return q, None


def _apply_rule_set(rs: RuleSet, q: dict[str, float]) -> tuple[str, str]:
    """The rule set's call on a readout's summary values (:func:`cytosafe.hazard.summary.
    call_summary`, the hazard layer's rule logic): a published number is taken as
    quantifiable (see the module notes)."""
    s = call_summary(
        rs,
        fold_change=q.get("fold_change"),
        increase=q.get("difference"),
        percent_of_positive=q.get("percent_of_positive"),
        quantifiable=True,
    )
    return _CALLS[s.call], s.reason


def _primary(kb: KnowledgeBase, compound: Compound) -> tuple[str, ...]:
    """The compound's mechanisms that its modality names primary (else its first one)."""
    roles = {m.key: m.role for m in kb.modalities[compound.modality].mechanisms}
    primary = tuple(m for m in compound.mechanisms if roles.get(m) == "primary")
    return primary or compound.mechanisms[:1]


#: Formats that culture the donor's own blood leukocytes (PBMC or whole blood), and so
#: contain the blood-borne targets of a T-cell engager (B-cell antigens: the knowledge
#: base's [[target]] ``on_blood_cells``, drug_modalities.toml).
BLOOD_FORMATS = (
    "whole_blood",
    "pbmc_aqueous",
    "pbmc_solid_phase_dry",
    "pbmc_solid_phase_wet",
    "pbmc_high_density_preculture",
    "pbmc_endothelial_coculture",
    "boec_autologous_coculture",
)
_TARGET_DEPENDENT = ("target_dependent_tcell_engagement", "car_t_target_recognition")


def _detection(kb: KnowledgeBase, fmt: str, mechanism: str, target: str) -> tuple[str, str]:
    """The level and words of what ``fmt`` sees of ``mechanism`` for this target."""
    d = kb.detection(fmt, mechanism)
    level, note = d.level, d.note
    t = kb.target(target)
    if (
        mechanism in _TARGET_DEPENDENT
        and level == "no"
        and fmt in BLOOD_FORMATS
        and t is not None
        and t.on_blood_cells
    ):
        level = "weak"
        note = f"target {t.key} is on blood cells, so the culture holds some target cells"
    return level, note or ""


def _mechanism_view(kb: KnowledgeBase, fmt: str, compound: Compound) -> tuple[str, str]:
    """What ``fmt`` sees of the compound's primary mechanisms (best level), and of each of
    its mechanisms in words (assay knowledge base)."""
    order = {"yes": 0, "weak": 1, "no": 2}
    primary = _primary(kb, compound)
    levels = {m: _detection(kb, fmt, m, compound.target) for m in compound.mechanisms}
    best = min((levels[m][0] for m in primary), key=order.get, default="no")
    parts = []
    for m, (level, note) in levels.items():
        text = f"{m}{' (primary)' if m in primary else ''}: {level}"
        if note:
            text += f" - {note}"
        parts.append(text)
    return best, "; ".join(parts) or "no mechanism recorded"


def expected_detection(
    compound: str,
    *,
    library: ReferenceLibrary | None = None,
    knowledge: KnowledgeBase | None = None,
) -> pd.DataFrame:
    """What each assay format is expected to see of a compound, from its mechanisms.

    The expectation of the assay knowledge base (``assay_formats.toml``), not a published
    result: ``level`` is the best detection level (yes / weak / no) of the compound's
    primary mechanisms in the format, ``mechanisms_in_format`` says it for each mechanism
    with the knowledge base's note. A T-cell engager or CAR whose target is on blood cells
    (B-cell antigens) is seen at least weakly by the formats that culture blood
    leukocytes (:data:`BLOOD_FORMATS`), which hold some target cells. It is what explains a miss, and what stands in where
    the library holds no readout.

    Examples
    --------
    >>> e = expected_detection("blinatumomab").set_index("format")
    >>> e.loc["target_cell_coculture", "level"]
    'yes'
    """
    lib = library or load_library()
    kb = knowledge or load_knowledge_base()
    c = lib.compound(compound)
    rows = []
    for fmt in kb.formats:
        level, view = _mechanism_view(kb, fmt, c)
        rows.append({"format": fmt, "level": level, "mechanisms_in_format": view})
    return pd.DataFrame(rows)


def panel_choice(
    donors: int | None,
    mean_only: bool,
    *,
    names: tuple[str, str] = ("donors", "mean_only"),
    field: str | None = None,
) -> int | str | None:
    """The ``donors=`` of :func:`evaluate` for a user's choice: a panel of ``donors``, the
    library's cited panel (:data:`PANEL`) when none is given, or no panel (``None``:
    every readout on its mean) with ``mean_only``. Both at once contradict each other: an
    InputError saying so with ``names`` (how the caller calls the two options), on
    ``field`` (the second name by default).

    Examples
    --------
    >>> panel_choice(None, False), panel_choice(27, False), panel_choice(None, True)
    ('panel', 27, None)
    """
    if mean_only and donors is not None:
        raise InputError(
            f"{names[0]} and {names[1]} contradict each other", field=field or names[1]
        )
    return None if mean_only else (PANEL if donors is None else donors)


def donor_panel(library: ReferenceLibrary | None = None):
    """The donor panel a calibration assumes: the library's ``[donor_panel]``, or the
    shipped library's when the file states none (:class:`~cytosafe.reference.library.
    DonorPanel`: donors, citations, basis)."""
    lib = library or load_library()
    return lib.donor_panel or load_library().donor_panel


#: The panel sizes :func:`detection_by_panel` tabulates besides the study's own.
PANEL_SIZES: Final = (3, 6, 9, 12, 24, 48)


def detection_by_panel(ev: Evaluation, sizes: Iterable[int] = PANEL_SIZES) -> pd.DataFrame:
    """How likely a study of each panel size is to show each published response that
    passes its rule set on the paper's mean, where the paper says how many donors 90 %
    power takes (:func:`cytosafe.reference.power.detection_probability`).

    One row per rule set x such readout: compound, format, fold change, the paper's donors
    for 90 % power, its standardised effect, and one column ``p_<n>_donors`` per panel
    size (the evaluation's own panel included). A planning aid: how many donors a study in
    a format needs to see a response like the compound's.

    Examples
    --------
    >>> t = detection_by_panel(evaluate("fold2_above_lloq")).set_index(["compound", "format"])
    >>> float(round(t.loc[("tgn1412", "whole_blood"), "p_9_donors"], 2))
    0.23
    """
    from cytosafe.reference.power import effect_for_power

    sizes = list(sizes)
    if not all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise InputError(f"{sizes}", field="sizes", expected="whole numbers of donors >= 1")
    sizes = sorted(
        {int(n) for n in sizes}
        | ({int(ev.settings["donors"])} if ev.settings.get("donors") else set())
    )
    r = ev.readouts
    columns = [
        "rule_set",
        "compound",
        "format",
        "readout",
        "analyte",
        "fold_change",
        "donors_for_power",
        "effect_size",
        *[f"p_{n}_donors" for n in sizes],
        "source",
        "citation",
        "location",
    ]
    if r.empty:
        return pd.DataFrame(columns=columns)
    keep = r[r["passes_on_mean"] & r["donors_for_power"].notna()]
    rows = []
    for x in keep.itertuples(index=False):
        n90 = int(x.donors_for_power)
        row = {
            "rule_set": x.rule_set,
            "compound": x.compound,
            "format": x.format,
            "readout": x.readout,
            "analyte": x.analyte,
            "fold_change": x.fold_change,
            "donors_for_power": n90,
            "effect_size": effect_for_power(float(n90)),
        }
        row.update({f"p_{n}_donors": detection_probability(n90, n) for n in sizes})
        row.update({"source": x.source, "citation": x.citation, "location": x.location})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def evaluate(
    rule_set: str | RuleSet | Iterable[str | RuleSet] | None = None,
    *,
    library: ReferenceLibrary | None = None,
    donors: int | str | None = PANEL,
    knowledge: KnowledgeBase | None = None,
    confirmed_only: bool = False,
    qualitative: str = "not_evaluable",
) -> Evaluation:
    """Apply hazard rule sets to the library's published readouts; score them per format.

    Parameters
    ----------
    rule_set:
        A shipped rule set's name, a :class:`~cytosafe.hazard.RuleSet`, or several; every
        shipped rule set when ``None``.
    library:
        The reference library (the shipped one by default).
    donors:
        The donor panel of the study being calibrated: a readout whose paper needs more
        donors for 90 % power is not counted as detected. ``PANEL`` (the default): the
        library's cited ``[donor_panel]`` (:func:`donor_panel`); ``None``: every readout
        is judged on its mean alone.
    knowledge:
        The assay knowledge base that explains misses (the shipped one by default).
    confirmed_only:
        Use only what was confirmed against its source: readouts marked unconfirmed are
        left out, and a compound whose clinical outcome is unconfirmed counts as outcome
        unknown (scored on no endpoint).
    qualitative:
        How a readout with only the authors' qualitative call counts (:data:`QUALITATIVE`):
        ``"not_evaluable"`` (the default: the rule set cannot be applied to it) or
        ``"authors"`` (a published positive counts as detected and a negative as not
        detected; every such call is labelled ``basis = "authors' call"``).

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> ev = evaluate("fold2_above_lloq")
    >>> c = ev.calls.set_index(["compound", "format"])
    >>> c.loc[("tgn1412", "pbmc_solid_phase_dry"), "call"]
    'detected'
    >>> c.loc[("tgn1412", "whole_blood"), "call"]  # needs 52 donors; the panel has 9
    'not detected'
    """
    lib = library or load_library()
    panel = None
    if isinstance(donors, str) and donors == PANEL:
        panel = donor_panel(lib)
        donors = panel.donors if panel is not None else None
    if donors is not None and (
        isinstance(donors, bool) or not isinstance(donors, Integral) or donors < 1
    ):
        raise InputError(f"{donors!r} donors", field="donors", expected="a whole number >= 1")
    if qualitative not in QUALITATIVE:
        raise InputError(
            f"{qualitative!r}", field="qualitative", expected=" or ".join(map(repr, QUALITATIVE))
        )
    kb = knowledge or load_knowledge_base()
    sets = _rule_sets(rule_set)
    if confirmed_only:
        lib = _confirmed(lib)

    readout_rows = []
    for rs in sets:
        for c in lib.compounds.values():
            for i, r in enumerate(c.readouts):
                q, why_not = _scale(r)
                basis = RULE
                if why_not is None:
                    call, reason = _apply_rule_set(rs, q)
                elif (
                    qualitative == "authors"
                    and r.measure == "qualitative"
                    and r.published_call in _AUTHORS_CALLS
                ):
                    call, basis = _AUTHORS_CALLS[r.published_call], AUTHORS
                    reason = (
                        f"the authors' call: {r.published_call} (a qualitative result; "
                        f"rule set {rs.name} not applied)"
                    )
                else:
                    call, reason = NOT_EVALUABLE, why_not
                if call == NOT_EVALUABLE:
                    basis = ""  # nothing decided, by the rule or by the authors
                # The probability that the panel shows a response whose mean passes the
                # rule, where the paper says how many donors 90 % power takes (power.py).
                passes_on_mean = call == DETECTED and basis == RULE
                probability = (
                    detection_probability(r.donors_for_power, donors)
                    if passes_on_mean and donors is not None and r.donors_for_power is not None
                    else np.nan
                )
                underpowered = None
                if donors is not None and r.donors_for_power is not None:
                    underpowered = r.donors_for_power > donors
                    if underpowered and call == DETECTED:
                        call = MISSED
                        reason += (
                            f"; but the paper needs {r.donors_for_power} donors for 90 % "
                            f"power and the study has {donors}"
                        )
                        if passes_on_mean:
                            reason += f" (a {chance_text(probability)} chance of showing it)"
                    elif call == DETECTED:
                        reason += (
                            f"; the paper needs {r.donors_for_power} donors for 90 % power, "
                            f"within the study's {donors}"
                        )
                elif call == DETECTED and basis == AUTHORS:
                    reason += "; no donors-for-power figure"
                elif call == DETECTED:
                    reason += (
                        "; judged on the mean alone (no donors-for-power figure)"
                        if donors is not None
                        else "; judged on the mean alone (no donor panel applied)"
                    )
                readout_rows.append(
                    {
                        "rule_set": rs.name,
                        "compound": c.key,
                        "format": r.format,
                        "readout": i + 1,
                        "measure": r.measure,
                        "value": r.value,
                        "value_high": r.value_high,
                        "control_value": r.control_value,
                        "unit": r.unit,
                        "analyte": r.analyte,
                        "comparator": r.comparator,
                        "fold_change": q.get("fold_change"),
                        "call": call,
                        "basis": basis,
                        "reason": reason,
                        "published_call": r.published_call,
                        "donors": r.donors,
                        "donors_for_power": r.donors_for_power,
                        "underpowered": underpowered,
                        "passes_on_mean": passes_on_mean,
                        "detection_probability": probability,
                        "source": r.citation,
                        "citation": lib.sources[r.citation].citation,
                        "location": r.location,
                        "confirmed": r.confirmed,
                    }
                )
    readouts = pd.DataFrame(readout_rows)
    calls = _calls(readouts, lib, kb)
    performance, misses = _performance(calls, sets, lib)
    if donors is None:
        panel_text = "not applied: every readout judged on its mean alone"
    elif panel is not None:
        cites = "; ".join(lib.sources[k].citation for k in panel.citations if k in lib.sources)
        panel_text = f"{donors} donors, the library's [donor_panel]: {panel.basis} ({cites})"
    else:
        panel_text = f"{donors} donors, as given"
    settings = {
        "rule_sets": {rs.name: [r.describe() for r in rs.rules] for rs in sets},
        "donors": donors,
        "donor_panel": panel_text,
        "confirmed_only": confirmed_only,
        "qualitative": f"{qualitative}: {QUALITATIVE[qualitative]}",
        "library_version": lib.version,
        "library_file": lib.file,
        "knowledge_base_version": kb.version,
        "confidence_interval": "exact (Clopper-Pearson) 95 %: " + CLOPPER_PEARSON,
        "assumptions": [
            "rules are applied to each paper's central value (typical donor), not donor "
            "by donor; hazard classes cannot be formed from published summaries",
            "a published number is taken as quantifiable (above_lloq)",
            "min_difference_lloq needs the paper's LLOQ and is undecided",
            "a readout is detected when it passes the rule and, where its paper gives the "
            "donors needed for 90 % power, that number is within the donor panel; without "
            "a power figure it is judged on its mean alone",
            "a compound is detected in a format when any evaluable readout is",
            (
                "qualitative results, ranges and concentrations without a control are not "
                "evaluable and are not counted as misses"
                if qualitative == "not_evaluable"
                else "a qualitative result counts by its authors' positive or negative call "
                '(basis "authors\' call"; a weak call, ranges and concentrations without a '
                "control are not evaluable and are not counted as misses)"
            ),
        ],
        "sources": {k: s.citation for k, s in sorted(lib.sources.items())},
        "disclaimer": DISCLAIMER,
    }
    return Evaluation(readouts, calls, performance, misses, lib.compounds_table(), settings)


def _confirmed(lib: ReferenceLibrary) -> ReferenceLibrary:
    """The library restricted to what was confirmed against its source: unconfirmed
    readouts dropped, an unconfirmed clinical outcome made unknown."""
    compounds = {}
    for key, c in lib.compounds.items():
        clinical = c.clinical
        if not clinical.confirmed:
            clinical = replace(clinical, crs_any=None, crs_severe=None)
        readouts = tuple(r for r in c.readouts if r.confirmed)
        compounds[key] = replace(c, clinical=clinical, readouts=readouts)
    return replace(lib, compounds=compounds)


def _calls(readouts: pd.DataFrame, lib: ReferenceLibrary, kb: KnowledgeBase) -> pd.DataFrame:
    rows = []
    if readouts.empty:
        return pd.DataFrame()
    for (rs, key, fmt), g in readouts.groupby(["rule_set", "compound", "format"], sort=False):
        c = lib.compounds[key]
        evaluable = g[g["call"] != NOT_EVALUABLE]
        if evaluable.empty:
            call, basis = NOT_EVALUABLE, ""
        else:
            call = DETECTED if (evaluable["call"] == DETECTED).any() else MISSED
            # the call rests on the rule when a rule-judged readout gives it
            deciding = evaluable[evaluable["call"] == call]
            basis = RULE if (deciding["basis"] == RULE).any() else AUTHORS
        best, view = _mechanism_view(kb, fmt, c)
        chance = g["detection_probability"].dropna()
        rows.append(
            {
                "rule_set": rs,
                "compound": key,
                "name": c.name,
                "format": fmt,
                "call": call,
                "basis": basis,
                "readouts_evaluable": len(evaluable),
                "readouts_not_evaluable": len(g) - len(evaluable),
                "max_fold_change": evaluable["fold_change"].max() if len(evaluable) else np.nan,
                # the best chance the panel has of showing a response that the rule judges
                # and that passes it on its mean, whichever readout decides the call (an
                # authors' call may decide it); NaN where no such readout gives a
                # donors-for-power figure
                "detection_probability": chance.max() if len(chance) else np.nan,
                "reasons": " | ".join(g["reason"]),
                "published_calls": ", ".join(g["published_call"].dropna()),
                "crs_any": c.clinical.crs_any,
                "crs_severe": c.clinical.crs_severe,
                "clinical_confirmed": c.clinical.confirmed,
                "expected_detection": best,
                "mechanisms_in_format": view,
            }
        )
    return pd.DataFrame(rows)


def _performance(
    calls: pd.DataFrame, sets: list[RuleSet], lib: ReferenceLibrary
) -> tuple[pd.DataFrame, pd.DataFrame]:
    perf, misses = [], []
    if calls.empty:
        return pd.DataFrame(), pd.DataFrame()
    for (rs, fmt), g in calls.groupby(["rule_set", "format"], sort=False):
        for endpoint, words in ENDPOINTS.items():
            known = g[g[endpoint].notna()]
            ev = known[known["call"] != NOT_EVALUABLE]
            truth = ev[endpoint].astype(bool)
            hit = ev["call"] == DETECTED
            tp, fn = int((truth & hit).sum()), int((truth & ~hit).sum())
            fp, tn = int((~truth & hit).sum()), int((~truth & ~hit).sum())
            se_lo, se_hi = clopper_pearson(tp, tp + fn)
            sp_lo, sp_hi = clopper_pearson(tn, tn + fp)
            perf.append(
                {
                    "rule_set": rs,
                    "format": fmt,
                    "endpoint": words,
                    "tp": tp,
                    "fn": fn,
                    "fp": fp,
                    "tn": tn,
                    "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
                    "sensitivity_ci_low": se_lo,
                    "sensitivity_ci_high": se_hi,
                    "specificity": tn / (tn + fp) if tn + fp else np.nan,
                    "specificity_ci_low": sp_lo,
                    "specificity_ci_high": sp_hi,
                    "not_evaluable": ", ".join(
                        known.loc[known["call"] == NOT_EVALUABLE, "compound"]
                    ),
                    "outcome_unknown": ", ".join(g.loc[g[endpoint].isna(), "compound"]),
                    "on_authors_call": ", ".join(ev.loc[ev["basis"] == AUTHORS, "compound"]),
                }
            )
            for row, kind in ((ev[truth & ~hit], "missed"), (ev[~truth & hit], "false alarm")):
                for r in row.itertuples(index=False):
                    misses.append(
                        {
                            "rule_set": rs,
                            "format": fmt,
                            "endpoint": words,
                            "kind": kind,
                            "compound": r.compound,
                            "name": r.name,
                            "modality": lib.compounds[r.compound].modality,
                            "mechanisms_in_format": r.mechanisms_in_format,
                            "reasons": r.reasons,
                        }
                    )
    columns = [
        "rule_set",
        "format",
        "endpoint",
        "kind",
        "compound",
        "name",
        "modality",
        "mechanisms_in_format",
        "reasons",
    ]
    return pd.DataFrame(perf), pd.DataFrame(misses, columns=columns)


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.0f} %"


def _yes_no(flag, percent) -> str:
    if flag is None or pd.isna(flag):
        return "unknown"
    text = "yes" if flag else "no"
    return f"{text} ({percent:g} %)" if percent is not None and not pd.isna(percent) else text


def _panel_markdown(ev: Evaluation) -> list[str]:
    """The summary's section on the probability that a panel shows each response."""
    t = detection_by_panel(ev)
    if t.empty:
        return []
    sizes = [c for c in t.columns if c.startswith("p_") and c.endswith("_donors")]
    # one row per published response: the probabilities do not depend on the rule set
    t = t.drop_duplicates(["compound", "format", "readout"])
    heads = [c.removeprefix("p_").removesuffix("_donors") for c in sizes]
    lines = [
        "",
        "## How likely a donor panel is to show each response",
        "",
        "For each published response whose mean passes a rule set and whose paper gives the "
        "donors needed for 90 % power (paired t-test, 5 % level), the probability that a "
        "study of n donors shows it: the paper's standardised effect, taken from its donor "
        "count, carried to other panel sizes (non-central t; "
        "`cytosafe.reference.power`). A planning aid for a study's size"
        + (
            f"; this evaluation's panel is {ev.settings['donors']} donors."
            if ev.settings.get("donors")
            else "."
        ),
        "",
        "| compound | format | fold change | donors for 90 % | effect (d) | "
        + " | ".join(f"n = {h}" for h in heads)
        + " | source |",
        "|---|---|---|---|---|" + "---|" * len(heads) + "---|",
    ]
    compounds = ev.compounds
    names = (
        dict(zip(compounds["compound"], compounds["name"], strict=True)) if len(compounds) else {}
    )
    for r in t.to_dict("records"):
        lines.append(
            f"| {names.get(r['compound'], r['compound'])} | {r['format']} | "
            f"{r['fold_change']:g} | {r['donors_for_power']} | {r['effect_size']:.2f} | "
            + " | ".join(chance_text(r[size]) for size in sizes)
            + f" | {r['source']} ({r['location']}) |"
        )
    return lines


def summary_markdown(ev: Evaluation) -> str:
    """A short Markdown summary of an :class:`Evaluation`: performance per rule set and
    format, the misses with their mechanisms, what could not be evaluated, the
    assumptions, the sources and the disclaimer."""
    s = ev.settings
    lines = [
        "# Calibration of the hazard call against the reference library",
        "",
        f"**{DISCLAIMER}**",
        "",
        f"Library {s['library_version']} ({s['library_file']}); assay knowledge base "
        f"{s['knowledge_base_version']}; donor panel: {s['donor_panel']}; qualitative "
        f"results: {s['qualitative']}.",
        "",
        "Sensitivity and specificity per format, with exact 95 % intervals "
        "(Clopper-Pearson). Compounds whose readouts cannot be put on the rule's scale are "
        "listed as not evaluable, never counted as misses.",
    ]
    for rs, g in ev.performance.groupby("rule_set", sort=False):
        rules = "; ".join(s["rule_sets"][rs])
        lines += ["", f"## Rule set `{rs}` ({rules})", ""]
        lines += [
            "| format | endpoint | TP | FN | FP | TN | sensitivity (95 % CI) | "
            "specificity (95 % CI) | not evaluable | on the authors' call |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in g.itertuples(index=False):
            se = f"{_pct(r.sensitivity)} ({_pct(r.sensitivity_ci_low)}-{_pct(r.sensitivity_ci_high)})"
            sp = f"{_pct(r.specificity)} ({_pct(r.specificity_ci_low)}-{_pct(r.specificity_ci_high)})"
            lines.append(
                f"| {r.format} | {r.endpoint} | {r.tp} | {r.fn} | {r.fp} | {r.tn} | {se} | "
                f"{sp} | {r.not_evaluable or '–'} | {r.on_authors_call or '–'} |"
            )
        m = ev.misses[ev.misses["rule_set"] == rs]
        if len(m):
            lines += [
                "",
                "Misses and false alarms, with what the format sees of the mechanism:",
                "",
            ]
            for r in m.itertuples(index=False):
                lines.append(
                    f"- {r.format}, {r.endpoint}: {r.kind} **{r.name}** — "
                    f"{r.mechanisms_in_format}. Why: {r.reasons}"
                )
    lines += _panel_markdown(ev)
    lines += [
        "",
        "## Clinical outcomes",
        "",
        "| compound | CRS any grade | grade >= 3 | patients | dose | source | confirmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ev.compounds.itertuples(index=False):
        lines.append(
            f"| {r.name} | {_yes_no(r.crs_any, r.crs_any_percent)} | "
            f"{_yes_no(r.crs_severe, r.crs_severe_percent)} | "
            f"{'–' if pd.isna(r.patients) else int(r.patients)} | {r.dose} | "
            f"{r.clinical_source_key} ({r.clinical_location}) | "
            f"{'yes' if r.clinical_confirmed else 'no: ' + str(r.clinical_note)} |"
        )
    lines += ["", "## Assumptions", ""]
    lines += [f"- {a}" for a in s["assumptions"]]
    lines += ["", "## Sources", ""]
    lines += [f"- `{key}`: {c}" for key, c in s["sources"].items()]
    lines += ["", f"Confidence intervals: {s['confidence_interval']}", ""]
    return "\n".join(lines)
