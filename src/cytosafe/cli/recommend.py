"""``cytosafe recommend``: rank cytokine release assay formats for a molecule.

Examples
--------
.. code-block:: console

    $ cytosafe recommend --modality cd28_superagonist --target CD28 --fc igg4
    $ cytosafe recommend --modality cd3_bispecific --target CD20 --out rec.html
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import parse_key_values

__all__ = ["ReportFormat", "print_recommendation", "recommend_command"]


class ReportFormat(StrEnum):
    MARKDOWN = "markdown"
    HTML = "html"


def print_recommendation(rec, console=None) -> None:
    """The recommendation as rich tables (ranking, gaps, controls, panel)."""
    from rich.console import Console
    from rich.table import Table

    from cytosafe.report.assays import readout_groups

    console = console or Console(highlight=False, soft_wrap=False)
    kb = rec.kb
    head = f"[bold]{rec.modality_name}[/bold]"
    if rec.target:
        head += f" · target {rec.target}"
    if rec.fc:
        head += f" · Fc {rec.fc}"
    console.print(head + f" · {rec.intended_use} · knowledge base {rec.kb_version}")
    table = Table(title="Cytokine release assay formats, best first", show_lines=False)
    for col in ("#", "format", "score", "coverage", "chosen", "why"):
        table.add_column(col, overflow="fold")
    for r in rec.ranking.itertuples(index=False):
        table.add_row(
            str(r.rank),
            r.name,
            f"{r.score:.2f}",
            f"{r.coverage:.2f}",
            "✓" if r.chosen else "",
            "; ".join(r.reasons),
        )
    console.print(table)
    if rec.uncovered:
        names = ", ".join(kb.mechanisms[m].name for m in rec.uncovered)
        console.print(f"[yellow]Not covered by the chosen formats:[/yellow] {names}")
    for note in rec.notes:
        console.print(f"• {note}")
    controls = Table(title="Controls")
    for col in ("role", "control", "sources"):
        controls.add_column(col, overflow="fold")
    for c in rec.controls:
        controls.add_row(c["role"], c["name"], kb.cite(tuple(c["citations"])))
    console.print(controls)
    # CD69 and CD25 are T-cell activation markers read by flow cytometry, not cytokines:
    # the panel is printed by kind, as the reports group it.
    for group in readout_groups(list(rec.panel)):
        console.print(f"[bold]{group['title']}:[/bold] " + ", ".join(group["analytes"]))


def recommend_command(
    modality: Annotated[
        str,
        typer.Option(
            "--modality",
            help="Drug modality: igg1_mab, igg4_mab, fc_silent_mab, anti_cd3_mab, "
            "cd28_superagonist, cd3_bispecific, t_cell_engager, car_t, checkpoint_inhibitor, "
            "immunostimulatory_cytokine, immunostimulatory_agonist (or an alias).",
        ),
    ],
    target: Annotated[
        str | None, typer.Option("--target", help="Target antigen, e.g. CD3, CD28, CD20.")
    ] = None,
    fc: Annotated[
        str | None,
        typer.Option("--fc", help="Fc format: igg1, igg2, igg4, fc_silent or none."),
    ] = None,
    intended_use: Annotated[
        str,
        typer.Option(
            "--intended-use",
            help="hazard_identification, screening, mechanistic or dose_selection.",
        ),
    ] = "hazard_identification",
    format: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format", help="Report format for --out (default: from its suffix, .html or .md)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the report (Markdown or HTML).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="Choose at a documented disagreement, KEY=CHOICE "
            "(e.g. whole_blood_cd28_superagonist=no).",
        ),
    ] = None,
) -> None:
    """Rank cytokine release assay formats for a molecule, with reasons and sources.

    Prints the ranking, the mechanisms no chosen format covers, the proposed controls and
    the readout panel by kind (cytokines, T-cell activation markers, cellular readouts); --out also writes them as Markdown or HTML.
    """
    from cytosafe.assays.recommend import recommend
    from cytosafe.report.assays import write_recommendation

    rec = recommend(
        modality,
        target=target,
        fc=fc,
        intended_use=intended_use,
        options=parse_key_values(option, option="--option", expected="KEY=CHOICE"),
    )
    print_recommendation(rec)
    if out is not None:
        write_recommendation(rec, out, kind=None if format is None else format.value)
        typer.echo(f"wrote {out}")
