"""Evidence mapping: place a study's assay results and a cohort's clinical findings on the AOP.

Each key event of the pathway lists its *in vitro readouts* and *clinical biomarkers*
(``data/crs_aop.toml``). Mapping asks, per key event, which of those the data measured,
which moved, and in how many donors or patients:

* **Mechanism-aware** (``data/aop_evidence.toml``, :mod:`cytosafe.aop.mechanisms`): a
  molecular initiating event gets evidence only from a molecule whose modality engages
  it (FcgR only when the Fc format engages FcgR), and a readout counts for an event only
  when the assay format holds the cells the event is about (IL-6 and IL-8 from PBMC are
  not endothelial activation). What was measured but not counted is listed with the
  reason (:func:`evidence_exclusions`). Positive controls are mapped as the assay's own
  sensitivity evidence.
* **Assay evidence** (:func:`evidence_from_responses`) reads the donor-level responses of a
  hazard analysis (:func:`cytosafe.hazard.donor_responses`, ``responses.csv`` of
  ``cytosafe analyze``): one row per donor x treatment x concentration x analyte with the
  ``responder`` call of the study's rule set. For each test article x assay format x key
  event, a donor counts as positive when at least one of the key event's readouts was
  called a response at any tested concentration; ``n_total`` is the donors assessed on
  any of those readouts. A readout the study did not measure adds nothing (absence of
  data is not evidence of absence), and a key event without measured readouts gets no
  record.
* **Clinical evidence** (:func:`evidence_from_findings`) reads a long table of clinical
  findings per patient (``patient_id, finding, present``), e.g. ``fever``,
  ``hypotension``, ``hypoxia`` as derived from graded observations
  (:func:`findings_from_timeline`). A patient counts as positive for a key event when any
  of its clinical biomarkers was present; ``n_total`` is the patients with that finding
  assessed.

Readout names are matched after normalising common spellings (``IFN-γ``, ``IFNg`` and
``IFN-gamma`` are one readout; ``IL-1β``/``IL-1b``; ``TNF-α``/``TNF``), see
:func:`normalise_readout`. The mapping is descriptive: it says what moved, it does not
weigh it; the quantitative AOP (:class:`~cytosafe.aop.CrsBayesNetwork`) does that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from cytosafe.aop.graph import AdverseOutcomePathway, EvidenceRecord
from cytosafe.aop.mechanisms import EvidenceRules, load_evidence_rules
from cytosafe.errors import InputError

__all__ = [
    "EVIDENCE_COLUMNS",
    "EXCLUSION_COLUMNS",
    "evidence_exclusions",
    "evidence_from_findings",
    "evidence_from_responses",
    "evidence_table",
    "findings_from_timeline",
    "map_evidence",
    "normalise_readout",
]

#: Columns of :func:`evidence_table`.
EVIDENCE_COLUMNS = (
    "event",
    "event_type",
    "event_title",
    "source",
    "study",
    "readout",
    "direction",
    "n_positive",
    "n_total",
    "unit",
    "fraction",
    "note",
)

_GREEK = {"γ": "g", "β": "b", "α": "a"}
_SUFFIXES = (("gamma", "g"), ("beta", "b"), ("alpha", "a"))


def normalise_readout(name: str) -> str:
    """A readout or analyte name reduced to a matching key.

    >>> normalise_readout("IFN-γ") == normalise_readout("IFNg") == normalise_readout("IFN-gamma")
    True
    >>> normalise_readout("TNF-alpha") == normalise_readout("TNF")
    True
    """
    text = str(name).strip().lower()
    for greek, latin in _GREEK.items():
        text = text.replace(greek, latin)
    text = re.sub(r"[^a-z0-9]+", "", text)
    for long, short in _SUFFIXES:
        if text.endswith(long):
            text = text[: -len(long)] + short
    if text in {"tnfa"}:  # TNF-alpha is what every CRA panel means by TNF
        text = "tnf"
    return text


def _require(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"the {what} table lacks column(s) {', '.join(missing)}",
            field=missing[0],
            expected=", ".join(columns),
        )


def evidence_from_responses(
    aop: AdverseOutcomePathway,
    responses: pd.DataFrame,
    *,
    study: str | None = None,
    roles: tuple[str, ...] = ("test",),
    modality: str | None = None,
    fc_format: str | None = None,
    rules: EvidenceRules | None = None,
    source: str = "assay",
) -> list[EvidenceRecord]:
    """Assay evidence per treatment x format x event from donor-level responses.

    Mechanism-aware (``data/aop_evidence.toml``): an MIE gets evidence only from a
    molecule whose ``modality`` engages it (the FcgR MIE only when its ``fc_format``
    engages FcgR), and an event counts a readout only when the format holds the cells
    the event is about (no endothelial activation from PBMC). What was left out, and
    why, is :func:`evidence_exclusions`.

    Parameters
    ----------
    aop:
        The pathway (:func:`~cytosafe.aop.load_crs_aop`).
    responses:
        Donor-level responses with ``donor_id, treatment, treatment_role, assay_format,
        analyte, responder``.
    study:
        Label of the study (default: its ``study_id`` when the table has one).
    roles:
        Treatment roles to map (default: test articles only).
    modality:
        The test article's modality (drug_modalities.toml); without it no MIE gets
        evidence, as the mechanism that would start it is unknown.
    fc_format:
        The test article's Fc format (default: the modality's, where it has one).
    rules:
        The mapping rules (:func:`~cytosafe.aop.mechanisms.load_evidence_rules`).
    source:
        The records' ``source`` (``assay``; ``positive control`` for the assay's own
        sensitivity evidence).

    Returns
    -------
    list of EvidenceRecord
        ``unit="donors"``, ``readout`` the readouts measured (joined by ``, ``),
        ``direction="increase"``; the note names the treatment and format and the
        readouts that moved.
    """
    return _assay_evidence(
        aop, responses, study=study, roles=roles, modality=modality, fc_format=fc_format,
        rules=rules, source=source,
    )[0]  # fmt: skip


def evidence_exclusions(
    aop: AdverseOutcomePathway,
    responses: pd.DataFrame,
    *,
    roles: tuple[str, ...] = ("test",),
    modality: str | None = None,
    fc_format: str | None = None,
    rules: EvidenceRules | None = None,
) -> pd.DataFrame:
    """The readouts :func:`evidence_from_responses` measured but did not count, per
    treatment x format x event, with the reason: ``event, treatment, assay_format,
    readout, reason``."""
    return _assay_evidence(
        aop, responses, study=None, roles=roles, modality=modality, fc_format=fc_format,
        rules=rules, source="assay",
    )[1]  # fmt: skip


EXCLUSION_COLUMNS = ("event", "treatment", "assay_format", "readout", "reason")


def _assay_evidence(
    aop: AdverseOutcomePathway,
    responses: pd.DataFrame,
    *,
    study: str | None,
    roles: tuple[str, ...],
    modality: str | None,
    fc_format: str | None,
    rules: EvidenceRules | None,
    source: str,
) -> tuple[list[EvidenceRecord], pd.DataFrame]:
    columns = ("donor_id", "treatment", "treatment_role", "assay_format", "analyte", "responder")
    _require(responses, columns, "responses")
    rules = rules or load_evidence_rules()
    engaged: tuple[str, ...] = ()
    fcgr_why = None
    target_dependent = False
    if modality is not None:
        if modality not in rules.modalities:
            raise InputError(
                f"no evidence-mapping rules for modality {modality!r}",
                file=rules.file,
                field="modality",
                expected=", ".join(rules.modalities),
            )
        if fc_format is not None and fc_format not in rules.fcgr_crosslinking:
            raise InputError(
                f"unknown Fc format {fc_format!r}",
                field="fc_format",
                expected=", ".join(rules.fcgr_crosslinking),
            )
        engaged, fcgr_why = rules.engaged_mies(modality, fc_format)
        target_dependent = rules.modalities[modality].target_cells
    table = responses[responses["treatment_role"].isin(roles)].copy()
    if study is None and "study_id" in table.columns and table["study_id"].nunique() == 1:
        study = str(table["study_id"].iat[0])
    table["_readout"] = table["analyte"].map(normalise_readout)
    table["responder"] = table["responder"].fillna(False).astype(bool)
    records: list[EvidenceRecord] = []
    excluded: list[tuple[str, str, str, str, str]] = []
    for event in aop.events.values():
        wanted = {normalise_readout(r): r for r in event.in_vitro_readouts}
        if not wanted:
            continue
        hit = table[table["_readout"].isin(wanted)]
        needs = rules.needs_cells.get(event.key, ())
        for (treatment, fmt), group in hit.groupby(["treatment", "assay_format"], sort=True):
            measured = sorted(set(group["analyte"]))
            why = _why_not(event, fmt, needs, rules, modality, engaged, fcgr_why, source)
            if why is not None:
                excluded.append((event.key, treatment, fmt, ", ".join(measured), why))
                continue
            per_donor = group.groupby("donor_id")["responder"].any()
            moved = sorted(
                {a for a, r in zip(group["analyte"], group["responder"], strict=True) if r}
            )
            note = f"{treatment} in {fmt}: " + (
                f"{', '.join(moved)} moved" if moved else "no readout moved"
            )
            cells = rules.cells(fmt) or ()
            if (
                event.type == "MIE"
                and target_dependent
                and "target cells" not in cells
                and not moved
            ):
                note += (
                    " (the format holds no added target cells: unless the target is on blood cells, "
                    "a T-cell engager's silence here does not argue against engagement)"
                )
            if source != "assay":
                note = f"{source} (the assay's own sensitivity): {note}"
            records.append(
                EvidenceRecord(
                    event=event.key,
                    source=source,
                    readout=", ".join(measured),
                    direction="increase",
                    n_positive=int(per_donor.sum()),
                    n_total=int(per_donor.size),
                    unit="donors",
                    study=study,
                    note=note,
                )
            )
    return records, pd.DataFrame(excluded, columns=list(EXCLUSION_COLUMNS))


def _why_not(
    event,
    fmt: str,
    needs: tuple[str, ...],
    rules: EvidenceRules,
    modality: str | None,
    engaged: tuple[str, ...],
    fcgr_why: str | None,
    source: str,
) -> str | None:
    """Why a readout in ``fmt`` is not evidence for ``event`` (``None``: it is)."""
    if event.type == "MIE":
        if source != "assay":
            return "a positive control's mechanism is not the test article's: no MIE evidence"
        if modality is None:
            return "no modality given: the mechanism that would start this event is unknown"
        if event.key == "mie_fcgr_engagement" and fcgr_why is not None:
            return fcgr_why
        if event.key not in engaged:
            return (
                f"a {modality} does not engage {event.key} "
                f"(engages {', '.join(engaged) or 'no MIE of the pathway'}; aop_evidence.toml)"
            )
    if needs:
        cells = rules.cells(fmt)
        if cells is None:
            return (
                f"format {fmt!r} is not described in aop_evidence.toml: its cells are "
                f"unknown, and {event.key} needs {' or '.join(needs)}"
            )
        if not set(needs) & set(cells):
            return (
                f"{fmt} holds no {' or '.join(needs)} ({', '.join(cells)}), so its "
                f"readouts cannot show {event.key}"
            )
    return None


#: Clinical findings derived from graded observations, and where each comes from.
FINDINGS = ("fever", "hypotension", "hypoxia")


def findings_from_timeline(timeline: pd.DataFrame) -> pd.DataFrame:
    """Per patient, whether fever, hypotension and hypoxia were ever present.

    ``timeline`` is the grade-at-every-observation table of the clinical grading engine
    (``timeline.csv`` of ``cytosafe grade``; :func:`cytosafe.clinical.grade`). Boolean
    columns ``fever``, ``hypotension`` and ``hypoxia`` are used when present; otherwise
    the findings are derived from the held vital signs and support on each row, with the
    clinical engine's default definitions (``data/clinical_scales.toml``; Lee et al., Biol
    Blood Marrow Transplant 2019;25:625):

    * fever: ``temperature_c`` >= 38.0;
    * hypotension: any vasopressor running (``n_vasopressors`` > 0) or ``systolic_bp``
      < 90 mmHg;
    * hypoxia: supplemental oxygen (an ``oxygen_device`` other than room air).

    Returns ``patient_id, finding, present``.
    """
    _require(timeline, ("patient_id",), "timeline")
    table = timeline.copy()
    if not set(FINDINGS) <= set(table.columns):
        _require(
            table,
            ("temperature_c", "systolic_bp", "n_vasopressors", "oxygen_device"),
            "timeline",
        )
        temperature = pd.to_numeric(table["temperature_c"], errors="coerce")
        systolic = pd.to_numeric(table["systolic_bp"], errors="coerce")
        pressors = pd.to_numeric(table["n_vasopressors"], errors="coerce").fillna(0)
        device = table["oxygen_device"].fillna("room_air").astype(str).str.strip()
        table["fever"] = temperature >= 38.0
        table["hypotension"] = (pressors > 0) | (systolic < 90)
        table["hypoxia"] = ~device.isin(["room_air", ""])
    long = table.melt(
        id_vars="patient_id", value_vars=list(FINDINGS), var_name="finding", value_name="present"
    )
    long["present"] = long["present"].fillna(False).astype(bool)
    # observed=False (pandas' current default, named so as not to change with it): a
    # categorical patient column keeps its every patient.
    return long.groupby(["patient_id", "finding"], as_index=False, observed=False)["present"].any()


def evidence_from_findings(
    aop: AdverseOutcomePathway, findings: pd.DataFrame, *, study: str | None = None
) -> list[EvidenceRecord]:
    """Clinical evidence per key event from per-patient findings.

    ``findings`` has ``patient_id, finding, present`` (one row per patient and finding
    assessed; see :func:`findings_from_timeline`). A finding is matched to the key
    events whose ``clinical_biomarkers`` name it.
    """
    _require(findings, ("patient_id", "finding", "present"), "findings")
    table = findings.copy()
    table["_readout"] = table["finding"].map(normalise_readout)
    table["present"] = table["present"].fillna(False).astype(bool)
    records: list[EvidenceRecord] = []
    for event in aop.events.values():
        wanted = {normalise_readout(b) for b in event.clinical_biomarkers}
        hit = table[table["_readout"].isin(wanted)]
        if hit.empty:
            continue
        per_patient = hit.groupby("patient_id", observed=False)["present"].any()
        counts = hit[hit["present"]].groupby("finding")["patient_id"].nunique()
        records.append(
            EvidenceRecord(
                event=event.key,
                source="clinical",
                readout=", ".join(sorted(set(hit["finding"]))),
                direction="present",
                n_positive=int(per_patient.sum()),
                n_total=int(per_patient.size),
                unit="patients",
                study=study,
                note="; ".join(f"{f} in {n}" for f, n in counts.items()) or "none present",
            )
        )
    return records


def evidence_table(aop: AdverseOutcomePathway) -> pd.DataFrame:
    """The per-AOP evidence table: one row per attached record, in pathway order."""
    order = {key: i for i, key in enumerate(aop.events)}
    rows = []
    for key in sorted(aop.evidence, key=order.__getitem__):
        event = aop.events[key]
        for r in aop.evidence[key]:
            rows.append(
                {
                    "event": key,
                    "event_type": event.type,
                    "event_title": event.title,
                    "source": r.source,
                    "study": r.study,
                    "readout": r.readout,
                    "direction": r.direction,
                    "n_positive": r.n_positive,
                    "n_total": r.n_total,
                    "unit": r.unit,
                    "fraction": r.n_positive / r.n_total if r.n_total else float("nan"),
                    "note": r.note,
                }
            )
    return pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS))


def map_evidence(
    aop: AdverseOutcomePathway,
    *,
    responses: pd.DataFrame | None = None,
    findings: pd.DataFrame | None = None,
    study: str | None = None,
    modality: str | None = None,
    fc_format: str | None = None,
    positive_controls: bool = True,
    rules: EvidenceRules | None = None,
) -> tuple[pd.DataFrame, set[str]]:
    """Attach assay and/or clinical evidence to ``aop``; return the table and the events
    with at least one positive donor or patient among the test articles and patients (to
    highlight in :func:`aop_svg`).

    Test articles are mapped through ``modality`` (and ``fc_format``); positive controls,
    when ``positive_controls``, are mapped as the assay's own sensitivity evidence
    (``source="positive control"``, key events only) and do not light the pathway."""
    if responses is None and findings is None:
        raise InputError("nothing to map", expected="hazard responses, clinical findings, or both")
    records: list[EvidenceRecord] = []
    lit: set[str] = set()
    if responses is not None:
        tests = evidence_from_responses(
            aop, responses, study=study, modality=modality, fc_format=fc_format, rules=rules
        )
        records += tests
        lit |= {r.event for r in tests if r.n_positive > 0}
        if positive_controls:
            records += evidence_from_responses(
                aop,
                responses,
                study=study,
                roles=("positive_control",),
                rules=rules,
                source="positive control",
            )
    if findings is not None:
        clinical = evidence_from_findings(aop, findings, study=study)
        records += clinical
        lit |= {r.event for r in clinical if r.n_positive > 0}
    for record in records:
        aop.attach_evidence(record)
    return evidence_table(aop), lit
