"""Checks every report figure must pass (issue 15 item 4): what each axis and colour bar
shows is named, with its unit where the quantity has one, and no legend sits on the data
(inside the plotting area)."""

from __future__ import annotations

import re

#: Axis titles that name a quantity without a unit of measure: categories, counts, grades
#: and times whose unit is in the words.
UNITLESS = re.compile(
    r"^(plate column|plate row|analyte|donor|grade|treatment( and concentration .*)?|"
    r"day of the dose|hours after infusion)$"
)
#: A unit in parentheses, or a reader signal named by its unit (ECL counts, MFI, FI, OD).
UNIT = re.compile(r"\(.+\)|ECL counts|\bMFI\b|\bFI\b|\bOD\b|RLU|%|°C|mmHg|signal as exported")


def _title(axis: dict) -> str:
    title = axis.get("title")
    return (title.get("text") if isinstance(title, dict) else title) or ""


def axis_problems(fig_id: str, spec: dict) -> list[str]:
    """What is unnamed or without a unit in one figure (empty when all is well)."""
    layout, data = spec["layout"], spec["data"]
    cartesian = any(t.get("type", "scatter") in ("scatter", "heatmap", "bar") for t in data)
    problems = []
    axes = {k: v for k, v in layout.items() if re.fullmatch(r"[xy]axis\d*", k)}
    if cartesian:
        axes.setdefault("xaxis", {})
        axes.setdefault("yaxis", {})
    for name, axis in axes.items():
        if axis.get("visible") is False:
            continue
        text = re.sub(r"<[^>]+>", " ", _title(axis)).strip()
        if axis.get("type") == "category" and name.startswith("yaxis") and not text:
            continue  # lanes labelled by their categories (a timeline's vasopressors)
        if not text:
            problems.append(f"{fig_id} {name}: no title")
        elif not (UNITLESS.match(text) or UNIT.search(text)):
            problems.append(f"{fig_id} {name}: no unit in {text!r}")
    legend = layout.get("legend") or {}
    shown = layout.get("showlegend", True) is not False and any(
        t.get("showlegend", True) is not False and t.get("name") for t in data
    )
    x, y = legend.get("x", 1.02), legend.get("y", 1)
    if (
        shown
        and legend.get("xref", "paper") == "paper"
        and legend.get("yref", "paper") == "paper"
        and 0 <= x < 1
        and 0 < y < 1
    ):
        problems.append(f"{fig_id}: legend inside the plotting area at ({x}, {y})")
    for trace in data:
        bar = trace.get("colorbar")
        if trace.get("type") == "heatmap" and not (bar and _title(bar)):
            problems.append(f"{fig_id}: heatmap without a colour bar title")
    return problems
