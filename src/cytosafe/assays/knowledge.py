"""The assay knowledge base: CRA formats, drug modalities, Fc formats, targets, controls.

All facts come from two versioned data files, ``data/assay_formats.toml`` and
``data/drug_modalities.toml``, each entry with citations into ``data/crs_references.toml``
and a ``status`` ("confirmed" against the cited source, or "unconfirmed"). Loading
validates the files and fails with an :class:`~cytosafe.errors.InputError` that names the
file, the entry and the field.

Examples
--------
>>> kb = load_knowledge_base()
>>> kb.format("pbmc_aqueous").name
'PBMC, aqueous (soluble) presentation'
>>> kb.detection("pbmc_high_density_preculture", "cd28_superagonism").level
'yes'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cytosafe.assays.references import Reference, load_references
from cytosafe.data import Fields, entries, read_toml, unique_keys
from cytosafe.data import path as data_path
from cytosafe.errors import InputError

__all__ = [
    "LEVELS",
    "AssayFormat",
    "Control",
    "Detection",
    "FcFormat",
    "IntendedUse",
    "KnowledgeBase",
    "Mechanism",
    "Modality",
    "ModalityMechanism",
    "Option",
    "Panel",
    "ReferenceDrugResult",
    "Target",
    "load_knowledge_base",
]

#: Detection levels, from best to worst.
LEVELS = ("yes", "weak", "no")
_DRUG_RESULTS = ("flagged", "weak", "missed", "negative")
_ROLES = ("primary", "secondary")
_FCGR = ("expected", "reduced", "not_expected")
_CONTROL_ROLES = ("positive", "negative", "specificity")


@dataclass(frozen=True)
class Sourced:
    """Anything that carries citations and a confirmation status."""

    citations: tuple[str, ...]
    status: str

    @property
    def confirmed(self) -> bool:
        return self.status == "confirmed"


@dataclass(frozen=True)
class Mechanism(Sourced):
    key: str
    name: str
    description: str
    aop_event: str


@dataclass(frozen=True)
class Detection(Sourced):
    """What a format sees of one mechanism (``level`` is yes / weak / no)."""

    mechanism: str
    level: str
    note: str | None = None
    option: str | None = None
    choice: str | None = None


@dataclass(frozen=True)
class ReferenceDrugResult(Sourced):
    drug: str
    result: str
    note: str | None = None


@dataclass(frozen=True)
class OptionChoice(Sourced):
    key: str
    level: str
    note: str | None = None


@dataclass(frozen=True)
class Option:
    """A point where the literature disagrees; ``default`` is used unless the user chooses."""

    key: str
    question: str
    default: str
    choices: dict[str, OptionChoice]


@dataclass(frozen=True)
class AssayFormat(Sourced):
    key: str
    name: str
    description: str
    donors: str
    incubation: str
    readouts: tuple[str, ...]
    cost: int
    throughput: int
    complexity: int
    detects: tuple[Detection, ...]
    reference_drugs: tuple[ReferenceDrugResult, ...]

    def flagged(self) -> tuple[str, ...]:
        return tuple(r.drug for r in self.reference_drugs if r.result in ("flagged", "weak"))

    def missed(self) -> tuple[str, ...]:
        return tuple(r.drug for r in self.reference_drugs if r.result == "missed")


@dataclass(frozen=True)
class ModalityMechanism(Sourced):
    key: str
    role: str
    note: str | None = None


@dataclass(frozen=True)
class Modality(Sourced):
    key: str
    name: str
    aliases: tuple[str, ...]
    aop_mie: str
    reference_drugs: tuple[str, ...]
    mechanisms: tuple[ModalityMechanism, ...]
    note: str | None = None


@dataclass(frozen=True)
class FcFormat(Sourced):
    key: str
    name: str
    fcgr_crosslinking: str
    note: str | None = None


@dataclass(frozen=True)
class Target(Sourced):
    key: str
    aliases: tuple[str, ...]
    on_blood_cells: bool
    implies_mechanisms: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class Control(Sourced):
    key: str
    role: str
    name: str
    for_mechanisms: tuple[str, ...]
    not_for_modalities: tuple[str, ...] = ()
    only_for_modalities: tuple[str, ...] = ()

    def applies_to(self, modality: str, mechanisms: set[str]) -> bool:
        """Whether the control belongs in a study of ``modality`` with ``mechanisms``."""
        if modality in self.not_for_modalities:
            return False
        if self.only_for_modalities and modality not in self.only_for_modalities:
            return False
        return not self.for_mechanisms or bool(mechanisms & set(self.for_mechanisms))


@dataclass(frozen=True)
class Panel(Sourced):
    key: str
    name: str
    analytes: tuple[str, ...]
    for_mechanisms: tuple[str, ...]


@dataclass(frozen=True)
class IntendedUse(Sourced):
    key: str
    name: str
    description: str
    throughput_weight: float
    cost_weight: float
    complexity_weight: float


@dataclass(frozen=True)
class RecommenderSettings(Sourced):
    primary_weight: float
    secondary_weight: float
    level_scores: dict[str, float]
    covered_level: str
    shortlist: int


@dataclass(frozen=True)
class KnowledgeBase:
    """The validated contents of the assay and modality files."""

    version: str
    references: dict[str, Reference]
    mechanisms: dict[str, Mechanism]
    options: dict[str, Option]
    formats: dict[str, AssayFormat]
    controls: dict[str, Control]
    panels: dict[str, Panel]
    settings: RecommenderSettings
    intended_uses: dict[str, IntendedUse]
    modalities: dict[str, Modality]
    fc_formats: dict[str, FcFormat]
    targets: dict[str, Target]
    _aliases: dict[str, str] = field(default_factory=dict, repr=False)

    def format(self, key: str) -> AssayFormat:
        try:
            return self.formats[key]
        except KeyError:
            raise InputError(
                f"unknown assay format {key!r}", field="format", expected=", ".join(self.formats)
            ) from None

    def modality(self, name: str) -> Modality:
        """The modality by key or alias (case-insensitive; '-' and ' ' read as '_')."""
        key = self._aliases.get(_norm(name))
        if key is None:
            raise InputError(
                f"unknown modality {name!r}",
                field="modality",
                expected=", ".join(self.modalities),
            )
        return self.modalities[key]

    def fc_format(self, name: str) -> FcFormat:
        key = _norm(name).replace("_", "")
        for fc in self.fc_formats.values():
            if fc.key.replace("_", "") == key:
                return fc
        raise InputError(
            f"unknown Fc format {name!r}", field="fc", expected=", ".join(self.fc_formats)
        )

    def target(self, name: str) -> Target | None:
        """The target's entry, or None for a target the knowledge base does not describe."""
        wanted = name.strip().upper().replace(" ", "")
        for target in self.targets.values():
            names = (target.key, *target.aliases)
            if wanted in {n.upper().replace(" ", "") for n in names}:
                return target
        return None

    def intended_use(self, name: str) -> IntendedUse:
        key = _norm(name)
        if key not in self.intended_uses:
            raise InputError(
                f"unknown intended use {name!r}",
                field="intended_use",
                expected=", ".join(self.intended_uses),
            )
        return self.intended_uses[key]

    def detection(
        self, format_key: str, mechanism: str, options: dict[str, str] | None = None
    ) -> Detection:
        """What ``format_key`` sees of ``mechanism``; undocumented pairs are level "no".

        ``options`` chooses, per :class:`Option` key, one of its documented choices (the
        default otherwise).
        """
        for d in self.format(format_key).detects:
            if d.mechanism != mechanism:
                continue
            if d.option is None:
                return d
            option = self.options[d.option]
            choice_key = (options or {}).get(option.key, option.default)
            if choice_key not in option.choices:
                raise InputError(
                    f"unknown choice {choice_key!r} for option {option.key!r}",
                    field=option.key,
                    expected=", ".join(option.choices),
                )
            c = option.choices[choice_key]
            return Detection(
                citations=c.citations,
                status=c.status,
                mechanism=mechanism,
                level=c.level,
                note=c.note,
                option=option.key,
                choice=c.key,
            )
        return Detection(
            citations=(),
            status="unconfirmed",
            mechanism=mechanism,
            level="no",
            note="not documented",
        )

    def cite(self, keys: tuple[str, ...]) -> str:
        """``Stebbings et al. 2007; Römer et al. 2011`` for citation keys."""
        return "; ".join(self.references[k].short() for k in keys)


def load_knowledge_base(
    formats_path: str | Path | None = None,
    modalities_path: str | Path | None = None,
    references_path: str | Path | None = None,
) -> KnowledgeBase:
    """Load and validate the assay knowledge base (the shipped files by default).

    Raises
    ------
    InputError
        A malformed or inconsistent entry, named by file, entry and field (an unknown
        citation key, an unknown mechanism, a level outside yes / weak / no, ...).
    """
    if formats_path is None and modalities_path is None and references_path is None:
        return _shipped()
    return _load(
        Path(formats_path or data_path("assay_formats.toml")),
        Path(modalities_path or data_path("drug_modalities.toml")),
        references_path,
    )


@cache
def _shipped() -> KnowledgeBase:
    return _load(data_path("assay_formats.toml"), data_path("drug_modalities.toml"), None)


def _load(formats_path: Path, modalities_path: Path, references_path) -> KnowledgeBase:
    refs = load_references(references_path)
    known = refs.__contains__
    fdata = read_toml(formats_path, schema="cytosafe.assay_formats")

    mechanisms = {
        key: Mechanism(
            key=key,
            name=f.text("name"),
            description=f.text("description"),
            aop_event=f.text("aop_event"),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in unique_keys(entries(fdata, "mechanism", formats_path)).items()
    }

    def mechanism_key(f: Fields, name: str = "mechanism") -> str:
        return f.choice(name, mechanisms)

    options: dict[str, Option] = {}
    for key, f in unique_keys(entries(fdata, "option", formats_path, required=False)).items():
        choices = {}
        for c in f.entries("choice", required=True):
            ckey = c.text("key")
            choices[ckey] = OptionChoice(
                key=ckey,
                level=c.choice("level", LEVELS),
                note=c.text("note", default=None),
                citations=c.citations(known),
                status=c.status(),
            )
        default = f.choice("default", choices)
        options[key] = Option(
            key=key, question=f.text("question"), default=default, choices=choices
        )

    formats: dict[str, AssayFormat] = {}
    for key, f in unique_keys(entries(fdata, "format", formats_path)).items():
        detects = []
        seen: set[str] = set()
        for d in f.entries("detects", required=True):
            mech = mechanism_key(d)
            if mech in seen:
                d.fail(f"mechanism {mech!r} listed twice", field="mechanism")
            seen.add(mech)
            if "option" in d.table:
                option = d.choice("option", options)
                detects.append(
                    Detection(
                        citations=(), status="unconfirmed", mechanism=mech, level="", option=option
                    )
                )
                continue
            detects.append(
                Detection(
                    mechanism=mech,
                    level=d.choice("level", LEVELS),
                    note=d.text("note", default=None),
                    citations=d.citations(known),
                    status=d.status(),
                )
            )
        drugs = tuple(
            ReferenceDrugResult(
                drug=r.text("drug"),
                result=r.choice("result", _DRUG_RESULTS),
                note=r.text("note", default=None),
                citations=r.citations(known),
                status=r.status(),
            )
            for r in f.entries("reference_drug")
        )
        formats[key] = AssayFormat(
            key=key,
            name=f.text("name"),
            description=f.text("description"),
            donors=f.text("donors"),
            incubation=f.text("incubation"),
            readouts=f.strings("readouts", nonempty=True),
            cost=int(f.number("cost", lo=1, hi=3)),
            throughput=int(f.number("throughput", lo=1, hi=3)),
            complexity=int(f.number("complexity", lo=1, hi=3)),
            detects=tuple(detects),
            reference_drugs=drugs,
            citations=f.citations(known),
            status=f.status(),
        )

    def mechanism_list(f: Fields, name: str) -> tuple[str, ...]:
        keys = f.strings(name)
        for k in keys:
            if k not in mechanisms:
                f.fail(f"unknown mechanism {k!r}", field=name, expected=", ".join(mechanisms))
        return keys

    control_entries = unique_keys(entries(fdata, "control", formats_path))
    controls = {
        key: Control(
            key=key,
            role=f.choice("role", _CONTROL_ROLES),
            name=f.text("name"),
            for_mechanisms=mechanism_list(f, "for_mechanisms"),
            not_for_modalities=f.strings("not_for_modalities", default=()),
            only_for_modalities=f.strings("only_for_modalities", default=()),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in control_entries.items()
    }
    panels = {
        key: Panel(
            key=key,
            name=f.text("name"),
            analytes=f.strings("analytes", nonempty=True),
            for_mechanisms=mechanism_list(f, "for_mechanisms"),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in unique_keys(entries(fdata, "panel", formats_path)).items()
    }
    rf = Fields(fdata.get("recommender"), formats_path, "recommender")
    scores = rf.get("level_scores", dict)
    for level in LEVELS:
        if not isinstance(scores.get(level), int | float) or isinstance(scores.get(level), bool):
            rf.fail(f"no score for level {level!r}", field="level_scores", expected="numbers")
    settings = RecommenderSettings(
        primary_weight=rf.number("primary_weight", lo=0),
        secondary_weight=rf.number("secondary_weight", lo=0),
        level_scores={k: float(scores[k]) for k in LEVELS},
        covered_level=rf.choice("covered_level", LEVELS),
        shortlist=int(rf.number("shortlist", lo=1, hi=20)),
        citations=rf.citations(known),
        status=rf.status(),
    )
    uses = {
        key: IntendedUse(
            key=key,
            name=f.text("name"),
            description=f.text("description"),
            throughput_weight=f.number("throughput_weight", lo=0),
            cost_weight=f.number("cost_weight", lo=0),
            complexity_weight=f.number("complexity_weight", lo=0),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in unique_keys(entries(fdata, "intended_use", formats_path)).items()
    }

    mdata = read_toml(modalities_path, schema="cytosafe.drug_modalities")
    modalities: dict[str, Modality] = {}
    aliases: dict[str, str] = {}
    for key, f in unique_keys(entries(mdata, "modality", modalities_path)).items():
        mechs = []
        for m in f.entries("mechanism"):
            mechs.append(
                ModalityMechanism(
                    key=mechanism_key(m, "key"),
                    role=m.choice("role", _ROLES),
                    note=m.text("note", default=None),
                    citations=m.citations(known),
                    status=m.status(),
                )
            )
        modality = Modality(
            key=key,
            name=f.text("name"),
            aliases=f.strings("aliases", default=()),
            aop_mie=f.text("aop_mie"),
            reference_drugs=f.strings("reference_drugs", default=()),
            mechanisms=tuple(mechs),
            note=f.text("note", default=None),
            citations=f.citations(known),
            status=f.status(),
        )
        for name in (key, *modality.aliases):
            norm = _norm(name)
            if norm in aliases and aliases[norm] != key:
                f.fail(f"alias {name!r} also names {aliases[norm]!r}", field="aliases")
            aliases[norm] = key
        modalities[key] = modality
    fc_formats = {
        key: FcFormat(
            key=key,
            name=f.text("name"),
            fcgr_crosslinking=f.choice("fcgr_crosslinking", _FCGR),
            note=f.text("note", default=None),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in unique_keys(entries(mdata, "fc_format", modalities_path)).items()
    }
    targets = {
        key: Target(
            key=key,
            aliases=f.strings("aliases", default=()),
            on_blood_cells=f.get("on_blood_cells", bool),
            implies_mechanisms=mechanism_list(f, "implies_mechanisms"),
            note=f.text("note", default=None),
            citations=f.citations(known),
            status=f.status(),
        )
        for key, f in unique_keys(entries(mdata, "target", modalities_path)).items()
    }
    for f in control_entries.values():
        for name in ("not_for_modalities", "only_for_modalities"):
            for m in f.strings(name, default=()):
                if m not in modalities:
                    f.fail(f"unknown modality {m!r}", field=name, expected=", ".join(modalities))
    return KnowledgeBase(
        version=f"{fdata['version']}+{mdata['version']}",
        references=refs,
        mechanisms=mechanisms,
        options=options,
        formats=formats,
        controls=controls,
        panels=panels,
        settings=settings,
        intended_uses=uses,
        modalities=modalities,
        fc_formats=fc_formats,
        targets=targets,
        _aliases=aliases,
    )


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")
