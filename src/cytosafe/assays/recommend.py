"""Which cytokine release assay formats can see a molecule's mechanisms.

:func:`recommend` takes a molecule's modality, target, Fc format and intended use, and

1. lists the mechanisms the molecule can trigger (from the modality, adjusted by the Fc
   format and the target; data file ``drug_modalities.toml``);
2. scores every CRA format by how well it detects those mechanisms (``assay_formats.toml``:
   yes = 1, weak = 0.5, no = 0, weighted 1 for a primary and 0.5 for a secondary
   mechanism) plus small practical terms for the intended use (throughput, cost,
   complexity), and ranks the formats first by how well they detect the primary
   mechanisms (what the modality itself does), then by that score, then by the share
   of their detection claims that are confirmed against a primary source;
3. chooses a short list (the best format, then the best format for each mechanism still
   uncovered) and names the mechanisms no chosen format detects;
4. proposes controls and a cytokine panel.

Every line of the result names the citations it rests on and says whether they are
confirmed. The weights are a CytoSafe convention (``[recommender]`` and
``[[intended_use]]`` in the data file), not published values.

Examples
--------
>>> rec = recommend("cd28_superagonist", target="CD28", fc="igg4")
>>> rank = dict(zip(rec.ranking["format"], rec.ranking["rank"]))
>>> rank["pbmc_high_density_preculture"] < rank["pbmc_aqueous"]
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cytosafe.assays.knowledge import KnowledgeBase, load_knowledge_base
from cytosafe.errors import InputError

__all__ = ["MechanismNeed", "Recommendation", "recommend"]


@dataclass(frozen=True)
class MechanismNeed:
    """A mechanism the molecule can trigger, with why (its source) and its weight."""

    key: str
    name: str
    role: str
    weight: float
    reason: str
    citations: tuple[str, ...]
    confirmed: bool


@dataclass
class Recommendation:
    """The result of :func:`recommend`.

    Attributes
    ----------
    ranking:
        One row per format, best first: ``rank``, ``format``, ``name``, ``score``,
        ``coverage`` (0-1), ``chosen``, ``reasons`` (list of str), ``detects`` (mechanism
        -> level), ``citations``, ``cost``, ``throughput``, ``complexity``, ``incubation``,
        ``donors``, ``readouts``.
    chosen:
        The keys of the recommended formats, in order.
    uncovered:
        Keys of mechanisms no chosen format detects (at the covered level, "yes").
    notes:
        Messages about the Fc format, the target, options and gaps, each with sources.
    """

    modality: str
    modality_name: str
    target: str | None
    fc: str | None
    intended_use: str
    options: dict[str, str]
    mechanisms: list[MechanismNeed]
    ranking: pd.DataFrame
    chosen: list[str]
    uncovered: list[str]
    notes: list[str]
    controls: list[dict]
    panel: list[str]
    panel_sources: list[dict]
    citations: list[str]
    kb_version: str
    kb: KnowledgeBase = field(repr=False)


def recommend(
    modality: str,
    target: str | None = None,
    fc: str | None = None,
    intended_use: str = "hazard_identification",
    *,
    options: dict[str, str] | None = None,
    kb: KnowledgeBase | None = None,
) -> Recommendation:
    """Rank CRA formats for a molecule and name what they cannot see.

    Parameters
    ----------
    modality:
        A modality key or alias of ``drug_modalities.toml`` (``cd28_superagonist``,
        ``cd3_bispecific``, ``igg1_mab``, ``fc_silent_mab``, ``car_t``, ...).
    target:
        The molecule's target (``CD3``, ``CD28``, ``CD20``, ...); a target the knowledge
        base does not describe is noted and otherwise ignored.
    fc:
        Fc format: ``igg1``, ``igg2``, ``igg4``, ``fc_silent`` or ``none``.
    intended_use:
        ``hazard_identification`` (default), ``screening``, ``mechanistic`` or
        ``dose_selection``.
    options:
        Choices at documented disagreements, by option key (e.g.
        ``{"whole_blood_cd28_superagonist": "no"}``); defaults otherwise.
    kb:
        A knowledge base (the shipped one by default).

    Returns
    -------
    Recommendation
    """
    kb = kb or load_knowledge_base()
    options = dict(options or {})
    for key, choice in options.items():
        if key not in kb.options:
            raise InputError(
                f"unknown option {key!r}", field="options", expected=", ".join(kb.options)
            )
        if choice not in kb.options[key].choices:
            raise InputError(
                f"unknown choice {choice!r} for option {key!r}",
                field=key,
                expected=", ".join(kb.options[key].choices),
            )
    mod = kb.modality(modality)
    use = kb.intended_use(intended_use)
    s = kb.settings
    notes: list[str] = []
    cited: list[str] = [*mod.citations]

    def weight(role: str) -> float:
        return s.primary_weight if role == "primary" else s.secondary_weight

    needs: dict[str, MechanismNeed] = {}
    for m in mod.mechanisms:
        needs[m.key] = MechanismNeed(
            key=m.key,
            name=kb.mechanisms[m.key].name,
            role=m.role,
            weight=weight(m.role),
            reason=f"{mod.name} ({m.role})",
            citations=m.citations,
            confirmed=m.confirmed,
        )
        cited += m.citations

    fc_key = fc
    if fc_key is None and mod.key == "fc_silent_mab":
        fc_key = "fc_silent"
    if fc_key is not None:
        fcf = kb.fc_format(fc_key)
        cited += fcf.citations
        fcgr = "fcgr_crosslinking"
        if fcf.fcgr_crosslinking == "not_expected":
            needs.pop(fcgr, None)
            notes.append(
                f"Fc format {fcf.name}: "
                + (fcf.note or "Fc-mediated (FcgR) cytokine release is not expected.")
                + f" [{kb.cite(fcf.citations)}; {fcf.status}]"
            )
        elif fcf.fcgr_crosslinking == "reduced":
            role = "secondary"
            needs[fcgr] = MechanismNeed(
                key=fcgr,
                name=kb.mechanisms[fcgr].name,
                role=role,
                weight=weight(role),
                reason=f"Fc format {fcf.name} (reduced FcgR binding)",
                citations=fcf.citations,
                confirmed=fcf.confirmed,
            )
        elif mod.key not in ("car_t", "immunostimulatory_cytokine"):
            role = "primary"
            needs[fcgr] = MechanismNeed(
                key=fcgr,
                name=kb.mechanisms[fcgr].name,
                role=role,
                weight=weight(role),
                reason=f"Fc format {fcf.name}",
                citations=fcf.citations,
                confirmed=fcf.confirmed,
            )

    if target:
        t = kb.target(target)
        if t is None:
            notes.append(
                f"Target {target!r} is not in the knowledge base; no target-specific "
                "mechanism was added."
            )
        else:
            cited += t.citations
            for mech in t.implies_mechanisms:
                if mech not in needs:
                    needs[mech] = MechanismNeed(
                        key=mech,
                        name=kb.mechanisms[mech].name,
                        role="primary",
                        weight=s.primary_weight,
                        reason=f"target {t.key}",
                        citations=t.citations,
                        confirmed=t.confirmed,
                    )
            if "target_dependent_tcell_engagement" in needs or "car_t_target_recognition" in needs:
                where = (
                    "is expressed on blood cells, so whole blood and PBMC contain some target "
                    "cells; a dedicated target-cell co-culture still sets the target density"
                    if t.on_blood_cells
                    else "is not on blood cells: blood-only formats lack target cells"
                )
                notes.append(f"Target {t.key} {where} [{kb.cite(t.citations)}; {t.status}].")

    if not needs:
        notes.append(
            "No cytokine-release mechanism is documented for this combination of modality, "
            "Fc format and target: a negative CRA is the expected result, and a blood-based "
            "format with positive controls confirms the assay could have responded."
        )

    rows = []
    total_weight = sum(n.weight for n in needs.values())
    for f in kb.formats.values():
        detects = {}
        reasons = []
        fcites: list[str] = []
        covered = 0.0
        primary = 0.0
        n_confirmed = 0
        for need in needs.values():
            d = kb.detection(f.key, need.key, options)
            n_confirmed += d.confirmed
            detects[need.key] = d.level
            covered += need.weight * s.level_scores[d.level]
            if need.role == "primary":
                primary += s.level_scores[d.level]
            src = f"{kb.cite(d.citations)}" if d.citations else "not documented"
            flag = "" if d.confirmed else ", unconfirmed"
            opt = f", option {d.option}={d.choice}" if d.option else ""
            reasons.append(f"{d.level} for {need.name} ({src}{flag}{opt})")
            fcites += d.citations
        for r in f.reference_drugs:
            if r.drug in mod.reference_drugs:
                flag = "" if r.confirmed else ", unconfirmed"
                reasons.append(f"{r.result} {r.drug} ({kb.cite(r.citations)}{flag})")
                fcites += r.citations
        coverage = covered / total_weight if total_weight else 0.0
        n_primary = sum(n.role == "primary" for n in needs.values())
        primary_coverage = primary / n_primary if n_primary else coverage
        bonus = (
            use.throughput_weight * (f.throughput - 1) / 2
            + use.cost_weight * (3 - f.cost) / 2
            + use.complexity_weight * (f.complexity - 1) / 2
        )
        rows.append(
            {
                "format": f.key,
                "name": f.name,
                "score": round(coverage + bonus, 4),
                "coverage": round(coverage, 4),
                "primary_coverage": round(primary_coverage, 4),
                "confirmed_share": round(n_confirmed / len(needs), 4) if needs else 0.0,
                "reasons": reasons,
                "detects": detects,
                "citations": sorted(set(fcites) | set(f.citations)),
                "cost": f.cost,
                "throughput": f.throughput,
                "complexity": f.complexity,
                "incubation": f.incubation,
                "donors": f.donors,
                "readouts": list(f.readouts),
                "status": f.status,
            }
        )
    ranking = pd.DataFrame(rows).sort_values(
        ["primary_coverage", "score", "confirmed_share", "format"],
        ascending=[False, False, False, True],
        kind="stable",
    )
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    ranking = ranking.reset_index(drop=True)

    chosen = _choose(ranking, list(needs), s.covered_level, s.shortlist)
    ranking.insert(
        ranking.columns.get_loc("coverage") + 1, "chosen", ranking["format"].isin(chosen)
    )
    uncovered = [
        m
        for m in needs
        if not any(
            ranking.loc[ranking["format"] == c, "detects"].iloc[0][m] == s.covered_level
            for c in chosen
        )
    ]
    for m in uncovered:
        best = ranking.loc[ranking["detects"].map(lambda d, m=m: d[m] == s.covered_level)]
        notes.append(
            f"No chosen format detects {kb.mechanisms[m].name}"
            + (
                f"; only {', '.join(best['format'])} would."
                if len(best)
                else "; no format in the knowledge base detects it: clinical monitoring and "
                "mechanistic follow-up are needed."
            )
        )
    used_options = {
        d.option for f in chosen for d in kb.format(f).detects if d.option and d.mechanism in needs
    }
    for key in sorted(used_options):
        opt = kb.options[key]
        choice = options.get(key, opt.default)
        alternatives = ", ".join(c for c in opt.choices if c != choice)
        notes.append(
            f"Option {key} ({opt.question}) = {choice}; the literature also supports "
            f"{alternatives}: see the data file."
        )

    mech_set = set(needs)
    controls = []
    for c in kb.controls.values():
        if c.applies_to(mod.key, mech_set):
            controls.append(
                {
                    "key": c.key,
                    "role": c.role,
                    "name": c.name,
                    "citations": list(c.citations),
                    "status": c.status,
                }
            )
            cited += c.citations
    panel: list[str] = []
    panel_sources = []
    for p in kb.panels.values():
        if not p.for_mechanisms or mech_set & set(p.for_mechanisms):
            panel += [a for a in p.analytes if a not in panel]
            panel_sources.append(
                {"panel": p.name, "analytes": list(p.analytes), "citations": list(p.citations)}
            )
            cited += p.citations
    for c in chosen:
        cited += ranking.loc[ranking["format"] == c, "citations"].iloc[0]
    return Recommendation(
        modality=mod.key,
        modality_name=mod.name,
        target=target,
        fc=fc_key,
        intended_use=use.key,
        options=options,
        mechanisms=list(needs.values()),
        ranking=ranking,
        chosen=chosen,
        uncovered=uncovered,
        notes=notes,
        controls=controls,
        panel=panel,
        panel_sources=panel_sources,
        citations=sorted(set(cited) | {"perkins2026"}),
        kb_version=kb.version,
        kb=kb,
    )


def _choose(ranking: pd.DataFrame, needs: list[str], covered: str, size: int) -> list[str]:
    """The best format, then for each still-uncovered mechanism the best format detecting it."""
    chosen = [ranking.loc[0, "format"]]
    for mech in needs:
        if len(chosen) >= size:
            break
        if any(_level(ranking, c, mech) == covered for c in chosen):
            continue
        for fmt in ranking["format"]:
            if fmt not in chosen and _level(ranking, fmt, mech) == covered:
                chosen.append(fmt)
                break
    return chosen


def _level(ranking: pd.DataFrame, fmt: str, mech: str) -> str:
    return ranking.loc[ranking["format"] == fmt, "detects"].iloc[0][mech]
