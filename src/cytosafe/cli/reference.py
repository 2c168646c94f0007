"""``cytosafe reference evaluate``: calibrate the hazard call against the reference library.

Examples
--------
.. code-block:: console

    $ cytosafe reference evaluate --out calibration/
    $ cytosafe reference evaluate --rule-set fold2_above_lloq --donors 27 --out calibration/
    $ cytosafe reference evaluate --mean-only --out calibration-means/
    $ cytosafe reference evaluate --confirmed-only --out calibration-confirmed/
    $ cytosafe reference evaluate --qualitative authors --out calibration-authors/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, QuietOption
from cytosafe.errors import InputError

__all__ = ["REFERENCE_FILES", "evaluate_command"]

#: Files ``cytosafe reference evaluate --out DIR`` writes.
REFERENCE_FILES = (
    "performance.csv",
    "misses.csv",
    "calls.csv",
    "readouts.csv",
    "detection_by_panel.csv",
    "compounds.csv",
    "settings.json",
    "summary.md",
)


#: The CLI's spellings of ``evaluate(qualitative=...)``.
_QUALITATIVE = {"not-evaluable": "not_evaluable", "authors": "authors"}


def evaluate_command(
    out: OutOption = ...,
    rule_set: Annotated[
        list[str] | None,
        typer.Option(
            "--rule-set",
            help="A shipped responder rule set (repeat for several; all of them by default).",
        ),
    ] = None,
    donors: Annotated[
        int | None,
        typer.Option(
            "--donors",
            min=1,
            help="The donor panel of the study being calibrated: a readout whose paper "
            "needs more donors for 90 % power is not counted as detected. Default: the "
            "library's cited donor panel (9 donors in the shipped library, Iwata et al. "
            "2016).",
        ),
    ] = None,
    mean_only: Annotated[
        bool,
        typer.Option(
            "--mean-only",
            help="Judge every readout on its paper's mean alone, whatever the donors its "
            "paper needs for power.",
        ),
    ] = False,
    library: Annotated[
        Path | None,
        typer.Option("--library", help="A reference library file (the shipped one by default)."),
    ] = None,
    confirmed_only: Annotated[
        bool,
        typer.Option(
            "--confirmed-only",
            help="Use only readouts and clinical outcomes confirmed against their source "
            "(an unconfirmed outcome counts as unknown).",
        ),
    ] = False,
    qualitative: Annotated[
        str,
        typer.Option(
            "--qualitative",
            help="How a readout with only its authors' qualitative call counts: "
            "'not-evaluable' (the default: a rule set needs a number) or 'authors' (a "
            "published positive counts as detected and a negative as not detected, each "
            "labelled as resting on the authors' call; a weak call stays not evaluable).",
        ),
    ] = "not-evaluable",
    quiet: QuietOption = False,
) -> None:
    """Score hazard rule sets on the reference library's published CRA results, per format.

    Writes sensitivity and specificity against clinical CRS (any grade, grade >= 3) with
    exact 95 % intervals, the compounds each format misses and the mechanism that explains
    it, and the calls behind them. A result counts as detected when it passes the rule and
    a study of the donor panel would have had 90 % power to show it (where the paper says
    how many donors that takes); detection_by_panel.csv gives the probability that panels
    of 3 to 48 donors show each such result.
    """
    import pandas as pd

    from cytosafe._atomic import atomic_directory
    from cytosafe.reference import (
        DISCLAIMER,
        detection_by_panel,
        evaluate,
        load_library,
        summary_markdown,
    )
    from cytosafe.reference.calibration import panel_choice

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    panel = panel_choice(donors, mean_only, names=("--donors", "--mean-only"))
    if qualitative not in _QUALITATIVE:
        raise InputError(
            repr(qualitative), field="--qualitative", expected="'not-evaluable' or 'authors'"
        )
    lib = load_library(library)
    ev = evaluate(
        rule_set or None,
        library=lib,
        donors=panel,
        confirmed_only=confirmed_only,
        qualitative=_QUALITATIVE[qualitative],
    )
    tables: dict[str, pd.DataFrame] = {
        "performance.csv": ev.performance,
        "misses.csv": ev.misses,
        "calls.csv": ev.calls,
        "readouts.csv": ev.readouts,
        "detection_by_panel.csv": detection_by_panel(ev),
        "compounds.csv": ev.compounds,
    }
    with atomic_directory(out, REFERENCE_FILES) as staging:
        for name, table in tables.items():
            table.to_csv(staging / name, index=False, lineterminator="\n")
        with (staging / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
            json.dump(ev.settings, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        (staging / "summary.md").write_text(summary_markdown(ev), encoding="utf-8")
    if not quiet:
        typer.echo(f"wrote {', '.join(REFERENCE_FILES)} to {out}")
        typer.echo(DISCLAIMER)
