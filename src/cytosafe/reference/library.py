"""The reference compound library: published CRA results and clinical outcomes, validated.

The library lives in ``cytosafe/data/reference_compounds.toml`` (a user may pass their own
file of the same schema). :func:`load_library` reads it into typed records and checks
that every entry is usable as evidence:

* every readout and every clinical outcome names a source of the file's ``[[reference]]``
  list and a location in it (table, figure, abstract);
* assay formats, modalities, mechanisms and Fc formats are keys of the project's
  vocabularies (``assay_formats.toml``, ``drug_modalities.toml``);
* numbers are finite and not negative;
* an unknown key is an error, never ignored.

Every error is an :class:`~cytosafe.errors.InputError` naming the file, the entry
(``compound[3] 'alemtuzumab'.readout[1]``) and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from cytosafe import data
from cytosafe.assays import KnowledgeBase, load_knowledge_base
from cytosafe.data import Fields, entries, unique_keys

__all__ = [
    "MEASURES",
    "PUBLISHED_CALLS",
    "ClinicalOutcome",
    "Compound",
    "DonorPanel",
    "Readout",
    "ReferenceLibrary",
    "Source",
    "load_library",
]

DATA_FILE = "reference_compounds.toml"
SCHEMA = "cytosafe.reference_compounds"

#: How a paper reports an in vitro result.
MEASURES = ("fold_change", "concentration", "percent_of_positive", "qualitative")
#: The authors' own reading of a result.
PUBLISHED_CALLS = ("positive", "weak", "negative")
#: Fc format for an antibody outside the vocabulary (then ``fc_note`` says what it is).
OTHER_FC = "other"

_COMPOUND_KEYS = {
    "key", "name", "modality", "target", "mechanisms", "fc_format", "fc_note", "note",
    "clinical", "readout",
}  # fmt: skip
_CLINICAL_KEYS = {
    "event", "crs_any", "crs_severe", "crs_any_percent", "crs_severe_percent", "patients",
    "dose", "source", "location", "confirmed", "note",
}  # fmt: skip
_READOUT_KEYS = {
    "format", "measure", "value", "value_high", "control_value", "unit", "analyte",
    "comparator", "published_call", "donors", "donors_for_power", "citation", "location",
    "confirmed", "note",
}  # fmt: skip
_REFERENCE_KEYS = {"key", "citation", "note"}
_PANEL_KEYS = {"donors", "citations", "basis"}
_TOP_KEYS = {"schema", "version", "reference", "compound", "donor_panel"}


@dataclass(frozen=True)
class Source:
    """One publication or label the library cites."""

    key: str
    citation: str
    note: str | None = None


@dataclass(frozen=True)
class Readout:
    """One published in vitro result, as the paper reports it."""

    compound: str
    format: str
    measure: str
    analyte: str
    comparator: str
    citation: str
    location: str
    confirmed: bool
    value: float | None = None
    value_high: float | None = None
    control_value: float | None = None
    unit: str | None = None
    published_call: str | None = None
    donors: int | None = None
    donors_for_power: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class ClinicalOutcome:
    """What happened in people: CRS (any grade) and grade >= 3, with source and dose."""

    event: str
    crs_any: bool
    source: str
    location: str
    dose: str
    confirmed: bool
    crs_severe: bool | None = None
    crs_any_percent: float | None = None
    crs_severe_percent: float | None = None
    patients: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Compound:
    """A reference compound: what it is, what the CRA papers saw, what the clinic saw."""

    key: str
    name: str
    modality: str
    target: str
    mechanisms: tuple[str, ...]
    fc_format: str
    clinical: ClinicalOutcome
    readouts: tuple[Readout, ...]
    fc_note: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class DonorPanel:
    """The donor panel a calibration assumes a study has (``[donor_panel]``): a readout
    whose paper needs more donors for 90 % power is not counted as detected."""

    donors: int
    citations: tuple[str, ...]
    basis: str


@dataclass(frozen=True)
class ReferenceLibrary:
    """The validated library: its sources and compounds (by key), and where it came from;
    ``donor_panel`` when the file states the panel its calibration assumes."""

    version: str
    file: str
    sources: dict[str, Source]
    compounds: dict[str, Compound]
    donor_panel: DonorPanel | None = None

    def compound(self, key: str) -> Compound:
        from cytosafe.errors import InputError

        if key not in self.compounds:
            raise InputError(
                f"unknown reference compound {key!r}",
                file=self.file,
                field="compound",
                expected=", ".join(self.compounds),
            )
        return self.compounds[key]

    def compounds_table(self) -> pd.DataFrame:
        """One row per compound: identity and clinical outcome."""
        rows = []
        for c in self.compounds.values():
            o = c.clinical
            rows.append(
                {
                    "compound": c.key,
                    "name": c.name,
                    "modality": c.modality,
                    "target": c.target,
                    "mechanisms": ", ".join(c.mechanisms),
                    "fc_format": c.fc_format + (f" ({c.fc_note})" if c.fc_note else ""),
                    "clinical_event": o.event,
                    "crs_any": o.crs_any,
                    "crs_severe": o.crs_severe,
                    "crs_any_percent": o.crs_any_percent,
                    "crs_severe_percent": o.crs_severe_percent,
                    "patients": o.patients,
                    "dose": o.dose,
                    "clinical_source_key": o.source,
                    "clinical_source": self.sources[o.source].citation,
                    "clinical_location": o.location,
                    "clinical_confirmed": o.confirmed,
                    "clinical_note": o.note,
                    "readouts": len(c.readouts),
                }
            )
        return pd.DataFrame(rows)

    def readouts_table(self) -> pd.DataFrame:
        """One row per published readout, with its full citation."""
        rows = []
        for c in self.compounds.values():
            for r in c.readouts:
                row = {f: getattr(r, f) for f in Readout.__dataclass_fields__}
                row["source"] = self.sources[r.citation].citation
                rows.append(row)
        columns = [*Readout.__dataclass_fields__, "source"]
        return pd.DataFrame(rows, columns=columns)


def load_library(
    path: str | Path | None = None, *, knowledge: KnowledgeBase | None = None
) -> ReferenceLibrary:
    """Load and validate the reference compound library (the shipped file by default).

    Parameters
    ----------
    path:
        A library file of schema ``cytosafe.reference_compounds``; the shipped one when
        ``None``.
    knowledge:
        The assay knowledge base whose vocabularies (formats, modalities, mechanisms, Fc
        formats) entries must use; the shipped one by default.

    Raises
    ------
    InputError
        A malformed entry, named by file, entry and field: an unknown key, a readout
        without citation or location, a format or modality outside the vocabularies, a
        number that is not finite, a citation that is not in the file's sources.

    Examples
    --------
    >>> lib = load_library()
    >>> lib.compound("tgn1412").clinical.crs_severe
    True
    """
    if path is None and knowledge is None:
        return _shipped()
    file = Path(path) if path is not None else data.path(DATA_FILE)
    return _load(file, knowledge or load_knowledge_base())


@cache
def _shipped() -> ReferenceLibrary:
    return _load(data.path(DATA_FILE), load_knowledge_base())


def _unknown_keys(f: Fields, allowed: set[str]) -> None:
    unknown = sorted(set(f.table) - allowed)
    if unknown:
        f.fail(
            f"unknown field {unknown[0]!r}",
            field=unknown[0],
            expected=", ".join(sorted(allowed)),
        )


def _power_donors(f: Fields) -> int | None:
    """``donors_for_power``: a paired test across donors needs at least 2."""
    n = _finite(f, "donors_for_power", integer=True)
    if n is not None and n < 2:
        f.fail(
            f"{n} donors", field="donors_for_power", expected="a whole number >= 2 (a paired test)"
        )
    return n


def _finite(f: Fields, field: str, *, integer: bool = False) -> float | int | None:
    if field not in f.table:
        return None
    value = f.get(field, (int, float), expected="a finite number")
    if not math.isfinite(value):
        f.fail(f"{value} is not finite", field=field, expected="a finite number")
    if value < 0:
        f.fail(f"{value} is negative", field=field, expected="a number >= 0")
    if integer:
        if int(value) != value:
            f.fail(f"{value} is not a whole number", field=field, expected="a whole number")
        return int(value)
    return float(value)


def _load(file: Path, kb: KnowledgeBase) -> ReferenceLibrary:
    raw = data.read_toml(file, schema=SCHEMA)
    top = Fields(raw, file, "file")
    _unknown_keys(top, _TOP_KEYS)

    sources: dict[str, Source] = {}
    for key, f in unique_keys(entries(raw, "reference", file)).items():
        _unknown_keys(f, _REFERENCE_KEYS)
        sources[key] = Source(
            key=key, citation=f.text("citation"), note=f.text("note", default=None)
        )

    def cited(f: Fields, field: str) -> str:
        key = f.text(field)
        if key not in sources:
            f.fail(
                f"cites {key!r}, which is not in the file's [[reference]] list",
                field=field,
                expected=", ".join(sources),
            )
        return key

    fc_keys = (*kb.fc_formats, OTHER_FC)
    compounds: dict[str, Compound] = {}
    for key, f in unique_keys(entries(raw, "compound", file)).items():
        _unknown_keys(f, _COMPOUND_KEYS)
        modality = f.choice("modality", kb.modalities)
        mechanisms = f.strings("mechanisms")
        for i, m in enumerate(mechanisms):
            if m not in kb.mechanisms:
                f.fail(
                    f"mechanism {i} {m!r} is not in the vocabulary",
                    field="mechanisms",
                    expected=", ".join(kb.mechanisms),
                )
        fc_format = f.choice("fc_format", fc_keys)
        fc_note = f.text("fc_note", default=None)
        if fc_format == OTHER_FC and fc_note is None:
            f.fail("an 'other' Fc format needs fc_note", field="fc_note", expected="text")

        c = Fields(
            f.get("clinical", dict, expected="a [compound.clinical] table"),
            file,
            f"{f.where}.clinical",
        )
        _unknown_keys(c, _CLINICAL_KEYS)
        crs_any = c.get("crs_any", bool)
        clinical = ClinicalOutcome(
            event=c.text("event"),
            crs_any=crs_any,
            # no CRS at all is no severe CRS either
            crs_severe=c.get("crs_severe", bool, default=None if crs_any else False),
            crs_any_percent=_percent(c, "crs_any_percent"),
            crs_severe_percent=_percent(c, "crs_severe_percent"),
            patients=_finite(c, "patients", integer=True),
            dose=c.text("dose"),
            source=cited(c, "source"),
            location=c.text("location"),
            confirmed=c.get("confirmed", bool),
            note=c.text("note", default=None),
        )
        if clinical.crs_severe and not clinical.crs_any:
            c.fail(
                "severe CRS without CRS of any grade", field="crs_severe", expected="crs_any = true"
            )

        readouts = []
        for r in f.entries("readout"):
            _unknown_keys(r, _READOUT_KEYS)
            readouts.append(_readout(r, key, kb, cited))
        compounds[key] = Compound(
            key=key,
            name=f.text("name"),
            modality=modality,
            target=f.text("target"),
            mechanisms=mechanisms,
            fc_format=fc_format,
            fc_note=fc_note,
            clinical=clinical,
            readouts=tuple(readouts),
            note=f.text("note", default=None),
        )
    panel = None
    if "donor_panel" in raw:
        p = Fields(
            top.get("donor_panel", dict, expected="a [donor_panel] table"), file, "donor_panel"
        )
        _unknown_keys(p, _PANEL_KEYS)
        donors = _finite(p, "donors", integer=True)
        if donors is None or donors < 1:
            p.fail(f"{donors!r} donors", field="donors", expected="a whole number >= 1")
        citations = p.strings("citations")
        for i, k in enumerate(citations):
            if k not in sources:
                p.fail(
                    f"citation {i} {k!r} is not in the file's [[reference]] list",
                    field="citations",
                    expected=", ".join(sources),
                )
        panel = DonorPanel(donors=donors, citations=citations, basis=p.text("basis"))
    return ReferenceLibrary(
        version=top.text("version"),
        file=str(file),
        sources=sources,
        compounds=compounds,
        donor_panel=panel,
    )


def _percent(f: Fields, field: str) -> float | None:
    value = _finite(f, field)
    if value is not None and value > 100:
        f.fail(f"{value} is above 100", field=field, expected="a percentage 0-100")
    return value


def _readout(r: Fields, compound: str, kb: KnowledgeBase, cited) -> Readout:
    measure = r.choice("measure", MEASURES)
    value = _finite(r, "value")
    value_high = _finite(r, "value_high")
    control = _finite(r, "control_value")
    call = r.choice("published_call", PUBLISHED_CALLS, default=None)
    if measure == "qualitative":
        for field, v in (("value", value), ("value_high", value_high), ("control_value", control)):
            if v is not None:
                r.fail(
                    "a qualitative readout has no number",
                    field=field,
                    expected="measure fold_change, concentration or percent_of_positive",
                )
    elif value is None:
        r.fail(f"a {measure} readout needs its value", field="value", expected="a number")
    if value_high is not None and value is not None and value_high < value:
        r.fail(
            "the range's upper end is below its lower end",
            field="value_high",
            expected=f"a number >= {value:g}",
        )
    unit = r.text("unit", default=None)
    if measure == "concentration" and unit is None:
        r.fail("a concentration needs its unit", field="unit", expected="e.g. pg/mL")
    return Readout(
        compound=compound,
        format=r.choice("format", kb.formats),
        measure=measure,
        analyte=r.text("analyte"),
        comparator=r.text("comparator"),
        citation=cited(r, "citation"),
        location=r.text("location"),
        confirmed=r.get("confirmed", bool),
        value=value,
        value_high=value_high,
        control_value=control,
        unit=unit,
        published_call=call,
        donors=_finite(r, "donors", integer=True),
        donors_for_power=_power_donors(r),
        note=r.text("note", default=None),
    )
