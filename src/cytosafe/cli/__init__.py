"""The command line face of CytoSafe: ``cytosafe COMMAND ...``.

One module per command group; each holds plain Typer-annotated functions that parse
options and call a workflow (:mod:`cytosafe.workflows`) or an analysis function, and
nothing else. This module is the one place commands are wired, each through
:func:`reporting_errors`, which is what a face owes its user:

* errors a user caused (:class:`~cytosafe.errors.CytoSafeError`, e.g. an
  :class:`~cytosafe.errors.InputError` naming file, row and field) are printed as one line,
  ``error: <message>``, on stderr, without a traceback, with exit code 2; anything else is
  a bug and keeps its traceback;
* output directories are written all or nothing (by the workflows);
* progress on a terminal (``--quiet`` or a pipe turns it off) and a short summary.

Command modules import only light modules at load time (:mod:`cytosafe.cli._common`), so
``cytosafe --help`` and ``cytosafe --version`` start without NumPy, SciPy, pandas,
SQLAlchemy or FastAPI (``benchmarks/bench_startup.py``).

| command | module | runs |
|---|---|---|
| ``quantify`` | :mod:`~cytosafe.cli.quantify` | :func:`cytosafe.workflows.run_quantification` |
| ``analyze`` | :mod:`~cytosafe.cli.analyze` | :func:`cytosafe.workflows.run_analysis` |
| ``grade`` | :mod:`~cytosafe.cli.grade` | :func:`cytosafe.workflows.run_grading` |
| ``predict`` | :mod:`~cytosafe.cli.predict` | :func:`cytosafe.clinical.predict.predict` |
| ``monitor`` | :mod:`~cytosafe.cli.monitor` | :func:`cytosafe.workflows.monitor.run_monitor` |
| ``recommend`` | :mod:`~cytosafe.cli.recommend` | :func:`cytosafe.assays.recommend` |
| ``aop export/query/simulate/map/fit`` | :mod:`~cytosafe.cli.aop` | :mod:`cytosafe.aop` (``fit``: :func:`cytosafe.aop.fit.fit_network`) |
| ``mabel``, ``simulate`` | :mod:`~cytosafe.cli.translate` | :mod:`cytosafe.translate` |
| ``store import/exclude/include/upgrade``, ``audit verify/head`` | :mod:`~cytosafe.cli.store` | :mod:`cytosafe.store` |
| ``store sign`` | :mod:`~cytosafe.cli.sign` | :func:`cytosafe.store.signatures.sign` |
| ``serve`` | :mod:`~cytosafe.cli.serve` | :func:`cytosafe.web.create_app` |
| ``reference evaluate`` | :mod:`~cytosafe.cli.reference` | :func:`cytosafe.reference.evaluate` |

Adding a command: write a function in a module of this package (options typed with
``Annotated``, heavy imports inside it), then register it below with :func:`command`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

import cytosafe
from cytosafe.cli import (
    analyze,
    aop,
    grade,
    monitor,
    predict,
    quantify,
    recommend,
    reference,
    serve,
    sign,
    store,
    translate,
)
from cytosafe.cli._common import EXIT_INPUT_ERROR, reporting_errors

__all__ = ["EXIT_INPUT_ERROR", "app", "command", "reporting_errors"]

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
        typer.echo(f"cytosafe {cytosafe.__version__}")
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


def command(
    name: str | None = None,
    *,
    group: typer.Typer = app,
    long_running: bool = False,
    **kwargs: Any,
) -> Callable:
    """Register a function as a subcommand of ``group`` (default :data:`app`), with its
    user errors printed as one line and exit code 2 (:func:`reporting_errors`;
    ``long_running`` for a command that runs until stopped).

    Examples
    --------
    >>> @command("grade")  # doctest: +SKIP
    ... def grade(vitals: Path) -> None:
    ...     ...
    """

    def register(func: Callable) -> Callable:
        group.command(name, **kwargs)(reporting_errors(func, long_running=long_running))
        return func

    return register


command("quantify")(quantify.quantify_command)
command("analyze")(analyze.analyze_command)
command("grade")(grade.grade_command)
command("predict")(predict.predict_command)
command("monitor", long_running=True)(monitor.monitor_command)
command("recommend")(recommend.recommend_command)
command("aop")(aop.aop_command)
command("mabel")(translate.mabel_command)
command("simulate")(translate.simulate_command)
command("serve", long_running=True)(serve.serve_command)

audit_app = typer.Typer(help="The audit trail of the study store.", no_args_is_help=True)
command("verify", group=audit_app)(store.audit_verify)
command("head", group=audit_app)(store.audit_head)
store_app = typer.Typer(
    help="The study store (SQLite by default, PostgreSQL by URL).", no_args_is_help=True
)
command("import", group=store_app)(store.store_import)
command("exclude", group=store_app)(store.store_exclude)
command("include", group=store_app)(store.store_include)
command("upgrade", group=store_app)(store.store_upgrade)
command("sign", group=store_app)(sign.store_sign)
reference_app = typer.Typer(
    help="The reference compound library and the calibration of the hazard call.",
    no_args_is_help=True,
)
command("evaluate", group=reference_app)(reference.evaluate_command)
app.add_typer(audit_app, name="audit")
app.add_typer(store_app, name="store")
app.add_typer(reference_app, name="reference")
