"""``cytosafe monitor SOURCE``: live grading, prediction and alerts over arriving observations
(:mod:`cytosafe.workflows.monitor`, :class:`cytosafe.clinical.monitor.Monitor`).

SOURCE is a folder of observation files (CSV/XLSX tables, FHIR Bundles ``.json``; new and
changed files are read, remembered by path and SHA-256 in ``--ledger``) or, with
``--fhir``, a FHIR R4 server's base URL (polled with ``_lastUpdated``). Each alert (a grade
increase per scale, a predictor turning positive, a vital sign past an ASTCT threshold)
is printed as a JSON line, stored in the clinical study ``--study`` (audited) and POSTed
to ``--webhook``. Predictions and alerts support a clinician's judgement and do not
replace it: every output says so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["monitor_command"]


def monitor_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder of observation files to watch, or with --fhir a FHIR server URL."
        ),
    ],
    fhir: Annotated[
        bool, typer.Option("--fhir", help="SOURCE is a FHIR R4 server's base URL.")
    ] = False,
    scale: Annotated[
        list[str] | None,
        typer.Option("--scale", "-s", help="Grading scale(s) (default astct2019)."),
    ] = None,
    predictor: Annotated[
        list[str] | None,
        typer.Option("--predictor", "-p", help="Predictor(s) (default hay2017)."),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Clinical study of the store that receives alerts and observations."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Store user acting (default: your login name).")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", help="Database URL or SQLite file (with --study)."),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST each batch's alerts as JSON to this URL.")
    ] = None,
    webhook_timeout: Annotated[float, typer.Option(help="Seconds per webhook attempt.")] = 5.0,
    webhook_retries: Annotated[
        int, typer.Option(help="Webhook retries (backoff 0.5 s x 2^n).")
    ] = 3,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Poll once and stop.")] = False,
    ledger: Annotated[
        Path | None,
        typer.Option(help="File remembering the files read (path and SHA-256) across runs."),
    ] = None,
    product: Annotated[
        str | None, typer.Option(help="The cell product's name in FHIR (the infusion).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="IANA time zone of times written without an offset."),
    ] = None,
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="Set bad rows aside instead of stopping.")
    ] = False,
    cutoff: Annotated[
        list[str] | None, typer.Option("--cutoff", metavar="NAME=VALUE", help="As for predict.")
    ] = None,
) -> None:
    """Watch a folder or a FHIR server; grade and predict incrementally; raise alerts.
    Predictions and alerts support a clinician's judgement and do not replace it."""
    from cytosafe.cli._common import parse_key_values
    from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Monitor
    from cytosafe.errors import InputError
    from cytosafe.workflows.monitor import FHIRServerSource, FolderSource, MonitorRun, run_monitor

    monitor = Monitor(
        scale or ["astct2019"],
        predictor or ["hay2017"],
        cutoffs=parse_key_values(cutoff, option="--cutoff", expected="NAME=VALUE"),
        errors="quarantine" if quarantine else "raise",
        timezone=timezone,
    )
    if fhir:
        src = FHIRServerSource(source, product=product)
    else:
        src = FolderSource(Path(source), product=product, ledger_file=ledger)
    store = None
    if study is not None:
        from cytosafe.cli.store import _local_user, _open

        store = _open(database)
        with store.session() as session:
            user = _local_user(session, user)
    elif webhook is None and database is not None:
        raise InputError("--database needs --study", field="--study")
    run = MonitorRun(
        monitor,
        src,
        store=store,
        study=study,
        user=user,
        webhook=webhook,
        webhook_options={"timeout": webhook_timeout, "retries": webhook_retries},
        out=sys.stdout,
    )
    run.replay()  # a restart: the state as it was (its alerts were sent then)
    typer.echo(ALERT_DISCLAIMER, err=True)
    try:
        run_monitor(run, interval=interval, once=once)
    except KeyboardInterrupt:
        pass
    typer.echo(
        f"{run.batches} batch(es), {run.alerts} alert(s), {len(monitor.patients)} patient(s)"
        + (f", {run.webhook_failures} webhook delivery failure(s)" if run.webhook_failures else "")
        + (f", {run.errors} file(s) or poll(s) not read" if run.errors else ""),
        err=True,
    )
