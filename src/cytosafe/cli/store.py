"""``cytosafe store import|exclude|include|upgrade`` and ``cytosafe audit verify``: the
store's commands.

``audit_verify`` is ``cytosafe audit verify``; ``store_import`` is ``cytosafe store
import``; ``store_exclude`` and ``store_include`` are ``cytosafe store exclude`` and
``cytosafe store include`` (wells of a stored study left out of, or restored to, the
calibration with a reason: audited events, :mod:`cytosafe.store.exclusions`);
``store_upgrade`` is ``cytosafe store upgrade``. The store itself is imported on first
use, so that ``cytosafe --help`` stays fast.

Who acts: ``--user`` names a store user; by default the operating-system login. When
that user does not exist yet it is created as a local ``analyst`` without a password
(it can import from this command line, not sign in to the web app), and its creation is
itself audited.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.errors import InputError

__all__ = [
    "DatabaseOption",
    "audit_verify",
    "store_exclude",
    "store_import",
    "store_include",
    "store_upgrade",
]

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL or SQLite file (default: $CYTOSAFE_DATABASE_URL, else the "
        "SQLite store in the user data directory).",
        show_default=False,
    ),
]


def _open(database: str | None):
    from cytosafe.store import Store

    return Store(database)


def audit_verify(database: DatabaseOption = None) -> None:
    """Check the audit trail's hash chain and the stored tables' hashes.

    Prints the number of entries and the hash of the last one (write it down: it anchors
    the chain against truncation); exits with status 1 when the chain or a table is broken.
    """
    from cytosafe.store import head, verify_audit, verify_tables

    with _open(database) as store:
        broken = verify_audit(store)
        bad_tables = verify_tables(store)
        count, last = head(store)
    if broken is not None:
        typer.echo(f"audit trail BROKEN at {broken}", err=True)
    for item in bad_tables:
        typer.echo(f"stored content changed: {item}", err=True)
    if broken is not None or bad_tables:
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {count} entries, head {last}")


def _local_user(session, name: str | None) -> str:
    from sqlalchemy import select

    from cytosafe.store import User, create_user

    name = name or getpass.getuser()
    if session.scalar(select(User.id).where(User.username == name)) is None:
        create_user(session, name, role="analyst", display_name=f"{name} (local)")
    return name


def _read_results_dir(path: Path) -> tuple[dict, dict, bytes | None]:
    import pandas as pd

    settings_file = path / "settings.json"
    try:
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(settings_file)) from None
    if settings.get("command") != "quantify":
        raise InputError(
            f"results of '{settings.get('command')}' cannot be imported yet",
            file=str(settings_file),
            field="command",
            expected="quantify",
        )
    tables = {}
    from cytosafe.workflows import QUANTIFICATION_TABLES

    for name in QUANTIFICATION_TABLES:
        file = path / f"{name}.csv"
        if not file.is_file():
            raise InputError("missing from the results directory", file=str(file))
        tables[name] = pd.read_csv(file)
    report = path / "report.html"
    return settings, tables, report.read_bytes() if report.is_file() else None


def store_import(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="A results directory written by 'cytosafe quantify' (with settings.json), "
            "or instrument exports / tidy tables to quantify and store.",
            show_default=False,
        ),
    ],
    study: Annotated[
        str | None, typer.Option(help="Study id (default: the study_id of the measurements).")
    ] = None,
    create: Annotated[
        bool, typer.Option("--create-study", help="Create the study when it does not exist.")
    ] = False,
    title: Annotated[str | None, typer.Option(help="Title of a study created here.")] = None,
    sample_map: Annotated[
        Path | None, typer.Option(help="Culture metadata for exports (as for quantify).")
    ] = None,
    previous: Annotated[
        int | None,
        typer.Option(help="Id of the analysis this one re-analyses (a new version of it)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Store user acting (default: your login name).")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Store a quantification (and its measurements) in one transaction: all or nothing."""
    from sqlalchemy import select

    from cytosafe.schema.measurements import MEASUREMENT_COLUMNS
    from cytosafe.store import Study, create_study, file_hashes, import_analysis
    from cytosafe.workflows import run_quantification, store_quantification

    if len(inputs) == 1 and (inputs[0] / "settings.json").is_file():
        settings, tables, report = _read_results_dir(inputs[0])
        measurement_columns = [c.name for c in MEASUREMENT_COLUMNS]
        # The reasons of a run's exclusions are stored with them (the store keeps them).
        if "exclusion_reason" in tables["concentrations"].columns:
            measurement_columns.append("exclusion_reason")
        measurements = tables["concentrations"][measurement_columns]
        codes = sorted(set(measurements["study_id"].astype(str)))
        listed = [*settings.get("inputs", []), *settings.get("matrices", [])]
        inputs_info = file_hashes(listed) + file_hashes(
            sorted(p for p in inputs[0].iterdir() if p.is_file())
        )
        result = None
    else:
        missing = [p for p in inputs if not p.exists()]
        if missing:
            raise InputError("no such file", file=str(missing[0]))
        result = run_quantification(inputs, sample_map=sample_map, study_id=study)
        codes = sorted(set(result.measurements["study_id"]))
    if study is None:
        if len(codes) != 1:
            raise InputError(
                f"the measurements hold {len(codes)} studies", field="--study", expected="one"
            )
        study = codes[0]
    # One transaction: the local user, the study and the import, or none of them.
    with _open(database) as store, store.session() as session:
        actor = _local_user(session, user)
        if session.scalar(select(Study.id).where(Study.code == study)) is None:
            if not create:
                raise InputError(
                    f"unknown study '{study}'",
                    field="--study",
                    expected="an existing study, or --create-study",
                )
            create_study(session, study, user=actor, title=title)
        if result is None:
            analysis = import_analysis(
                session,
                "quantification",
                tables,
                study=study,
                user=actor,
                settings=settings,
                inputs=inputs_info,
                measurements=measurements,
                report=report,
                previous=previous,
            )
        else:
            analysis = store_quantification(
                session,
                result,
                study=study,
                user=actor,
                previous=previous,
                inputs=file_hashes([*inputs, *([sample_map] if sample_map else [])]),
            )
        n_plates = len(analysis.plates)
    typer.echo(
        f"stored {analysis.kind} v{analysis.version} of study {study} as analysis "
        f"{analysis.id} ({n_plates} plate(s))"
    )


StudyArgument = Annotated[str, typer.Argument(help="The study id.", show_default=False)]
UserOption = Annotated[
    str | None, typer.Option(help="Store user acting (default: your login name).")
]


def _exclusions(exclude: list[str] | None, exclusions: Path | None, verb: str):
    from cytosafe.curves.exclusions import parse_exclusions

    items = [*(exclude or []), *([exclusions] if exclusions is not None else [])]
    if not items:
        raise typer.BadParameter(
            f"name the wells to {verb}: --{verb} PLATE:WELL[:ANALYTE]=REASON or --exclusions FILE",
            param_hint=f"--{verb}",
        )
    return parse_exclusions(items)


def _change_wells(study: str, table, user: str | None, database: str | None, exclude: bool):
    from cytosafe.store import exclude_wells, include_wells

    change = exclude_wells if exclude else include_wells
    # One transaction: the local user and every exclusion, or none of them.
    with _open(database) as store, store.session() as session:
        events = change(session, study, table, user=_local_user(session, user))
    verb = "excluded" if exclude else "restored"
    for e in events:
        typer.echo(f"{verb} {e['plate']}:{e['well']} ({', '.join(e['analytes'])}): {e['reason']}")
    n = sum(len(e["analytes"]) for e in events)
    typer.echo(
        f"{n} measurement(s) {verb} in study {study}, audited; quantify the study again "
        "to refit the curves they touch"
    )


def store_exclude(
    study: StudyArgument,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave a well out of the calibration, with a reason: "
            "PLATE:WELL[:ANALYTE]=REASON (repeatable; no analyte: every analyte of the well)."
        ),
    ] = None,
    exclusions: Annotated[
        Path | None,
        typer.Option(
            help="File of exclusions: CSV with plate_id, well, analyte, reason, or lines "
            "PLATE:WELL[:ANALYTE]=REASON."
        ),
    ] = None,
    user: UserOption = None,
    database: DatabaseOption = None,
) -> None:
    """Exclude wells of a stored study from the calibration, each with its reason.

    Every exclusion is an audit entry (who, when, plate, well, analyte, reason); the next
    quantification of the study leaves the wells out and lists them with their reasons.
    Refused on plates read by a signed-off analysis; a well that does not exist is an
    error and nothing is written.
    """
    _change_wells(study, _exclusions(exclude, exclusions, "exclude"), user, database, True)


def store_include(
    study: StudyArgument,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Restore an excluded well, with the reason: PLATE:WELL[:ANALYTE]=REASON "
            "(repeatable; no analyte: every excluded analyte of the well)."
        ),
    ] = None,
    exclusions: Annotated[
        Path | None,
        typer.Option(
            help="File of wells to restore, as for exclude (CSV with plate_id, well, "
            "analyte, reason, or lines PLATE:WELL[:ANALYTE]=REASON)."
        ),
    ] = None,
    user: UserOption = None,
    database: DatabaseOption = None,
) -> None:
    """Restore excluded wells of a stored study to the calibration, with a reason (audited)."""
    _change_wells(study, _exclusions(include, exclusions, "include"), user, database, False)


def store_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the store's tables to this CytoSafe version."""
    with _open(database) as store:
        typer.echo(f"{store!r} at schema revision {store.revision()}")
