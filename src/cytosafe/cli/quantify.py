"""``cytosafe quantify``: exports in; concentrations, curves, QC, potency and a report out.

The command parses its options and calls the workflow
:func:`cytosafe.workflows.run_quantification`, which reads, fits, back-calculates and
writes the output directory all or nothing.

Examples
--------
.. code-block:: console

    $ cytosafe quantify plate_1.csv plate_2.csv --sample-map samples.csv --out results/
    $ cytosafe quantify --plate-map layout.csv --matrix il6.csv --matrix tnf.csv --out results/
    $ cytosafe quantify --plate-map layout.csv --matrix il6_softmax.txt --wavelength 450 \
        --reference-wavelength 570 --out results/
    $ cytosafe quantify run.csv --exclude "P1:B3:IL6=bubble in the well" --out results/
    $ cytosafe quantify bioplex_report.xls --standard-unit pg/mL --out results/
    $ cytosafe quantify plates/*.csv --workers 4 --out results/
    $ cytosafe quantify plates/*.csv --scheduler tcp://10.0.0.5:8786 --out results/

Without options each plate is calibrated with its reader's vendor convention
(:mod:`cytosafe.quantification`); an option given overrides it on every plate.

``--standard-unit`` is the unit of the concentrations of exports that state none (Bio-Plex
reports, DW exports); a unit the file states wins. Mass units are converted to pg/mL;
arbitrary units (IU/mL, U/mL, AU/mL, ...; :mod:`cytosafe.schema.units`) are kept as
written and labelled in every table and the report.

``--workers N`` calibrates runs of whole plates in N processes (default: every core for
runs of 500 curves or more; 1 runs in this process), ``--scheduler tcp://host:port`` on a
Dask cluster; the tables are byte-identical to one process
(:mod:`cytosafe.workflows.parallel`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, Progress, QuietOption
from cytosafe.cli._parallel import SchedulerOption, WorkersOption
from cytosafe.schema.choices import BlankHandling, Covariance, CurveModel, Weighting

__all__ = ["quantify_command"]


def _check_ecx(value: float | None) -> float | None:
    if value is not None and not 0 < value < 100:
        raise typer.BadParameter("must lie strictly between 0 and 100")
    return value


def _checked(value: str | None, check) -> str | None:
    """``value`` once ``check(value)`` accepts it; its InputError as a usage error."""
    from cytosafe.errors import InputError

    if value is not None:
        try:
            check(value)
        except InputError as exc:  # a UnitError too
            raise typer.BadParameter(exc.message + f" (expected {exc.expected})") from None
    return value


def _check_unit(value: str | None) -> str | None:
    from cytosafe.schema.units import analyte_unit

    return _checked(value, analyte_unit)


def _check_acceptance(value: str | None) -> str | None:
    from cytosafe.curves.calibration import acceptance_key

    return _checked(value, acceptance_key)


def _check_wavelength(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter("must be a wavelength in nm, e.g. 450")
    return value


def _summary(result, out: Path) -> None:
    """A few lines on what the run found and wrote: coloured by rich on a terminal, plain
    text otherwise (a pipe, a log), without importing rich (0.02 s of CPU; issue 16)."""
    from cytosafe import __version__
    from cytosafe.curves.calibration import FLAGS
    from cytosafe.workflows import QUANTIFICATION_FILES

    cal = result.calibration
    qc = cal.qc
    n_plates = qc[["study_id", "plate_id"]].drop_duplicates().shape[0]
    n_analytes = qc["analyte"].nunique()
    n_pass = int(qc["qc_pass"].sum())
    # Each line as (text, style) parts; a style is rich's, used on a terminal only.
    lines: list[list[tuple[str, str | None]]] = [
        [
            (f"CytoSafe {__version__}", "bold"),
            (
                f" · {n_plates} plate(s) × {n_analytes} analyte(s), {len(cal.wells)} measurements",
                None,
            ),
        ],
        [
            ("curves passing QC: ", None),
            (f"{n_pass} / {len(qc)}", "green" if n_pass == len(qc) else "yellow"),
        ],
    ]
    failing = qc[~qc["qc_pass"]]
    for r in failing.head(5).itertuples(index=False):
        lines.append(
            [("  ", None), ("✗", "yellow"), (f" {r.plate_id} {r.analyte}: {r.qc_reasons}", None)]
        )
    if len(failing) > 5:
        lines.append([(f"  … and {len(failing) - 5} more (see qc.csv)", None)])
    w = cal.wells[cal.wells["sample_type"].isin(["sample", "control"])]
    flags = {f: int(w[f].sum()) for f in FLAGS if int(w[f].sum())}
    text = ", ".join(f"{f} {n}" for f, n in flags.items()) if flags else "none"
    lines.append([("flags on sample wells: " + text, None)])
    if len(result.potency) and "status" in result.potency:
        counts = result.potency["status"].value_counts().sort_index()
        lines.append([("potency: " + ", ".join(f"{s} {n}" for s, n in counts.items()), None)])
    lines.append([(f"wrote {len(QUANTIFICATION_FILES)} files to {out}", None)])
    lines.append([("report: ", None), (str(out / "report.html"), "bold")])
    if not sys.stdout.isatty():
        typer.echo("\n".join("".join(part for part, _ in line) for line in lines))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(
            "".join(
                f"[{style}]{escape(part)}[/{style}]" if style else escape(part)
                for part, style in line
            )
        )


def quantify_command(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Instrument exports or tidy CSV/XLSX measurement tables.", show_default=False
        ),
    ] = None,
    out: OutOption = ...,
    sample_map: Annotated[
        Path | None,
        typer.Option(
            help="Culture metadata (donor, treatment, ...) keyed by sample_id or well, "
            "applied to every INPUT export."
        ),
    ] = None,
    plate_map: Annotated[
        list[Path] | None,
        typer.Option(help="Plate map for --matrix files: one for all, or one per matrix."),
    ] = None,
    matrix: Annotated[
        list[Path] | None,
        typer.Option(
            help="The plate's signals, to map: a reader matrix (plate-shaped grids, one per "
            "analyte) or a plate-reader export (SoftMax Pro, Gen5 or ASM JSON)."
        ),
    ] = None,
    wavelength: Annotated[
        float | None,
        typer.Option(
            help="Plate-reader exports: the measurement wavelength in nm (e.g. 450) "
            "(default: every wavelength, each its own analyte).",
            callback=_check_wavelength,
        ),
    ] = None,
    reference_wavelength: Annotated[
        float | None,
        typer.Option(
            help="Plate-reader exports: the reference wavelength in nm (e.g. 570), "
            "subtracted well by well (default: none).",
            callback=_check_wavelength,
        ),
    ] = None,
    study_id: Annotated[
        str | None, typer.Option(help="Study id for inputs that do not carry one.")
    ] = None,
    standard_unit: Annotated[
        str | None,
        typer.Option(
            help="Unit of the concentrations of exports that state none, e.g. pg/mL for a "
            "Bio-Plex report (default: the file's, else pg/mL). Mass units become pg/mL; "
            "IU/mL, U/mL, AU/mL are kept as written.",
            callback=_check_unit,
        ),
    ] = None,
    model: Annotated[
        CurveModel | None,
        typer.Option(help="Standard-curve model (default: the vendor's, else 5PL)."),
    ] = None,
    weighting: Annotated[
        Weighting | None, typer.Option(help="Fit weights (default: the vendor's, else 1/y2).")
    ] = None,
    blank: Annotated[
        BlankHandling | None,
        typer.Option(help="How blanks enter the fit (default: the vendor's, else zero_standard)."),
    ] = None,
    covariance: Annotated[
        Covariance | None, typer.Option(help="Parameter covariance (default: expected).")
    ] = None,
    ecx: Annotated[
        float | None,
        typer.Option(
            help="The ECx reported with the EC50, in percent (default: 20).", callback=_check_ecx
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave a well out of the fit, with a reason: PLATE:WELL[:ANALYTE]=REASON "
            "(repeatable)."
        ),
    ] = None,
    exclusions: Annotated[
        Path | None,
        typer.Option(
            help="File of exclusions: CSV with plate_id, well, analyte, reason, or lines "
            "PLATE:WELL[:ANALYTE]=REASON."
        ),
    ] = None,
    accept_curve: Annotated[
        list[str] | None,
        typer.Option(
            help="Report numbers from a curve that failed QC: PLATE:ANALYTE, or * for all "
            "(repeatable)."
        ),
    ] = None,
    control_failure: Annotated[
        str | None,
        typer.Option(
            help="A curve whose kit controls fail (fewer than two thirds within 80-120 %, ICH "
            "M10): 'flag' its wells controls_failed and keep their numbers (the default, as "
            "xPONENT and Bio-Plex report them), or 'withhold' them as a failed curve's "
            "(a regulated run).",
            case_sensitive=False,
        ),
    ] = None,
    acceptance: Annotated[
        str | None,
        typer.Option(
            help="Acceptance criteria of the standards and kit controls: 'cytosafe' (the "
            "default: every standard level in the range within 80-120 %, 75-125 % at its "
            "ends; at least 5 levels) or 'ich-m10' (ICH M10 for ligand-binding assays: at "
            "least 75 % of the levels within limits and at least 6, CV up to 25 % at the "
            "LLOQ and ULOQ, half of the kit controls at each level).",
            case_sensitive=False,
            callback=_check_acceptance,
        ),
    ] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    quiet: QuietOption = False,
) -> None:
    """Fit standard curves, back-calculate concentrations, check QC, estimate potency.

    Writes the concentration, sample, curve, standard, QC and potency tables (CSV), the
    settings (JSON) and the QC report (HTML) into OUT: all of them, or nothing. Plates are
    calibrated across --workers processes (or a Dask --scheduler) with the same tables.
    """
    if (wavelength is not None or reference_wavelength is not None) and not matrix:
        option = "--wavelength" if wavelength is not None else "--reference-wavelength"
        raise typer.BadParameter(
            "applies to plate-reader exports given with --matrix (and --plate-map)",
            param_hint=option,
        )
    from cytosafe.curves.potency import PotencySettings
    from cytosafe.workflows import run_quantification

    # Only what the user set overrides the readers' vendor conventions (None = not set).
    chosen = {"model": model, "weighting": weighting, "blank": blank, "covariance": covariance}
    options = {k: str(v) for k, v in chosen.items() if v is not None}
    if accept_curve:
        options["accept_curves"] = tuple(accept_curve)
    if control_failure is not None:
        options["control_failure"] = control_failure.lower()
    if acceptance is not None:  # a named set: plate_conventions expands its fields
        options["acceptance"] = acceptance.lower()
    excluded = [*(exclude or []), *([exclusions] if exclusions is not None else [])]
    potency_settings = PotencySettings(**({} if ecx is None else {"ecx": ecx}))
    progress = Progress(enabled=None if not quiet else False)
    with progress.running():
        result = run_quantification(
            list(inputs or []),
            plate_maps=list(plate_map or []),
            matrices=list(matrix or []),
            sample_map=sample_map,
            study_id=study_id,
            options=options,
            exclusions=excluded or None,
            potency_settings=potency_settings,
            out=out,
            progress=progress,
            wavelength=wavelength,
            reference_wavelength=reference_wavelength,
            standard_unit=standard_unit,
            workers=workers,
            scheduler=scheduler,
        )
    if not quiet:
        _summary(result, out)
