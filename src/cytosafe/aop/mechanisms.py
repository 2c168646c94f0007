"""Which events a readout may count for: modality -> MIEs, events -> cells, formats -> cells.

The rules live in ``data/aop_evidence.toml`` (see its header). :func:`load_evidence_rules`
reads and validates them against the project's vocabularies (modalities and Fc formats of
``drug_modalities.toml``, formats of ``assay_formats.toml``, events of ``crs_aop.toml``,
citations of ``crs_references.toml``); every error is an
:class:`~cytosafe.errors.InputError` naming the file, entry and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cytosafe.data import entries, read_toml, unique_keys
from cytosafe.data import path as data_path

__all__ = ["EvidenceRules", "ModalityMies", "load_evidence_rules"]

DATA_FILE = "aop_evidence.toml"
FCGR_CHOICES = ("by_fc_format", "no")
#: An Fc format engages FcgR when drug_modalities.toml says its cross-linking is one of these.
FCGR_ENGAGED = ("expected", "reduced")


@dataclass(frozen=True)
class ModalityMies:
    """The MIEs a modality engages, and how its FcgR engagement is decided."""

    key: str
    mies: tuple[str, ...]
    fcgr: str
    default_fc_format: str | None
    target_cells: bool
    citations: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class EvidenceRules:
    """The validated rules: modalities, the cells each event needs, each format's cells."""

    version: str
    file: str
    modalities: dict[str, ModalityMies]
    needs_cells: dict[str, tuple[str, ...]]
    format_cells: dict[str, tuple[str, ...]]
    aliases: dict[str, str]
    fcgr_crosslinking: dict[str, str]  # Fc format -> expected / reduced / not_expected

    def format_key(self, name: str) -> str | None:
        """The assay-format key a study's format name stands for (``None``: unknown)."""
        key = str(name).strip().lower()
        if key in self.format_cells:
            return key
        return self.aliases.get(key)

    def cells(self, name: str) -> tuple[str, ...] | None:
        key = self.format_key(name)
        return None if key is None else self.format_cells[key]

    def engaged_mies(
        self, modality: str, fc_format: str | None = None
    ) -> tuple[tuple[str, ...], str | None]:
        """The MIEs the modality engages, with the FcgR MIE when its Fc format engages
        FcgR; and why FcgR is left out or undecided (``None`` when it is included or the
        modality has no Fc route)."""
        m = self.modalities[modality]
        mies = list(m.mies)
        why = None
        if m.fcgr == "by_fc_format":
            fc = fc_format or m.default_fc_format
            if fc is None:
                why = (
                    f"FcgR engagement of a {modality} depends on its Fc format, which was not "
                    "given (--fc-format)"
                )
            elif self.fcgr_crosslinking.get(fc) in FCGR_ENGAGED:
                mies.append("mie_fcgr_engagement")
            else:
                why = f"the {fc} Fc format does not engage FcgR (drug_modalities.toml)"
        return tuple(mies), why


def load_evidence_rules(path: str | Path | None = None) -> EvidenceRules:
    """Load and validate the evidence-mapping rules (the shipped file by default).

    Examples
    --------
    >>> rules = load_evidence_rules()
    >>> rules.engaged_mies("cd3_bispecific")[0]
    ('mie_cd3_engagement',)
    >>> "endothelial cells" in rules.cells("pbmc_aqueous")
    False
    """
    if path is None:
        return _shipped()
    return _load(Path(path))


@cache
def _shipped() -> EvidenceRules:
    return _load(data_path(DATA_FILE))


def _load(file: Path) -> EvidenceRules:
    from cytosafe.aop.graph import load_crs_aop
    from cytosafe.assays import load_knowledge_base
    from cytosafe.assays.references import load_references

    kb = load_knowledge_base()
    events = load_crs_aop().events
    known = load_references().__contains__
    raw = read_toml(file, schema="cytosafe.aop_evidence")
    fc_keys = tuple(kb.fc_formats)

    modalities = {}
    for key, f in unique_keys(entries(raw, "modality", file)).items():
        if key not in kb.modalities:
            f.fail(f"unknown modality {key!r}", field="key", expected=", ".join(kb.modalities))
        mies = f.strings("mies")
        for mie in mies:
            if mie not in events or events[mie].type != "MIE":
                f.fail(f"{mie!r} is not an MIE of crs_aop.toml", field="mies")
        default_fc = f.text("default_fc_format", default=None)
        if default_fc is not None and default_fc not in fc_keys:
            f.fail(
                f"unknown Fc format {default_fc!r}",
                field="default_fc_format",
                expected=", ".join(fc_keys),
            )
        modalities[key] = ModalityMies(
            key=key,
            mies=mies,
            fcgr=f.choice("fcgr", FCGR_CHOICES),
            default_fc_format=default_fc,
            target_cells=f.get("target_cells", bool, default=False),
            citations=f.citations(known),
            note=f.text("note", default=None),
        )
        f.status()

    needs = {}
    for key, f in unique_keys(entries(raw, "event", file)).items():
        if key not in events:
            f.fail(f"unknown event {key!r}", field="key", expected=", ".join(events))
        needs[key] = f.strings("needs_cells")
        f.citations(known)
        f.status()

    cells, aliases = {}, {}
    for key, f in unique_keys(entries(raw, "format", file)).items():
        if key not in kb.formats:
            f.fail(f"unknown assay format {key!r}", field="key", expected=", ".join(kb.formats))
        cells[key] = f.strings("cells")
        for alias in f.strings("aliases"):
            if alias in aliases or alias in kb.formats:
                f.fail(f"alias {alias!r} is already taken", field="aliases")
            aliases[alias] = key
        f.citations(known)
        f.status()

    return EvidenceRules(
        version=str(raw.get("version")),
        file=str(file),
        modalities=modalities,
        needs_cells=needs,
        format_cells=cells,
        aliases=aliases,
        fcgr_crosslinking={k: v.fcgr_crosslinking for k, v in kb.fc_formats.items()},
    )
