"""The command table of :mod:`cytosafe.cli` (its docstring) names every registered command
and every action of ``aop``; :mod:`cytosafe.hazard` exports ``call_summary``."""

from __future__ import annotations

import re

import cytosafe.cli as cli
from cytosafe.cli.aop import AopAction


def _table_rows() -> list[str]:
    return [line for line in cli.__doc__.splitlines() if line.startswith("| ``")]


def _registered() -> list[tuple[str, str | None]]:
    """(group or command, subcommand) for every command the app registers."""
    found: list[tuple[str, str | None]] = []
    for info in cli.app.registered_commands:
        found.append((info.name, None))
    for group in cli.app.registered_groups:
        found.extend((group.name, info.name) for info in group.typer_instance.registered_commands)
    return found


def test_every_registered_command_is_in_the_table():
    rows = _table_rows()
    names = [" ".join(re.findall(r"``([^`]+)``", row.split("|")[1])) for row in rows]
    missing = []
    for group, sub in _registered():
        wanted = re.compile(rf"(^|[\s,]){re.escape(group)}(\s|$)")
        hits = [n for n in names if wanted.search(n)]
        if sub is not None:
            hits = [n for n in hits if re.search(rf"\b{group}\s+[\w/]*\b{sub}\b", n)]
        if not hits:
            missing.append(f"{group} {sub or ''}".strip())
    assert missing == []
    assert len(_registered()) >= 18


def test_the_aop_row_names_every_action_fit_included():
    row = next(r for r in _table_rows() if r.startswith("| ``aop "))
    actions = row.split("``")[1].removeprefix("aop ").split("/")
    assert sorted(actions) == sorted(a.value for a in AopAction)
    assert "fit" in actions


def test_hazard_exports_call_summary():
    import cytosafe.hazard as hazard
    from cytosafe.hazard.summary import call_summary

    assert hazard.call_summary is call_summary and "call_summary" in hazard.__all__
    rules = hazard.get_rule_set("fold2_above_lloq")
    assert hazard.call_summary(rules, fold_change=2.2, quantifiable=True).responder
