"""Responder rule sets and hazard classification rules: named, cited presets and user rules.

The presets live in ``cytosafe/data/hazard_rules.toml`` (the single source of each
threshold and its citations); a study file may name a preset or define its own rules
(see :mod:`cytosafe.hazard.design`). A rule set is a list of :class:`Rule`; a donor
response is a responder when any rule fires, and the name of the first rule that fired is
recorded with the call. Hazard classes (:class:`Classification`) are tried in order, the
first that fires wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

from cytosafe import data
from cytosafe.errors import InputError

__all__ = [
    "CLASS_CONDITIONS",
    "RULE_CONDITIONS",
    "ClassRule",
    "Classification",
    "Rule",
    "RuleSet",
    "censoring",
    "get_classification",
    "get_rule_set",
    "presets",
    "references",
]

DATA_FILE = "hazard_rules.toml"

#: The conditions a responder rule may hold, with what each means.
RULE_CONDITIONS = {
    "min_fold_change": "test / matched negative control >= value",
    "min_difference": "test - matched negative control >= value (pg/mL; undecided for values "
    "in an arbitrary unit such as IU/mL, which do not convert to pg/mL)",
    "min_difference_lloq": "test - matched negative control >= value x LLOQ",
    "above_lloq": "the test value is quantifiable (not below the LLOQ)",
    "min_percent_of_positive": "increase >= value % of the positive control's increase",
}

#: The per-analyte conditions of a hazard class.
CLASS_CONDITIONS = {
    "min_analytes": "at least this many analytes qualify",
    "min_responder_fraction": "responding donors / donors tested >= value",
    "min_donors": "responding donors >= value",
    "require_significant": "adjusted p < alpha and geometric mean ratio > 1",
    "min_percent_of_positive": "median % of the reference positive control >= value",
}


@dataclass(frozen=True)
class Rule:
    """One responder rule: every condition that is set must hold."""

    name: str
    min_fold_change: float | None = None
    min_difference: float | None = None
    min_difference_lloq: float | None = None
    above_lloq: bool = False
    min_percent_of_positive: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min_fold_change is not None:
            parts.append(f"fold change ≥ {self.min_fold_change:g}")
        if self.min_difference is not None:
            parts.append(f"increase ≥ {self.min_difference:g} pg/mL")
        if self.min_difference_lloq is not None:
            parts.append(f"increase ≥ {self.min_difference_lloq:g} × LLOQ")
        if self.min_percent_of_positive is not None:
            parts.append(f"increase ≥ {self.min_percent_of_positive:g}% of the positive control")
        if self.above_lloq:
            parts.append("test value ≥ LLOQ")
        return " and ".join(parts) or "always"


@dataclass(frozen=True)
class RuleSet:
    """A named list of rules with its description and citations (reference keys)."""

    name: str
    title: str
    rules: tuple[Rule, ...]
    description: str = ""
    citations: tuple[str, ...] = ()
    source: str = "preset"

    @property
    def needs_positive_control(self) -> bool:
        return any(r.min_percent_of_positive is not None for r in self.rules)


@dataclass(frozen=True)
class ClassRule:
    """One hazard class and the per-analyte conditions that make an analyte qualify."""

    name: str
    min_analytes: int = 1
    min_responder_fraction: float | None = None
    min_donors: int | None = None
    require_significant: bool = False
    min_percent_of_positive: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min_responder_fraction is not None:
            parts.append(f"≥ {100 * self.min_responder_fraction:g}% of donors respond")
        if self.min_donors is not None:
            parts.append(f"≥ {self.min_donors} donors respond")
        if self.require_significant:
            parts.append("significant increase across donors (adjusted p)")
        if self.min_percent_of_positive is not None:
            parts.append(f"median ≥ {self.min_percent_of_positive:g}% of the positive control")
        what = " and ".join(parts) or "any"
        n = self.min_analytes
        return f"{what}, in at least {n} analyte{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class Classification:
    """Ordered hazard classes; ``negative`` when none fires."""

    name: str
    title: str
    classes: tuple[ClassRule, ...]
    description: str = ""
    citations: tuple[str, ...] = ()
    source: str = "preset"


HAZARD_CLASSES = ("negative", "low", "moderate", "high")


def _number(value, *, where: dict, field_name: str, integer: bool = False, lo: float = 0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"'{value}' is not a number", field=field_name, expected="a number", **where
        )
    if value < lo:
        raise InputError(f"{value} is below {lo:g}", field=field_name, **where)
    if integer and int(value) != value:
        raise InputError(f"{value} is not a whole number", field=field_name, **where)
    return int(value) if integer else float(value)


def parse_rule(raw: dict, *, where: dict | None = None, number: int = 1) -> Rule:
    """A :class:`Rule` from a TOML table, with errors naming the file and field."""
    where = where or {}
    if not isinstance(raw, dict):
        raise InputError("a rule must be a table", expected="[[...rule]] tables", **where)
    known = {f.name for f in fields(Rule)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(
            f"unknown rule condition '{unknown[0]}'",
            field=unknown[0],
            expected="name, " + ", ".join(RULE_CONDITIONS),
            **where,
        )
    kwargs: dict = {"name": str(raw.get("name") or f"rule {number}")}
    for key in ("min_fold_change", "min_difference", "min_difference_lloq"):
        if key in raw:
            kwargs[key] = _number(raw[key], where=where, field_name=key)
    if "min_percent_of_positive" in raw:
        kwargs["min_percent_of_positive"] = _number(
            raw["min_percent_of_positive"], where=where, field_name="min_percent_of_positive"
        )
    if "above_lloq" in raw:
        if not isinstance(raw["above_lloq"], bool):
            raise InputError(
                "above_lloq must be true or false",
                field="above_lloq",
                expected="true | false",
                **where,
            )
        kwargs["above_lloq"] = raw["above_lloq"]
    rule = Rule(**kwargs)
    if rule.describe() == "always":
        raise InputError(
            f"rule '{rule.name}' has no condition",
            field="rule",
            expected="at least one of " + ", ".join(RULE_CONDITIONS),
            **where,
        )
    return rule


def parse_class(raw: dict, *, where: dict | None = None) -> ClassRule:
    """A :class:`ClassRule` from a TOML table."""
    where = where or {}
    known = {f.name for f in fields(ClassRule)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(
            f"unknown hazard class condition '{unknown[0]}'",
            field=unknown[0],
            expected="name, " + ", ".join(CLASS_CONDITIONS),
            **where,
        )
    name = raw.get("name")
    if name not in HAZARD_CLASSES[1:]:
        raise InputError(
            f"unknown hazard class '{name}'",
            field="name",
            expected="low | moderate | high (negative is what remains)",
            **where,
        )
    kwargs: dict = {"name": name}
    if "min_analytes" in raw:
        kwargs["min_analytes"] = _number(
            raw["min_analytes"], where=where, field_name="min_analytes", integer=True, lo=1
        )
    if "min_donors" in raw:
        kwargs["min_donors"] = _number(
            raw["min_donors"], where=where, field_name="min_donors", integer=True, lo=1
        )
    if "min_responder_fraction" in raw:
        value = _number(
            raw["min_responder_fraction"], where=where, field_name="min_responder_fraction"
        )
        if value > 1:
            raise InputError(
                f"{value} is above 1",
                field="min_responder_fraction",
                expected="a fraction 0-1",
                **where,
            )
        kwargs["min_responder_fraction"] = value
    if "min_percent_of_positive" in raw:
        kwargs["min_percent_of_positive"] = _number(
            raw["min_percent_of_positive"], where=where, field_name="min_percent_of_positive"
        )
    if "require_significant" in raw:
        if not isinstance(raw["require_significant"], bool):
            raise InputError(
                "require_significant must be true or false", field="require_significant", **where
            )
        kwargs["require_significant"] = raw["require_significant"]
    return ClassRule(**kwargs)


def _data() -> dict:
    return data.load(DATA_FILE)


def references() -> dict[str, str]:
    """Reference key -> full citation, for every source the hazard step cites."""
    return dict(_data()["references"])


def censoring() -> dict:
    """How responder calls treat censored values: ``title``, ``description``, ``citations``.

    The single statement of the rule (``[censoring]`` in the data file), applied by
    :func:`cytosafe.hazard.response.donor_responses` and printed in the report's methods.
    """
    raw = _data()["censoring"]
    return {
        "title": raw["title"],
        "description": raw["description"],
        "citations": tuple(raw.get("citations", ())),
    }


@cache
def presets() -> dict[str, RuleSet]:
    """The shipped responder rule sets, by name."""
    out = {}
    for name, raw in _data()["rule_set"].items():
        where = {"file": f"cytosafe/data/{DATA_FILE}"}
        rules = tuple(parse_rule(r, where=where, number=i + 1) for i, r in enumerate(raw["rule"]))
        out[name] = RuleSet(
            name=name,
            title=raw["title"],
            rules=rules,
            description=raw.get("description", ""),
            citations=tuple(raw.get("citations", ())),
        )
    return out


@cache
def classification_presets() -> dict[str, Classification]:
    out = {}
    for name, raw in _data()["classification"].items():
        where = {"file": f"cytosafe/data/{DATA_FILE}"}
        out[name] = Classification(
            name=name,
            title=raw["title"],
            classes=tuple(parse_class(c, where=where) for c in raw["class"]),
            description=raw.get("description", ""),
            citations=tuple(raw.get("citations", ())),
        )
    return out


def get_rule_set(name: str | None = None) -> RuleSet:
    """A shipped rule set by name (the default when ``None``)."""
    name = name or _data()["default_rule_set"]
    sets = presets()
    if name not in sets:
        raise InputError(
            f"unknown responder rule set '{name}'",
            field="rule_set",
            expected=" | ".join(sets) + " (or rules defined in the study file)",
        )
    return sets[name]


def get_classification(name: str | None = None) -> Classification:
    """A shipped hazard classification by name (the default when ``None``)."""
    name = name or _data()["default_classification"]
    sets = classification_presets()
    if name not in sets:
        raise InputError(
            f"unknown hazard classification '{name}'",
            field="classification",
            expected=" | ".join(sets),
        )
    return sets[name]
