"""The command line face of CytoSafe: ``cytosafe quantify ...`` and, later, its siblings.

The CLI calls the analysis functions and does nothing else: reading, fitting and QC live
in :mod:`cytosafe.quantification` and :mod:`cytosafe.curves`, the report in
:mod:`cytosafe.report`. What the CLI adds is what a face owes its user:

* errors a user caused (:class:`~cytosafe.errors.CytoSafeError`, e.g. an
  :class:`~cytosafe.errors.InputError` naming file, row and field) are printed as one line,
  ``error: <message>``, on stderr, without a traceback, with exit code 2; anything else
  is a bug and keeps its traceback;
* output directories are written atomically: every file is first written into a
  temporary sibling directory and moved into place only when all of them succeeded, so
  a failed run never leaves half-written results;
* progress on a terminal (``--quiet`` or a pipe turns it off) and a short summary.

Adding a subcommand: decorate a function with :func:`command` (which is ``app.command``
plus the error reporting above).

Examples
--------
.. code-block:: console

    $ cytosafe quantify plate_1.csv plate_2.csv --sample-map samples.csv --out results/
    $ cytosafe quantify --plate-map layout.csv --matrix il6.csv --matrix tnf.csv --out results/
    $ cytosafe --version
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from cytosafe import __version__
from cytosafe._atomic import atomic_directory
from cytosafe.curves.calibration import FLAGS, CalibrationSettings
from cytosafe.curves.potency import PotencySettings
from cytosafe.errors import CytoSafeError, InputError

if TYPE_CHECKING:
    from cytosafe.quantification import QuantificationResult

__all__ = [
    "EXIT_INPUT_ERROR",
    "OUTPUT_FILES",
    "app",
    "command",
    "quantification_tables",
    "reporting_errors",
]

#: Exit status of a run stopped by bad input (the same as a command-line usage error).
EXIT_INPUT_ERROR = 2

#: The files ``cytosafe quantify`` writes, in the order they are moved into place.
OUTPUT_FILES = (
    "concentrations.csv",
    "samples.csv",
    "curves.csv",
    "standards.csv",
    "qc.csv",
    "potency.csv",
    "settings.json",
    "report.html",
)

app = typer.Typer(
    name="cytosafe",
    help="CytoSafe: cytokine release assays from the plate to the patient.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's locals would print whole measurement tables.
    pretty_exceptions_show_locals=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cytosafe {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the CytoSafe version and exit.",
        ),
    ] = False,
) -> None:
    """CytoSafe: cytokine release assays from the plate to the patient."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def reporting_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that a :class:`CytoSafeError` ends it as one line and exit code 2.

    The message goes to stderr as ``error: <message>`` (whitespace collapsed to one line),
    without a traceback: the error already names file, row or well and field. Any other
    exception passes through with its traceback, because it is a bug.

    Parameters
    ----------
    func:
        The command function; its signature is kept for Typer.

    Returns
    -------
    Callable
        The wrapped function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CytoSafeError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(EXIT_INPUT_ERROR) from None

    return wrapper


def command(name: str | None = None, **kwargs: Any) -> Callable[[Callable], Callable]:
    """Register a subcommand of :data:`app` whose user errors print as one line (exit 2).

    Parameters
    ----------
    name:
        The subcommand's name (default: the function's name).
    **kwargs:
        Passed to :meth:`typer.Typer.command`.

    Returns
    -------
    Callable
        A decorator that registers the function and returns it unchanged.

    Examples
    --------
    >>> @command("grade")  # doctest: +SKIP
    ... def grade(vitals: Path) -> None:
    ...     ...
    """

    def register(func: Callable) -> Callable:
        app.command(name, **kwargs)(reporting_errors(func))
        return func

    return register


# Choices, with the defaults taken from the settings classes (their single source).
class ModelName(StrEnum):
    FIVE_PL = "5PL"
    FOUR_PL = "4PL"


class Weighting(StrEnum):
    NONE = "none"
    Y = "1/y"
    Y2 = "1/y2"
    VAR = "1/var"


class BlankHandling(StrEnum):
    ZERO_STANDARD = "zero_standard"
    SUBTRACT = "subtract"
    IGNORE = "ignore"


class Covariance(StrEnum):
    EXPECTED = "expected"
    OBSERVED = "observed"


_CAL = CalibrationSettings()
_POT = PotencySettings()
_DEFAULT_MODEL = ModelName(_CAL.model)
_DEFAULT_WEIGHTING = Weighting(_CAL.weighting)
_DEFAULT_BLANK = BlankHandling(_CAL.blank)
_DEFAULT_COVARIANCE = Covariance(_CAL.covariance)


def _check_ecx(value: float) -> float:
    if not 0 < value < 100:
        raise typer.BadParameter("must lie strictly between 0 and 100")
    return value


class _Steps:
    """Progress on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    @contextmanager
    def running(self) -> Iterator[_Steps]:
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            self._progress = progress
            yield self
        self._progress = None

    @contextmanager
    def step(self, description: str, total: int = 1) -> Iterator[Callable[[str | None], None]]:
        """A step; the yielded function advances it by one (optionally renaming it)."""
        if self._progress is None:
            yield lambda _=None: None
            return
        task = self._progress.add_task(description, total=total)

        def advance(text: str | None = None) -> None:
            self._progress.update(task, advance=1, **({"description": text} if text else {}))

        yield advance
        self._progress.update(task, completed=total)


def _read_inputs(
    inputs: list[Path],
    plate_maps: list[Path],
    matrices: list[Path],
    *,
    sample_map: Path | None,
    study_id: str | None,
    advance: Callable[[str | None], None],
) -> tuple[pd.DataFrame, list[str]]:
    """Read every export (and plate map + matrix pair) into one measurement table.

    Files are read one at a time so that progress can follow them; the rule of
    :func:`cytosafe.quantification.load_measurements` that a plate appears in one input only is
    applied across all of them.
    """
    from cytosafe.io import read
    from cytosafe.quantification import claim_plates

    if plate_maps or matrices:
        if not matrices:
            raise InputError("--plate-map needs at least one --matrix", field="--matrix")
        if len(plate_maps) not in (1, len(matrices)):
            raise InputError(
                f"{len(plate_maps)} plate maps for {len(matrices)} matrices",
                field="--plate-map",
                expected="one plate map for all matrices, or one per matrix (in order)",
            )
    pairs = [
        (plate_maps[0] if len(plate_maps) == 1 else plate_maps[i], m)
        for i, m in enumerate(matrices)
    ]
    if not inputs and not pairs:
        raise InputError(
            "no input files were given",
            expected="one or more exports, or --plate-map with --matrix",
        )
    given = [str(p) for p in inputs] + [str(m) for m in matrices]
    twice = sorted({p for p in given if given.count(p) > 1})
    if twice:
        raise InputError("given more than once", file=twice[0], expected="each input once")

    tables: list[pd.DataFrame] = []
    sources: list[str] = []
    seen: dict[str, str] = {}
    jobs: list[tuple[str, Callable[[], pd.DataFrame]]] = [
        (str(p), functools.partial(read, p, sample_map=sample_map, study_id=study_id))
        for p in inputs
    ]
    for plate_map, matrix in pairs:

        def read_pair(plate_map: Path = plate_map, matrix: Path = matrix) -> pd.DataFrame:
            from cytosafe.io import read_plate

            return read_plate(plate_map, matrix, study_id=study_id)

        jobs.append((str(matrix), read_pair))
    for name, job in jobs:
        advance(f"reading {Path(name).name}")
        table = job()
        claim_plates(seen, table, name)
        tables.append(table)
        sources.append(name)
    if sample_map is not None and inputs:
        from cytosafe.io.samples import check_map_plates

        check_map_plates(sample_map, seen)
    return pd.concat(tables, ignore_index=True), sources


def quantification_tables(result: QuantificationResult) -> dict[str, pd.DataFrame]:
    """The tables ``cytosafe quantify`` writes, by file name.

    Parameters
    ----------
    result:
        The result of :func:`cytosafe.quantification.quantify`.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``concentrations.csv`` (every well), ``samples.csv`` (replicate groups),
        ``curves.csv``, ``standards.csv``, ``qc.csv`` and ``potency.csv``. ``curves.csv``
        is the calibration's curve table (parameters, standard errors, fit status, LLOQ,
        ULOQ, LOD, blank statistics) joined with its plate QC verdict (``qc_pass``,
        ``qc_reasons``) and the number of sample and control wells carrying each flag
        (``n_below_lloq``, ...).
    """
    cal = result.calibration
    key = ["study_id", "plate_id", "analyte"]
    study_wells = cal.wells[cal.wells["sample_type"].isin(["sample", "control"])]
    counts = study_wells.groupby(key, observed=True)[list(FLAGS)].sum().astype(int)
    counts.columns = [f"n_{f}" for f in FLAGS]
    curves = cal.curves.merge(cal.qc[[*key, "qc_pass", "qc_reasons"]], on=key, how="left")
    curves = curves.merge(counts, left_on=key, right_index=True, how="left")
    curves[counts.columns] = curves[counts.columns].fillna(0).astype(int)
    return {
        "concentrations.csv": cal.wells,
        "samples.csv": cal.samples,
        "curves.csv": curves,
        "standards.csv": cal.standards,
        "qc.csv": cal.qc,
        "potency.csv": result.potency,
    }


def _run_settings(result: QuantificationResult, **inputs: Any) -> dict:
    cal = result.calibration
    return {
        "cytosafe_version": __version__,
        "command": "quantify",
        **inputs,
        "calibration": {**cal.settings.to_dict(), "formula": cal.fit.model.formula},
        "potency": result.potency_settings.to_dict(),
        "outputs": list(OUTPUT_FILES),
    }


def _summary(result: QuantificationResult, out: Path, report: Path) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    cal = result.calibration
    qc = cal.qc
    n_plates = qc[["study_id", "plate_id"]].drop_duplicates().shape[0]
    n_analytes = qc["analyte"].nunique()
    n_pass = int(qc["qc_pass"].sum())
    console.print(
        f"[bold]CytoSafe {__version__}[/bold] · {n_plates} plate(s) × {n_analytes} analyte(s), "
        f"{len(cal.wells)} measurements"
    )
    style = "green" if n_pass == len(qc) else "yellow"
    console.print(f"curves passing QC: [{style}]{n_pass} / {len(qc)}[/{style}]")
    failing = qc[~qc["qc_pass"]]
    for r in failing.head(5).itertuples(index=False):
        console.print(f"  [yellow]✗[/yellow] {r.plate_id} {r.analyte}: {r.qc_reasons}", markup=True)
    if len(failing) > 5:
        console.print(f"  … and {len(failing) - 5} more (see qc.csv)")
    w = cal.wells[cal.wells["sample_type"].isin(["sample", "control"])]
    flags = {f: int(w[f].sum()) for f in FLAGS if int(w[f].sum())}
    console.print(
        "flags on sample wells: "
        + (", ".join(f"{f} {n}" for f, n in flags.items()) if flags else "none")
    )
    if len(result.potency) and "status" in result.potency:
        counts = result.potency["status"].value_counts().sort_index()
        console.print("potency: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    console.print(f"wrote {len(OUTPUT_FILES)} files to {out}")
    console.print(f"report: [bold]{report}[/bold]")


@command("quantify")
def quantify_command(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Instrument exports or tidy CSV/XLSX measurement tables.", show_default=False
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = ...,
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
        list[Path] | None, typer.Option(help="Reader matrix (one plate, one analyte) to map.")
    ] = None,
    study_id: Annotated[
        str | None, typer.Option(help="Study id for inputs that do not carry one.")
    ] = None,
    model: Annotated[ModelName, typer.Option(help="Standard-curve model.")] = _DEFAULT_MODEL,
    weighting: Annotated[Weighting, typer.Option(help="Fit weights.")] = _DEFAULT_WEIGHTING,
    blank: Annotated[
        BlankHandling, typer.Option(help="How blanks enter the fit.")
    ] = _DEFAULT_BLANK,
    covariance: Annotated[
        Covariance, typer.Option(help="Parameter covariance.")
    ] = _DEFAULT_COVARIANCE,
    ecx: Annotated[
        float, typer.Option(help="The ECx reported with the EC50 (percent).", callback=_check_ecx)
    ] = _POT.ecx,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Fit standard curves, back-calculate concentrations, check QC, estimate potency.

    Writes the concentration, sample, curve, standard, QC and potency tables (CSV), the
    settings (JSON) and the QC report (HTML) into OUT: all of them, or nothing.
    """
    from cytosafe.quantification import quantify
    from cytosafe.report import write_qc_report

    inputs, plate_maps, matrices = list(inputs or []), list(plate_map or []), list(matrix or [])
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    settings = CalibrationSettings(
        model=model.value, weighting=weighting.value, blank=blank.value, covariance=covariance.value
    )
    potency_settings = PotencySettings(ecx=ecx)
    steps = _Steps(enabled=not quiet and sys.stderr.isatty())
    with steps.running():
        n_files = len(inputs) + len(matrices)
        with steps.step("reading", total=max(n_files, 1)) as advance:
            table, sources = _read_inputs(
                inputs,
                plate_maps,
                matrices,
                sample_map=sample_map,
                study_id=study_id,
                advance=advance,
            )
        with steps.step("fitting standard curves, back-calculating, potency"):
            result = quantify(table, settings=settings, potency_settings=potency_settings)
        result.sources = sources
        run = _run_settings(
            result,
            inputs=[str(p) for p in inputs],
            sample_map=None if sample_map is None else str(sample_map),
            plate_maps=[str(p) for p in plate_maps],
            matrices=[str(p) for p in matrices],
            study_id=study_id,
        )
        with atomic_directory(out, OUTPUT_FILES) as staging:
            with steps.step("writing tables", total=len(OUTPUT_FILES)) as advance:
                for name, frame in quantification_tables(result).items():
                    frame.to_csv(staging / name, index=False, lineterminator="\n")
                    advance(None)
                with (staging / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
                    json.dump(run, fh, indent=2, ensure_ascii=False)
                    fh.write("\n")
            with steps.step("writing the report"):
                write_qc_report(result, staging / "report.html")
    if not quiet:
        _summary(result, out, out / "report.html")


if __name__ == "__main__":  # pragma: no cover
    app()


# The sibling commands live beside the analysis they face; their modules import only light
# modules at load time (the heavy libraries load inside the functions).
from cytosafe.aop.commands import aop_command  # noqa: E402
from cytosafe.assays.commands import recommend_command  # noqa: E402
from cytosafe.clinical.commands import grade_command  # noqa: E402
from cytosafe.hazard.commands import analyze_command  # noqa: E402
from cytosafe.store import commands as store_commands  # noqa: E402
from cytosafe.translate.commands import mabel_command, simulate_command  # noqa: E402
from cytosafe.web.commands import serve_command  # noqa: E402

command("analyze")(analyze_command)
command("grade")(grade_command)
command("recommend")(recommend_command)
command("aop")(aop_command)
command("mabel")(mabel_command)
command("simulate")(simulate_command)
command("serve")(serve_command)

audit_app = typer.Typer(help="The audit trail of the study store.", no_args_is_help=True)
audit_app.command("verify")(reporting_errors(store_commands.audit_verify))
store_app = typer.Typer(help="The study store (SQLite by default, PostgreSQL by URL).",
                        no_args_is_help=True)  # fmt: skip
store_app.command("import")(reporting_errors(store_commands.store_import))
store_app.command("upgrade")(reporting_errors(store_commands.store_upgrade))
app.add_typer(audit_app, name="audit")
app.add_typer(store_app, name="store")
