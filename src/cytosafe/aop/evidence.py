"""Evidence mapping: place a study's assay results and a cohort's clinical findings on the AOP.

Each key event of the pathway lists its *in vitro readouts* and *clinical biomarkers*
(``data/crs_aop.toml``). Mapping asks, per key event, which of those the data measured,
which moved, and in how many donors or patients:

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
from cytosafe.errors import InputError

__all__ = [
    "EVIDENCE_COLUMNS",
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
) -> list[EvidenceRecord]:
    """Assay evidence per test article x format x key event from donor-level responses.

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

    Returns
    -------
    list of EvidenceRecord
        ``source="assay"``, ``unit="donors"``, ``readout`` the readouts measured (joined
        by ``, ``), ``direction="increase"``; the note names the treatment and format and
        the readouts that moved.
    """
    columns = ("donor_id", "treatment", "treatment_role", "assay_format", "analyte", "responder")
    _require(responses, columns, "responses")
    table = responses[responses["treatment_role"].isin(roles)].copy()
    if study is None and "study_id" in table.columns and table["study_id"].nunique() == 1:
        study = str(table["study_id"].iat[0])
    table["_readout"] = table["analyte"].map(normalise_readout)
    table["responder"] = table["responder"].fillna(False).astype(bool)
    records: list[EvidenceRecord] = []
    for event in aop.events.values():
        wanted = {normalise_readout(r): r for r in event.in_vitro_readouts}
        if not wanted:
            continue
        hit = table[table["_readout"].isin(wanted)]
        for (treatment, fmt), group in hit.groupby(["treatment", "assay_format"], sort=True):
            per_donor = group.groupby("donor_id")["responder"].any()
            moved = sorted(
                {a for a, r in zip(group["analyte"], group["responder"], strict=True) if r}
            )
            measured = sorted(set(group["analyte"]))
            records.append(
                EvidenceRecord(
                    event=event.key,
                    source="assay",
                    readout=", ".join(measured),
                    direction="increase",
                    n_positive=int(per_donor.sum()),
                    n_total=int(per_donor.size),
                    unit="donors",
                    study=study,
                    note=f"{treatment} in {fmt}: "
                    + (f"{', '.join(moved)} moved" if moved else "no readout moved"),
                )
            )
    return records


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
    return long.groupby(["patient_id", "finding"], as_index=False)["present"].any()


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
        per_patient = hit.groupby("patient_id")["present"].any()
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
) -> tuple[pd.DataFrame, set[str]]:
    """Attach assay and/or clinical evidence to ``aop``; return the table and the events
    with at least one positive donor or patient (to highlight in :func:`aop_svg`)."""
    if responses is None and findings is None:
        raise InputError("nothing to map", expected="hazard responses, clinical findings, or both")
    records: list[EvidenceRecord] = []
    if responses is not None:
        records += evidence_from_responses(aop, responses, study=study)
    if findings is not None:
        records += evidence_from_findings(aop, findings, study=study)
    for record in records:
        aop.attach_evidence(record)
    return evidence_table(aop), {r.event for r in records if r.n_positive > 0}
