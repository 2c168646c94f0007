"""The bibliography every knowledge file of CytoSafe cites (``data/crs_references.toml``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cytosafe.data import entries, read_toml, unique_keys
from cytosafe.data import path as data_path

__all__ = ["CHECK_LEVELS", "Reference", "load_references"]

#: How far a bibliographic record was checked (see the header of the data file).
CHECK_LEVELS = ("abstract", "record", "unconfirmed")


@dataclass(frozen=True)
class Reference:
    """One publication or database record."""

    key: str
    authors: str
    title: str
    year: int | None
    journal: str | None
    doi: str | None
    url: str | None
    pmcid: str | None
    checked: str
    details_unconfirmed: bool
    note: str | None

    @property
    def confirmed(self) -> bool:
        """Whether the cited content was checked (an abstract or a database record was read)."""
        return self.checked != "unconfirmed"

    def short(self) -> str:
        """``First author et al. year`` (or the record title for a database entry)."""
        first = self.authors.split(",")[0].strip()
        many = "," in self.authors
        head = f"{first} et al." if many else first
        return f"{head} {self.year}" if self.year else head

    def link(self) -> str | None:
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.url:
            return self.url
        if self.pmcid:
            return f"https://pmc.ncbi.nlm.nih.gov/articles/{self.pmcid}/"
        return None

    def formatted(self) -> str:
        """A one-line citation with its check level."""
        parts = [f"{self.authors} ({self.year or 'n.d.'}). {self.title}."]
        if self.journal:
            parts.append(f"{self.journal}.")
        link = self.link()
        if link:
            parts.append(link)
        if self.checked == "unconfirmed":
            parts.append("[unconfirmed]")
        return " ".join(parts)


def load_references(path: str | Path | None = None) -> dict[str, Reference]:
    """Load and validate the bibliography (the shipped one by default).

    Returns
    -------
    dict of str to Reference
        By citation key.

    Raises
    ------
    InputError
        A malformed entry, named by file, entry and field.
    """
    if path is None:
        return dict(_shipped())
    return _load(Path(path))


@cache
def _shipped() -> tuple[tuple[str, Reference], ...]:
    return tuple(_load(data_path("crs_references.toml")).items())


def _load(path: Path) -> dict[str, Reference]:
    data = read_toml(path, schema="cytosafe.references")
    out: dict[str, Reference] = {}
    for key, f in unique_keys(entries(data, "reference", path)).items():
        year = f.get("year", int, default=None)
        out[key] = Reference(
            key=key,
            authors=f.text("authors"),
            title=f.text("title"),
            year=year,
            journal=f.text("journal", default=None),
            doi=f.text("doi", default=None),
            url=f.text("url", default=None),
            pmcid=f.text("pmcid", default=None),
            checked=f.choice("checked", CHECK_LEVELS),
            details_unconfirmed=f.get("details_unconfirmed", bool, default=False),
            note=f.text("note", default=None),
        )
    return out
