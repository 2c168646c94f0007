"""``cytosafe analyze STUDY --out DIR``: the command-line face of the analysis workflow
(:func:`cytosafe.workflows.run_analysis`). ``--workers N`` quantifies runs of whole plates
in N processes (default: every core for runs of 500 curves or more; 1 = in this process),
``--scheduler tcp://host:port`` on a Dask cluster, with byte-identical tables
(:mod:`cytosafe.workflows.parallel`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, QuietOption
from cytosafe.cli._parallel import SchedulerOption, WorkersOption
from cytosafe.data import load

__all__ = ["analyze_command"]

#: The preset names, read from the rule data file (their single source) without loading
#: the hazard package (SciPy, statsmodels) before the command runs.
_RULE_SETS = " | ".join(load("hazard_rules.toml")["rule_set"])


def analyze_command(
    study: Annotated[
        Path,
        typer.Argument(
            help="Study file (TOML) naming treatments, roles, inputs; or a tidy table whose "
            "columns carry the design (treatment, treatment_role, treatment_concentration, "
            "treatment_unit, assay_format, matched_control)."
        ),
    ],
    out: OutOption = ...,
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            "-i",
            help="Raw export (repeatable); default: the inputs of the study file's analysis table.",
        ),
    ] = None,
    sample_map: Annotated[
        Path | None,
        typer.Option(help="Sample map; default: the study file's sample_map."),
    ] = None,
    rule_set: Annotated[
        str | None,
        typer.Option(help=f"Responder rule set: {_RULE_SETS}; default: the study file's."),
    ] = None,
    below_lloq: Annotated[
        str | None, typer.Option(help="Values below the LLOQ: censored | lloq/2 | lloq.")
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf/--no-pdf", help="Also print report.pdf (headless Chromium).")
    ] = False,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    quiet: QuietOption = False,
) -> None:
    """Quantify a study's raw exports and identify its cytokine-release hazard.

    Writes the response, statistics, benchmark and hazard tables (CSV), the quantification
    tables, settings.json and report.html (and report.pdf) into OUT: all of them, or nothing.
    Plates are quantified across --workers processes (or a Dask --scheduler) with the same
    tables; the hazard step and the report run here.
    """
    import dataclasses

    from cytosafe.hazard.design import load_study
    from cytosafe.hazard.rules import get_rule_set
    from cytosafe.workflows import run_analysis

    if study.suffix.lower() == ".toml":
        design = load_study(study)
    else:  # a tidy table carries its own design (cytosafe.workflows.table_design)
        from cytosafe.workflows.table_design import design_from_file

        design = design_from_file(study, sample_map=sample_map)
        inputs = inputs or [study]
    settings = design.settings
    if rule_set is not None:
        settings = dataclasses.replace(settings, rule_set=get_rule_set(rule_set))
    if below_lloq is not None:
        settings = dataclasses.replace(settings, below_lloq=below_lloq)
    result = run_analysis(
        design,
        inputs=list(inputs) if inputs else None,
        sample_map=sample_map,
        out=out,
        settings=settings,
        pdf=pdf,
        workers=workers,
        scheduler=scheduler,
    )
    if quiet:
        return
    from rich.console import Console

    from cytosafe import __version__

    console = Console(highlight=False, soft_wrap=True)
    hz = result.hazard
    console.print(f"[bold]CytoSafe {__version__}[/bold] · study {design.study_id or study}")
    if not hz.valid:
        console.print(
            "[red]not valid for hazard calling in every format (a positive control failed)[/red]"
        )
    style = {
        "negative": "green",
        "low": "yellow",
        "moderate": "yellow",
        "high": "red",
        "invalid": "red",
    }
    for r in hz.hazard.itertuples(index=False):
        s = style.get(r.hazard_class, "white")
        console.print(f"  {r.treatment} · {r.assay_format}: [{s}]{r.hazard_class}[/{s}]")
    for w in hz.warnings[:5]:
        console.print(f"  [yellow]![/yellow] {w}")
    console.print(f"wrote {len(result.outputs)} files to {out}")
    console.print(f"report: [bold]{out / 'report.html'}[/bold]")
