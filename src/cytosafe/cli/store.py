"""``cytosafe store import|exclude|include|upgrade`` and ``cytosafe audit verify|head``:
the store's commands.

``audit_verify`` is ``cytosafe audit verify`` (the chain, the heads written down, and
every stored object against the fingerprint the chain recorded); ``audit_head`` is
``cytosafe audit head`` (the chain's head, to keep outside the database); ``store_import`` is ``cytosafe store
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
    "audit_head",
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


def _heads(values: list[str] | None):
    """The chain heads of ``--head`` values: files of heads, or heads written out."""
    from cytosafe.store import parse_heads

    heads = []
    for value in values or []:
        path = Path(value).expanduser()
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read the heads file: {exc}", file=str(path)) from None
            heads.extend(parse_heads(text, source=str(path)))
        else:
            heads.extend(parse_heads(value, source="--head"))
    return heads


def audit_verify(
    database: DatabaseOption = None,
    head: Annotated[
        list[str] | None,
        typer.Option(
            "--head",
            help="A chain head written down before ('SEQ HASH' as 'cytosafe audit head' "
            "prints it, SEQ:HASH, a bare hash), or a file of heads (that command's --out, "
            "the store's heads file): the chain must still reach it (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check the audit trail: its hash chain, the heads written down, and the stored data.

    Every stored object (plate with its measurements, result table, report, observation
    set, user, group, API token, sign-off state) is recomputed against the fingerprint
    its last audit entry recorded; the first that no longer matches is named, then the
    others. Prints the number of entries and the hash of the last one (keep it: it
    anchors the chain against truncation); exits with status 1 when anything is broken.
    """
    from cytosafe.store import audit_problems, verify_tables
    from cytosafe.store import head as chain_head

    heads = _heads(head)
    with _open(database) as store:
        problems = audit_problems(store, heads=heads)
        bad_tables = verify_tables(store)
        count, last = chain_head(store)
    for number, problem in enumerate(problems):
        where = f" at {problem}" if problem.kind == "chain" else f": {problem}"
        typer.echo(("audit trail BROKEN" if number == 0 else "also") + where, err=True)
    for item in bad_tables:
        typer.echo(f"stored content changed: {item}", err=True)
    if problems or bad_tables:
        raise typer.Exit(1)
    reached = f"; reaches the {len(heads)} head(s) given" if heads else ""
    typer.echo(
        f"audit trail intact: {count} entries, head {last}; every stored object matches "
        f"its recorded fingerprint{reached}"
    )


def audit_head(
    database: DatabaseOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also append the head to this file, as one JSON line (seq, hash, at): "
            "keep it outside the database, and check it with 'cytosafe audit verify --head FILE'.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the head of the audit chain: the number of the last entry and its hash.

    Written down outside the database (a lab notebook, another disk), it shows later that
    no entry was cut from the tail of the chain: ``cytosafe audit verify --head SEQ:HASH``.
    """
    import datetime as dt

    from cytosafe.store import head as chain_head
    from cytosafe.store.audit import canonical_json

    with _open(database) as store:
        count, last = chain_head(store)
    if out is not None:
        line = {
            "seq": count,
            "hash": last,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "reason": "cytosafe audit head",
        }
        try:
            with out.expanduser().open("a", encoding="utf-8") as fh:
                fh.write(canonical_json(line) + "\n")
        except OSError as exc:
            raise InputError(f"cannot write the head: {exc}", file=str(out)) from None
    typer.echo(f"{count} {last}")


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
