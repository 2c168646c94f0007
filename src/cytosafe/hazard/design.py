"""The study design: donors, treatments and their roles, matched controls, settings.

A design comes from a study file (TOML) or from the tidy measurement table's own columns
(``donor_id``, ``treatment``, ``treatment_role``, ...). The study file is the one place
where a study says what its treatments are and how it is to be analysed::

    [study]
    id = "CRA-EX-001"
    title = "..."

    [[treatment]]
    name = "medium"
    role = "negative_control"          # test | negative_control | vehicle |
                                       # isotype_control | positive_control
    [[treatment]]
    name = "TA-1"
    role = "test"
    negative_control = "medium"        # optional: the matched control (default: the
                                       # study's one negative control)
    [[treatment]]
    name = "CD28-SA"
    role = "positive_control"
    expect_response_in = ["pbmc_high_density"]   # formats where it must respond
    [[treatment]]
    name = "mAb-X"
    role = "isotype_control"
    benchmark = true                   # rank test articles against it

    [analysis]                         # how concentrations are obtained
    inputs = ["msd/plate_*.csv"]       # paths or globs, relative to the study file
    sample_map = "msd/samples.csv"
    model = "4PL"                      # standard-curve model, weighting, blank handling
    weighting = "1/y2"
    acceptance = "ich-m10"             # calibration acceptance criteria: cytosafe | ich-m10

    [hazard]                           # every choice of the hazard step (HazardSettings)
    rule_set = "fold2_above_lloq"      # a preset of cytosafe/data/hazard_rules.toml,
    below_lloq = "censored"            # or "study" with [[hazard.rule]] tables
    multiplicity = "fdr_bh"
    reference_positive_control = "anti-CD3"

Other top-level tables (``[[format]]``, ``[[platform]]``, notes for humans) are kept but
not read. Unknown keys in the tables above are errors naming the file, line and key.

A design without a negative control is an error (nothing to compare against); a design
with one donor is analysed with an explicit warning (no across-donor statistics).
"""

from __future__ import annotations

import dataclasses
import glob
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.hazard.rules import (
    Classification,
    RuleSet,
    get_classification,
    get_rule_set,
    parse_class,
    parse_rule,
)
from cytosafe.schema.choices import BlankHandling, CurveModel, Weighting, parse_choice
from cytosafe.schema.measurements import TREATMENT_ROLES

__all__ = [
    "BELOW_LLOQ",
    "MULTIPLICITY",
    "AnalysisInputs",
    "HazardSettings",
    "StudyDesign",
    "TreatmentDesign",
    "design_from_table",
    "load_study",
]

#: How values below the LLOQ enter donor responses (see :mod:`cytosafe.hazard.response`).
BELOW_LLOQ = {
    "censored": "left-censored at the LLOQ (and right-censored at the ULOQ): fold changes, "
    "increases and percentages of the positive control become bounds; a bound decides a "
    "responder condition when it lies wholly on one side of the threshold (a lower bound "
    "already at it, an upper bound already below it), and a call resting on a bound that "
    "could lie on either side is indeterminate, counted as neither responder nor "
    "non-responder; rank statistics tie censored values at the LLOQ",
    "lloq/2": "substituted by half the LLOQ",
    "lloq": "substituted by the LLOQ",
}
#: Multiplicity adjustment across analytes (statsmodels ``multipletests`` method names).
MULTIPLICITY = {
    "fdr_bh": "Benjamini-Hochberg false discovery rate",
    "holm": "Holm step-down (family-wise error)",
    "bonferroni": "Bonferroni (family-wise error)",
    "none": "no adjustment",
}
ALTERNATIVES = ("two-sided", "greater")
MIXED_MODEL = ("auto", "never")


@dataclass(frozen=True)
class HazardSettings:
    """Every choice of the hazard step, recorded in results and reports.

    Attributes
    ----------
    rule_set: the responder :class:`~cytosafe.hazard.rules.RuleSet` (default preset
        ``fold2_above_lloq``).
    classification: the hazard :class:`~cytosafe.hazard.rules.Classification`.
    below_lloq: ``censored`` (default), ``lloq/2`` or ``lloq`` (:data:`BELOW_LLOQ`).
    multiplicity: adjustment across analytes (:data:`MULTIPLICITY`), default ``fdr_bh``.
    alpha: significance level of the adjusted p-values.
    alternative: of the paired tests, ``two-sided`` (default) or ``greater``.
    confidence: of the geometric mean ratio interval.
    reference_positive_control: the positive control responses are expressed against;
        default the positive control with the strongest median response in each format.
    positive_control_min_fraction: a positive control passes in a format when at least
        this fraction of donors respond in at least one analyte.
    require_same_plate: match negative controls on the same plate only (default: fall
        back to the same donor, format and time on another plate, recorded).
    exclude_failed_qc: leave out values of plate x analyte curves that failed QC.
    mixed_model: ``auto`` fits a donor random-intercept model when a treatment has
        several concentrations or formats; ``never`` skips it.
    """

    rule_set: RuleSet = field(default_factory=get_rule_set)
    classification: Classification = field(default_factory=get_classification)
    below_lloq: str = "censored"
    multiplicity: str = "fdr_bh"
    alpha: float = 0.05
    alternative: str = "two-sided"
    confidence: float = 0.95
    reference_positive_control: str | None = None
    positive_control_min_fraction: float = 0.5
    require_same_plate: bool = False
    exclude_failed_qc: bool = True
    mixed_model: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("below_lloq", BELOW_LLOQ),
            ("multiplicity", MULTIPLICITY),
            ("alternative", ALTERNATIVES),
            ("mixed_model", MIXED_MODEL),
        ):
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"unknown {name} '{getattr(self, name)}'",
                    field=name,
                    expected=" | ".join(allowed),
                )
        for name in ("alpha", "confidence", "positive_control_min_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1 or (name != "positive_control_min_fraction" and value == 1):
                raise InputError(
                    f"{name} {value} is not a fraction", field=name, expected="0 < value < 1"
                )

    def to_dict(self) -> dict:
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("rule_set", "classification")
        }
        rs, cl = self.rule_set, self.classification
        out["rule_set"] = {
            "name": rs.name,
            "source": rs.source,
            "rules": [{"name": r.name, "condition": r.describe()} for r in rs.rules],
            "citations": list(rs.citations),
        }
        out["classification"] = {
            "name": cl.name,
            "source": cl.source,
            "classes": [{"name": c.name, "condition": c.describe()} for c in cl.classes],
        }
        return out


@dataclass(frozen=True)
class TreatmentDesign:
    """One treatment (culture condition) of the study."""

    name: str
    role: str
    concentrations: tuple[float, ...] = ()
    unit: str = ""
    formats: tuple[str, ...] = ()
    negative_control: str | None = None
    benchmark: bool = False
    expect_response_in: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class AnalysisInputs:
    """Where the raw exports are and how they are calibrated (``[analysis]``)."""

    inputs: tuple[Path, ...] = ()
    sample_map: Path | None = None
    model: CurveModel = CurveModel.FIVE_PL
    weighting: Weighting = Weighting.Y2
    blank: BlankHandling = BlankHandling.ZERO_STANDARD
    ecx: float = 20.0
    #: The named acceptance criteria of the calibration
    #: (:data:`cytosafe.curves.calibration.ACCEPTANCE`).
    acceptance: str = "cytosafe"


@dataclass(frozen=True)
class StudyDesign:
    """The study: identity, treatments, donors and analytes expected, settings."""

    study_id: str | None
    title: str
    treatments: dict[str, TreatmentDesign]
    donors: tuple[str, ...] = ()
    analytes: tuple[str, ...] = ()
    settings: HazardSettings = field(default_factory=HazardSettings)
    analysis: AnalysisInputs = field(default_factory=AnalysisInputs)
    path: Path | None = None
    source: str = "study file"

    def role(self, treatment: str) -> str | None:
        t = self.treatments.get(treatment)
        return None if t is None else t.role

    def by_role(self, role: str) -> list[str]:
        return [n for n, t in self.treatments.items() if t.role == role]

    @property
    def negative_controls(self) -> list[str]:
        return self.by_role("negative_control")

    @property
    def positive_controls(self) -> list[str]:
        return self.by_role("positive_control")

    @property
    def test_articles(self) -> list[str]:
        return self.by_role("test")

    @property
    def benchmarks(self) -> list[str]:
        """Treatments test articles are ranked against: controls other than the negative
        one, and any treatment marked ``benchmark``."""
        return [
            n
            for n, t in self.treatments.items()
            if t.benchmark or t.role in ("positive_control", "isotype_control", "vehicle")
        ]

    def matched_control(self, treatment: str) -> str:
        """The negative-control treatment a treatment is compared with."""
        t = self.treatments.get(treatment)
        if t is not None and t.negative_control:
            return t.negative_control
        negs = self.negative_controls
        if len(negs) == 1:
            return negs[0]
        raise InputError(
            f"treatment '{treatment}' does not say which of the negative controls "
            f"{', '.join(negs)} it is matched to",
            file=None if self.path is None else str(self.path),
            field="negative_control",
            expected='negative_control = "<treatment name>" in its [[treatment]] table',
        )


# --- reading a study file -----------------------------------------------------------------
_STUDY_KEYS = {"id", "title", "donors", "analytes"}
_TREATMENT_KEYS = {
    "name", "role", "concentrations", "unit", "formats", "negative_control", "benchmark",
    "expect_response_in", "description", "code", "mechanism",
}  # fmt: skip
_ANALYSIS_KEYS = {"inputs", "sample_map", "model", "weighting", "blank", "ecx", "acceptance"}
_ANALYSIS_CHOICES = {"model": CurveModel, "weighting": Weighting, "blank": BlankHandling}
_HAZARD_KEYS = {
    "rule_set", "classification", "below_lloq", "multiplicity", "alpha", "alternative",
    "confidence", "reference_positive_control", "positive_control_min_fraction",
    "require_same_plate", "exclude_failed_qc", "mixed_model", "rule", "class",
}  # fmt: skip


class _Locator:
    """Line numbers of keys in a TOML text (tomllib keeps none)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = str(path)
        self.lines = text.splitlines()

    def line(self, header: str | None, key: str | None = None, nth: int = 0) -> int | None:
        """1-based line of ``key`` inside the ``nth`` table named ``header``."""
        start, seen = 0, -1
        if header is not None:
            pattern = re.compile(r"^\s*\[\[?\s*" + re.escape(header) + r"\s*\]\]?\s*(#.*)?$")
            for i, text in enumerate(self.lines):
                if pattern.match(text):
                    seen += 1
                    if seen == nth:
                        start = i
                        break
            else:
                return None
            if key is None:
                return start + 1
        key_re = re.compile(r"^\s*\"?" + re.escape(key or "") + r"\"?\s*=")
        for i in range(start + (1 if header else 0), len(self.lines)):
            text = self.lines[i]
            if header is not None and i > start and re.match(r"^\s*\[", text):
                return None
            if key_re.match(text):
                return i + 1
        return None

    def where(self, header: str | None, key: str | None = None, nth: int = 0) -> dict:
        return {"file": self.path, "row": self.line(header, key, nth), "field": key}


def _check_keys(raw: dict, allowed: set[str], loc: _Locator, header: str, nth: int = 0) -> None:
    for key in raw:
        if key not in allowed:
            raise InputError(
                f"unknown key '{key}' in [{header}]",
                expected=", ".join(sorted(allowed)),
                **loc.where(header, key, nth),
            )


def _text_list(value, loc: _Locator, header: str, key: str, nth: int = 0) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(
            "must be a list of names", expected='["a", "b"]', **loc.where(header, key, nth)
        )
    return tuple(v.strip() for v in value)


def load_study(path: str | Path) -> StudyDesign:
    """Read and validate a study file (TOML).

    Raises
    ------
    InputError
        Naming the file, line and key of the first problem: a malformed file, an unknown
        key, an unknown role or preset, a treatment named twice, a matched control that
        is not a negative control, no negative control at all.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("study file not found", file=str(path), expected="a TOML study file")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
        raise InputError(f"not valid TOML: {exc}", file=str(path), row=line) from None
    loc = _Locator(path, text)
    study = raw.get("study", {})
    if not isinstance(study, dict):
        raise InputError("[study] must be a table", **loc.where(None, "study"))
    _check_keys(study, _STUDY_KEYS | {"simulated", "seed", "generator", "concentration_unit",
                                      "primary_readout", "description"}, loc, "study")  # fmt: skip

    treatments: dict[str, TreatmentDesign] = {}
    raw_treatments = raw.get("treatment", [])
    if not isinstance(raw_treatments, list) or not raw_treatments:
        raise InputError(
            "the study file names no treatments",
            file=str(path),
            field="treatment",
            expected="[[treatment]] tables with name and role",
        )
    for i, t in enumerate(raw_treatments):
        _check_keys(t, _TREATMENT_KEYS, loc, "treatment", i)
        name = t.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(
                "a treatment has no name",
                file=str(path),
                row=loc.line("treatment", None, i),
                field="name",
                expected='name = "..."',
            )
        name = name.strip()
        if name in treatments:
            raise InputError(
                f"treatment '{name}' is defined twice", **loc.where("treatment", "name", i)
            )
        role = str(t.get("role", "")).strip().lower()
        if role not in TREATMENT_ROLES:
            raise InputError(
                f"unknown role '{t.get('role', '')}' of treatment '{name}'",
                expected=" | ".join(TREATMENT_ROLES),
                **loc.where("treatment", "role", i),
            )
        conc = t.get("concentrations", [])
        if not isinstance(conc, list) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and c >= 0 for c in conc
        ):
            raise InputError(
                "concentrations must be a list of non-negative numbers",
                **loc.where("treatment", "concentrations", i),
            )
        expect = t.get("expect_response_in")
        benchmark = t.get("benchmark", False)
        if not isinstance(benchmark, bool):
            raise InputError(
                "benchmark must be true or false", **loc.where("treatment", "benchmark", i)
            )
        treatments[name] = TreatmentDesign(
            name=name,
            role=role,
            concentrations=tuple(float(c) for c in conc),
            unit=str(t.get("unit", "")),
            formats=_text_list(t.get("formats", []), loc, "treatment", "formats", i),
            negative_control=(
                str(t["negative_control"]).strip() if t.get("negative_control") else None
            ),
            benchmark=benchmark,
            expect_response_in=None
            if expect is None
            else _text_list(expect, loc, "treatment", "expect_response_in", i),
            description=str(t.get("description", "")),
        )
    for i, t in enumerate(treatments.values()):
        if t.negative_control and t.negative_control not in treatments:
            raise InputError(
                f"matched control '{t.negative_control}' of '{t.name}' is not a treatment of the study",
                **loc.where("treatment", "negative_control", i),
            )
        if t.negative_control and treatments[t.negative_control].role not in (
            "negative_control",
            "vehicle",
        ):
            raise InputError(
                f"matched control '{t.negative_control}' of '{t.name}' has role "
                f"'{treatments[t.negative_control].role}'",
                expected="a treatment with role negative_control or vehicle",
                **loc.where("treatment", "negative_control", i),
            )
    if not any(t.role == "negative_control" for t in treatments.values()):
        raise InputError(
            "the design has no negative control: responses cannot be computed",
            file=str(path),
            field="role",
            expected='a [[treatment]] with role = "negative_control" (e.g. medium)',
        )

    analysis = _analysis(raw.get("analysis", {}), loc, path.parent)
    settings = _hazard_settings(raw.get("hazard", {}), loc, treatments)
    design = StudyDesign(
        study_id=str(study["id"]) if "id" in study else None,
        title=str(study.get("title", "")),
        treatments=treatments,
        donors=_text_list(study.get("donors", []), loc, "study", "donors"),
        analytes=_text_list(study.get("analytes", []), loc, "study", "analytes"),
        settings=settings,
        analysis=analysis,
        path=path,
    )
    for name in treatments:  # every treatment knows its matched control
        if treatments[name].role != "negative_control":
            design.matched_control(name)
    return design


def _analysis(raw: dict, loc: _Locator, base: Path) -> AnalysisInputs:
    if not raw:
        return AnalysisInputs()
    _check_keys(raw, _ANALYSIS_KEYS, loc, "analysis")
    inputs: list[Path] = []
    for pattern in _text_list(raw.get("inputs", []), loc, "analysis", "inputs"):
        full = base / pattern
        matches = sorted(glob.glob(str(full)))
        if not matches:
            raise InputError(
                f"no file matches '{pattern}'",
                expected="paths or globs relative to the study file",
                **loc.where("analysis", "inputs"),
            )
        inputs.extend(Path(m) for m in matches)
    sample_map = None
    if raw.get("sample_map"):
        sample_map = base / str(raw["sample_map"])
        if not sample_map.is_file():
            raise InputError(
                f"sample map '{raw['sample_map']}' not found", **loc.where("analysis", "sample_map")
            )
    kwargs = {k: raw[k] for k in _ANALYSIS_CHOICES if k in raw}
    for k, v in kwargs.items():
        if not isinstance(v, str):
            raise InputError("must be text", **loc.where("analysis", k))
        try:
            kwargs[k] = parse_choice(_ANALYSIS_CHOICES[k], v, field=k)
        except InputError as exc:  # named here with the study file's line
            raise exc.located(**loc.where("analysis", k)) from None
    if "ecx" in raw:
        if not isinstance(raw["ecx"], (int, float)) or not 0 < raw["ecx"] < 100:
            raise InputError("ecx must lie between 0 and 100", **loc.where("analysis", "ecx"))
        kwargs["ecx"] = float(raw["ecx"])
    if "acceptance" in raw:
        from cytosafe.curves.calibration import acceptance_key

        try:
            kwargs["acceptance"] = acceptance_key(str(raw["acceptance"]))
        except InputError as exc:
            raise exc.located(**loc.where("analysis", "acceptance")) from None
    return AnalysisInputs(inputs=tuple(inputs), sample_map=sample_map, **kwargs)


def _hazard_settings(raw: dict, loc: _Locator, treatments: dict) -> HazardSettings:
    if not raw:
        return HazardSettings()
    _check_keys(raw, _HAZARD_KEYS, loc, "hazard")
    kwargs: dict = {}
    rules = raw.get("rule")
    rule_set_name = raw.get("rule_set")
    if rules:
        parsed = tuple(
            parse_rule(
                r, where={"file": loc.path, "row": loc.line("hazard.rule", None, i)}, number=i + 1
            )
            for i, r in enumerate(rules)
        )
        if rule_set_name not in (None, "study"):
            raise InputError(
                f"[[hazard.rule]] tables define the study's own rules, but rule_set names the preset '{rule_set_name}'",
                expected='rule_set = "study" (or no [[hazard.rule]] tables)',
                **loc.where("hazard", "rule_set"),
            )
        kwargs["rule_set"] = RuleSet(
            name="study",
            title="rules defined in the study file",
            rules=parsed,
            description="User-defined responder rules from the study file.",
            source=loc.path,
        )
    elif rule_set_name is not None:
        if rule_set_name == "study":
            raise InputError(
                'rule_set = "study" but the file has no [[hazard.rule]] tables',
                **loc.where("hazard", "rule_set"),
            )
        try:
            kwargs["rule_set"] = get_rule_set(str(rule_set_name))
        except InputError as exc:
            raise exc.located(**loc.where("hazard", "rule_set")) from None
    classes = raw.get("class")
    if classes:
        parsed_c = tuple(
            parse_class(c, where={"file": loc.path, "row": loc.line("hazard.class", None, i)})
            for i, c in enumerate(classes)
        )
        kwargs["classification"] = Classification(
            name="study",
            title="classes defined in the study file",
            classes=parsed_c,
            source=loc.path,
        )
    elif raw.get("classification"):
        try:
            kwargs["classification"] = get_classification(str(raw["classification"]))
        except InputError as exc:
            raise exc.located(**loc.where("hazard", "classification")) from None
    for key in ("below_lloq", "multiplicity", "alternative", "mixed_model"):
        if key in raw:
            kwargs[key] = str(raw[key])
    for key in ("alpha", "confidence", "positive_control_min_fraction"):
        if key in raw:
            if not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool):
                raise InputError("must be a number", **loc.where("hazard", key))
            kwargs[key] = float(raw[key])
    for key in ("require_same_plate", "exclude_failed_qc"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise InputError("must be true or false", **loc.where("hazard", key))
            kwargs[key] = raw[key]
    ref = raw.get("reference_positive_control")
    if ref is not None:
        if ref not in treatments or treatments[ref].role != "positive_control":
            raise InputError(
                f"'{ref}' is not a positive control of the study",
                expected=" | ".join(
                    n for n, t in treatments.items() if t.role == "positive_control"
                )
                or "a treatment with role positive_control",
                **loc.where("hazard", "reference_positive_control"),
            )
        kwargs["reference_positive_control"] = ref
    try:
        return HazardSettings(**kwargs)
    except InputError as exc:
        raise exc.located(file=loc.path, row=loc.line("hazard", exc.field)) from None


# --- a design from the tidy table -----------------------------------------------------------
def design_from_table(
    table: pd.DataFrame, *, settings: HazardSettings | None = None, study_id: str | None = None
) -> StudyDesign:
    """A design read off a measurement (or calibrated sample) table's culture columns.

    Every distinct ``treatment`` becomes a treatment with the ``treatment_role`` its rows
    carry (one role per treatment); concentrations, units and formats as found.

    Raises
    ------
    InputError
        When a treatment has no role or two roles, or no negative control exists.
    """
    s = table[table["sample_type"].astype(str) == "sample"]
    if s.empty:
        raise InputError(
            "the table has no study samples",
            field="sample_type",
            expected="rows with sample_type 'sample'",
        )
    if s["treatment"].isna().any():
        raise InputError(
            "sample rows without a treatment",
            field="treatment",
            expected="a treatment on every sample row",
        )
    treatments: dict[str, TreatmentDesign] = {}
    for name, g in s.groupby("treatment", sort=False):
        roles = g["treatment_role"].dropna().astype(str).unique()
        if len(roles) != 1:
            raise InputError(
                f"treatment '{name}' has {'no role' if len(roles) == 0 else 'roles ' + ', '.join(roles)}",
                field="treatment_role",
                expected="one of " + " | ".join(TREATMENT_ROLES) + " per treatment",
            )
        conc = sorted(g["treatment_concentration"].dropna().unique().tolist())
        unit = g["treatment_unit"].dropna()
        treatments[str(name)] = TreatmentDesign(
            name=str(name),
            role=str(roles[0]),
            concentrations=tuple(float(c) for c in conc),
            unit=str(unit.iloc[0]) if len(unit) else "",
            formats=tuple(sorted(g["assay_format"].dropna().astype(str).unique())),
        )
    if not any(t.role == "negative_control" for t in treatments.values()):
        raise InputError(
            "the design has no negative control: responses cannot be computed",
            field="treatment_role",
            expected="samples with treatment_role 'negative_control' (e.g. medium)",
        )
    ids = s["study_id"].dropna().astype(str).unique()
    return StudyDesign(
        study_id=study_id or (ids[0] if len(ids) == 1 else None),
        title="",
        treatments=treatments,
        donors=tuple(sorted(s["donor_id"].dropna().astype(str).unique())),
        analytes=tuple(sorted(s["analyte"].astype(str).unique())),
        settings=settings or HazardSettings(),
        source="measurement table",
    )
