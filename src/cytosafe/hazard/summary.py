"""A responder rule applied to summary values: what a paper or a table reports, not wells.

:func:`cytosafe.hazard.donor_responses` applies a rule set to each donor culture, with the
censoring of every measured value. A published CRA result is a summary instead (a fold
change over the paper's negative control, an increase in pg/mL, a percentage of the
positive control, or only the authors' qualitative call). :func:`call_summary` applies the
same rules (``data/hazard_rules.toml``) to such values with the same three-valued logic:

* a condition ``quantity >= threshold`` is *met* or *failed* when the quantity is given,
  and *undecided* when it is not (a summary that does not hold it);
* a rule fires when all its conditions are met and fails when one fails; the call is
  ``responder`` when any rule fires, ``non-responder`` when every rule fails, and
  ``indeterminate`` otherwise, with the reason;
* ``above_lloq`` is met when the caller says the value was quantifiable
  (``quantifiable=True``; a number a paper reports is above its assay's range), failed
  when it was not, and undecided when unknown; ``min_difference_lloq`` needs the LLOQ;
* a qualitative call decides nothing: it is kept in the reason, and the call is
  ``indeterminate``;
* a condition of a rule that this function does not know is undecided, never ignored.

Summary values are points (no censoring interval), so a summary call is that of the
typical donor; it cannot form donor fractions or paired tests (the hazard classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from cytosafe.errors import InputError
from cytosafe.hazard.rules import Rule, RuleSet

__all__ = ["INDETERMINATE", "NON_RESPONDER", "RESPONDER", "SummaryCall", "call_summary"]

RESPONDER, NON_RESPONDER, INDETERMINATE = "responder", "non-responder", "indeterminate"

#: Rule condition -> the summary quantity it tests (``increase`` in pg/mL).
_QUANTITY = {
    "min_fold_change": "fold_change",
    "min_difference": "increase",
    "min_percent_of_positive": "percent_of_positive",
}


@dataclass(frozen=True)
class SummaryCall:
    """The call of a rule set on summary values: ``responder``, ``non-responder`` or
    ``indeterminate``, the first rule that fired (``None`` otherwise) and why."""

    call: str
    rule_fired: str | None
    reason: str

    @property
    def responder(self) -> bool:
        return self.call == RESPONDER


def _value(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{value!r} is not a finite number", field=name, expected="a number")
    return float(value)


def _apply(
    rule: Rule, q: dict[str, float], quantifiable: bool | None, lloq: float | None
) -> tuple[bool | None, str]:
    undecided = []
    for f in fields(Rule):
        threshold = getattr(rule, f.name)
        if f.name == "name" or threshold is None or threshold is False:
            continue
        if f.name == "above_lloq":
            met = quantifiable
        elif f.name == "min_difference_lloq":
            met = None if lloq is None or "increase" not in q else q["increase"] >= threshold * lloq
        elif f.name in _QUANTITY and _QUANTITY[f.name] in q:
            met = q[_QUANTITY[f.name]] >= threshold
        else:
            met = None
        if met is False:
            what = (
                "test value below the LLOQ"
                if f.name == "above_lloq"
                else (f"{f.name} {threshold:g} not met")
            )
            return False, f"{rule.name}: {what}"
        if met is None:
            undecided.append(f.name)
    if undecided:
        return None, f"{rule.name}: the summary cannot decide {', '.join(undecided)}"
    return True, f"{rule.name} fires"


def call_summary(
    rule_set: RuleSet | Rule,
    *,
    fold_change: float | None = None,
    increase: float | None = None,
    percent_of_positive: float | None = None,
    quantifiable: bool | None = None,
    lloq: float | None = None,
    qualitative: str | None = None,
) -> SummaryCall:
    """Apply a responder rule set (or one rule) to summary values.

    Parameters
    ----------
    rule_set:
        A :class:`~cytosafe.hazard.RuleSet` (``get_rule_set(name)``) or one
        :class:`~cytosafe.hazard.Rule`.
    fold_change:
        Test over the matched negative control.
    increase:
        Test minus the matched negative control, in pg/mL.
    percent_of_positive:
        The increase as a percentage of the positive control's increase.
    quantifiable:
        Whether the test value was at or above the LLOQ (``None``: unknown).
    lloq:
        The assay's LLOQ in pg/mL, for ``min_difference_lloq``.
    qualitative:
        The authors' call where no number is given (``positive``, ``weak``,
        ``negative``); kept in the reason, it decides no condition.

    Returns
    -------
    SummaryCall

    Examples
    --------
    >>> from cytosafe.hazard import get_rule_set
    >>> call_summary(get_rule_set("fold2_above_lloq"), fold_change=2.2, quantifiable=True).call
    'responder'
    >>> call_summary(get_rule_set("fold2_above_lloq"), qualitative="positive").call
    'indeterminate'
    """
    rules = (rule_set,) if isinstance(rule_set, Rule) else rule_set.rules
    q = {
        key: v
        for key, v in (
            ("fold_change", _value("fold_change", fold_change)),
            ("increase", _value("increase", increase)),
            ("percent_of_positive", _value("percent_of_positive", percent_of_positive)),
        )
        if v is not None
    }
    lloq = _value("lloq", lloq)
    reasons, undecided = [], False
    for rule in rules:
        fired, why = _apply(rule, q, quantifiable, lloq)
        if fired:
            return SummaryCall(RESPONDER, rule.name, why)
        undecided |= fired is None
        reasons.append(why)
    reason = "; ".join(reasons)
    if qualitative is not None:
        reason = f"qualitative result only (the authors' call: {qualitative}); " + reason
    return SummaryCall(INDETERMINATE if undecided else NON_RESPONDER, None, reason)
