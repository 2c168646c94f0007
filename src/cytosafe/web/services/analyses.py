"""Analyses: background quantification and hazard runs through the workflow layer, their
tables and reports, and sign-off.

A run is queued as an analysis (``queued``) with the settings asked for, and run by the
job runner (:class:`~cytosafe.web.jobs.JobRunner`) through :mod:`cytosafe.workflows`, the
sequence ``cytosafe quantify`` and ``cytosafe analyze`` run too: the job stores the same
tables and the settings the run recorded (:func:`cytosafe.store.complete_analysis`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path, PurePosixPath

import pandas as pd
from fastapi import UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.report.signature import with_manifest
from cytosafe.store import (
    Analysis,
    AnalysisTable,
    Plate,
    Report,
    Store,
    Study,
    User,
    audit_entries,
    complete_analysis,
    decode_table,
    import_analysis,
    load_measurements,
)
from cytosafe.store.signatures import (
    SignatureRefused,
    check_meaning,
    list_signatures,
    record_refusal,
    sign,
)
from cytosafe.web.deps import get_analysis, get_study, not_found, uploads
from cytosafe.web.jobs import JobRunner
from cytosafe.web.schemas import AnalysisOut, QuantifyIn, SignatureOut, SignOffIn, TableOut
from cytosafe.web.security import report_policy
from cytosafe.web.services.studies import own_study_file
from cytosafe.web.settings import Settings
from cytosafe.web.tables import PARQUET, EncodedTables, encode_table

__all__ = [
    "analysis_out",
    "analysis_signatures",
    "list_analyses",
    "read_analysis",
    "read_report",
    "read_table",
    "rerun_quantification",
    "run_hazard",
    "run_quantification",
    "sign_analysis",
    "stored_table",
]


def analysis_out(store: Store, session: Session, analysis: Analysis, study: Study) -> AnalysisOut:
    """An analysis as the API shows it: status, progress, settings, tables, reports; a
    failed job's message is taken from its audit entry when the row has none."""

    def name(user_id):
        return None if user_id is None else session.get(User, user_id).username

    tables = session.scalars(
        select(AnalysisTable).where(AnalysisTable.analysis_id == analysis.id)
    ).all()
    reports = session.scalars(select(Report.name).where(Report.analysis_id == analysis.id))
    message = analysis.progress_message
    if analysis.status == "failed" and message in (None, "failed"):
        last = audit_entries(store, object_type="analysis", object_id=analysis.id)
        failed = [e for e in last if e["details"].get("new") == "failed"]
        message = failed[-1]["details"].get("message") if failed else message
    fraction = analysis.progress
    if analysis.status in ("completed", "signed_off", "failed"):
        fraction = 1.0
    return AnalysisOut(
        id=analysis.id,
        study=study.code,
        kind=analysis.kind,
        version=analysis.version,
        status=analysis.status,
        progress=fraction,
        message=message,
        settings=analysis.settings,
        cytosafe_version=analysis.cytosafe_version,
        created_by=name(analysis.created_by_id),
        created_at=analysis.created_at,
        signed_off_by=name(analysis.signed_off_by_id),
        signed_off_at=analysis.signed_off_at,
        tables=[
            TableOut(name=t.name, n_rows=t.n_rows, columns=t.columns, sha256=t.sha256)
            for t in tables
        ],
        reports=list(reports),
    )


def list_analyses(store: Store, user: User, code: str) -> list[AnalysisOut]:
    """The analyses of a study, oldest first."""
    with store.reader() as session:
        study = get_study(session, user, code)
        rows = session.scalars(
            select(Analysis).where(Analysis.study_id == study.id).order_by(Analysis.id)
        ).all()
        return [analysis_out(store, session, a, study) for a in rows]


def read_analysis(store: Store, user: User, analysis_id: int) -> AnalysisOut:
    """One analysis ``user`` can see (404 otherwise)."""
    with store.reader() as session:
        analysis, study = get_analysis(session, user, analysis_id)
        return analysis_out(store, session, analysis, study)


def _queue(
    store: Store,
    study: Study,
    user: User,
    kind: str,
    settings: dict,
    inputs=None,
    previous: int | None = None,
) -> Analysis:
    return import_analysis(
        store,
        kind,
        {},
        study=study.code,
        user=user.username,
        settings=settings,
        inputs=inputs,
        status="queued",
        previous=previous,
    )


def _plate_inputs(store: Store, study: Study, plates: list[str]) -> list[dict]:
    """The report inputs of the stored ``plates`` of ``study``: each plate's file name and
    the SHA-256 of its stored measurements (:func:`cytosafe.report.page.plate_inputs`), so
    that a report made here names its inputs as one made by ``cytosafe`` does (issue 15)."""
    from cytosafe.report.page import plate_inputs

    with store.reader() as session:
        rows = session.execute(
            select(Plate.code, Plate.source_file, Plate.measurements_sha256)
            .where(Plate.study_id == study.id, Plate.code.in_(plates))
            .order_by(Plate.code)
        ).all()
    return plate_inputs((code, source, digest) for code, source, digest in rows)


def run_quantification(
    store: Store,
    jobs: JobRunner,
    user: User,
    code: str,
    body: QuantifyIn | None = None,
    *,
    previous: int | None = None,
) -> AnalysisOut:
    """Queue the quantification of the study's stored plates (all, or ``body.plates``):
    standard curves, back-calculated wells, potency and the QC report.

    Only the options the caller set are passed on (``settings.options``); every other
    choice is each plate's vendor convention, recorded in ``settings.conventions``, as
    ``cytosafe quantify`` without options does. The stored exclusions and their reasons
    are read with the measurements. ``previous``: the quantification this one re-runs
    (a re-analysis, the next version).
    """
    from cytosafe import __version__

    body = body or QuantifyIn()
    options = body.options()
    with store.reader() as session:
        study = get_study(session, user, code)
    # Read now: a study without (those) plates is the caller's error, not the job's.
    measurements = load_measurements(store, study.code, plates=body.plates)
    plates = sorted(measurements["plate_id"].unique().tolist())
    asked = {
        "cytosafe_version": __version__,
        "command": "quantify",
        "plates": plates,
        "options": options,
    }
    analysis = _queue(store, study, user, "quantification", asked, previous=previous)
    report_inputs = _plate_inputs(store, study, plates)

    def work(step) -> None:
        from cytosafe import workflows
        from cytosafe.report import render_qc_report

        step(0.1, "fitting standard curves")
        # A list of one table: run_quantification records file inputs by testing
        # ``inputs or []``, which a bare DataFrame cannot answer.
        result = workflows.run_quantification([measurements], options=options or None)
        step(0.6, "rendering the QC report")
        # Packed (a third of the size): served under the report policy's 'strict-dynamic'.
        html = render_qc_report(
            result, title=f"{study.code}: quantification", inputs=report_inputs, packed=True
        )
        step(0.9, "storing the tables")
        ran = workflows.quantification_settings(
            result, study_id=study.code, plates=plates, options=options
        )
        complete_analysis(
            store,
            analysis.id,
            workflows.quantification_tables(result),
            user=user.username,
            measurements=result.measurements,
            report=html,
            settings=ran,
        )

    jobs.submit(analysis.id, user.username, work)
    return read_analysis(store, user, analysis.id)


def rerun_quantification(
    store: Store, jobs: JobRunner, user: User, analysis_id: int
) -> AnalysisOut:
    """Quantify the plates of a quantification again, with the options it was asked for
    and the study's exclusions as they are now: a re-analysis (its next version)."""
    with store.reader() as session:
        analysis, study = get_analysis(session, user, analysis_id)
        kind, settings = analysis.kind, dict(analysis.settings or {})
    if kind != "quantification":
        raise InputError(
            f"analysis {analysis_id} is a {kind} analysis",
            field="analysis",
            expected="a quantification analysis",
        )
    body = QuantifyIn(plates=settings.get("plates"), **(settings.get("options") or {}))
    return run_quantification(store, jobs, user, study.code, body, previous=analysis_id)


_GLOB = re.compile(r"[*?\[\]]")


def _uploaded_files(store: Store, study: Study) -> dict[str, set[str]]:
    """The names of the files uploaded to ``study``, by plate code (a tidy table's own
    ``source_file`` is cut to its last part, as the names of uploads are)."""
    with store.reader() as session:
        rows = session.execute(
            select(Plate.code, Plate.source_file).where(Plate.study_id == study.id)
        ).all()
    names = {code: {PurePosixPath(p).name for p in (s or "").split(";")} for code, s in rows}
    return {code: {n for n in found if n not in ("", ".", "..")} for code, found in names.items()}


def _file_reference(value, *, file: str, text: str, field: str, study: str, patterns: bool):
    """``value`` of ``[analysis] inputs``/``sample_map`` as a relative folder and a name,
    checked without looking at any file (an absolute path, ``..``, a drive or a backslash,
    a pattern in a folder: an :class:`InputError` that says nothing of the server)."""
    expected = (
        "the names of files uploaded to this study (a pattern such as plate_*.csv may "
        "stand for several), optionally after a relative folder"
    )
    if not isinstance(value, str) or not value.strip():
        raise InputError("must be a list of names", file=file, field=field, expected=expected)
    row = next((i for i, line in enumerate(text.splitlines(), 1) if value in line), None)
    where = PurePosixPath(value.strip())
    folder = where.parent.parts
    if (
        where.is_absolute()
        or value.strip().startswith("~")
        or re.match(r"^[A-Za-z]:", value.strip())
        or "\\" in value
        or any(ord(c) < 32 for c in value)
        or ".." in where.parts
        or any(_GLOB.search(part) for part in folder)
        or (not patterns and _GLOB.search(where.name))
    ):
        raise InputError(
            f"'{value}' is not a file uploaded to study '{study}': a study file sent to the "
            "server names its inputs by file name, never by a path on the server",
            file=file,
            row=row,
            field=field,
            expected=expected,
        )
    return PurePosixPath(*folder) if folder else PurePosixPath("."), where.name, row


def _stage_local_files(
    raw: dict, folder: Path, *, file: str, text: str, study: str, uploaded: dict[str, set[str]]
) -> list[str] | None:
    """Check the study file's ``[analysis] inputs`` and ``sample_map`` against the files
    uploaded to the study, by name, and lay empty stand-ins for them in the private upload
    ``folder`` so that :func:`~cytosafe.hazard.load_study` finds them there and nowhere else.

    Returns the plates the inputs name (None: all of the study's).
    """
    analysis = raw.get("analysis", {})
    if not isinstance(analysis, dict):
        raise InputError(
            "[analysis] must be a table", file=file, field="analysis", expected="[analysis]"
        )
    inputs = analysis.get("inputs", [])
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list):
        raise InputError(
            "must be a list of names", file=file, field="analysis.inputs", expected='["a.csv"]'
        )
    every = sorted(set().union(*uploaded.values())) if uploaded else []
    plates: set[str] = set()
    stand_ins: list[PurePosixPath] = []
    for value in inputs:
        sub, name, row = _file_reference(
            value, file=file, text=text, field="analysis.inputs", study=study, patterns=True
        )
        named = [n for n in every if fnmatch.fnmatchcase(n, name)]
        if not named:
            raise InputError(
                f"'{value}' matches none of the files uploaded to study '{study}'",
                file=file,
                row=row,
                field="analysis.inputs",
                expected=", ".join(every[:20]) + (", ..." if len(every) > 20 else "")
                or "upload the study's exports first",
            )
        plates |= {code for code, names in uploaded.items() if names.intersection(named)}
        stand_ins += [sub / n for n in named]
    sample_map = analysis.get("sample_map")
    if sample_map:
        sub, name, _ = _file_reference(
            sample_map, file=file, text=text, field="analysis.sample_map", study=study,
            patterns=False,
        )  # fmt: skip
        stand_ins.append(sub / name)  # the sample map uploaded with the plates is used
    for stand_in in stand_ins:
        target = folder.joinpath(*stand_in.parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        except OSError:
            raise InputError(
                f"'{stand_in}' cannot be both a folder and a file",
                file=file,
                field="analysis",
            ) from None
    return sorted(plates) if inputs else None


def run_hazard(
    store: Store,
    settings: Settings,
    jobs: JobRunner,
    user: User,
    code: str,
    study_file: UploadFile,
) -> AnalysisOut:
    """Queue the whole analysis of a study file on the study's stored plates:
    quantification, donor responses, statistics, hazard classes and the study report.
    The study file is validated now (naming line and key) and kept, with its SHA-256, in
    the analysis settings; one written for another ``study.id`` is run as this study, its
    id line replaced (:func:`~cytosafe.web.services.studies.own_study_file`, as the study
    page does) and the note saying so kept with it. The report names the study file and
    each plate's file with their SHA-256 (:func:`cytosafe.report.page.plate_inputs`).

    Its ``[analysis] inputs`` name files uploaded to the study, by name or pattern (the
    folder before it, as on the scientist's disk, is ignored): the plates of those files
    are analysed (without ``inputs``, all of the study's). They are matched against the
    names stored with the plates, never looked for on the server: an absolute path, a
    ``..``, or a name no upload has is a 422 that says nothing of the server's files
    (issue 14, defect 6), whatever the TOML syntax (quoted keys, dotted keys, inline
    tables), as the file is read by a TOML parser before anything else.
    """
    from cytosafe import __version__
    from cytosafe.hazard import load_study

    with store.reader() as session:
        study = get_study(session, user, code)
    uploaded = _uploaded_files(store, study)
    with uploads(settings) as up:
        path = up.save(study_file, "study.toml")
        # A study file written for another study id runs as this study, as on the study
        # page; the note saying so is kept with the study file in the analysis settings.
        raw, note = own_study_file(path.read_bytes(), study.code, path.name)
        if note:
            path.write_bytes(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                "not UTF-8 text", file=path.name, expected="a TOML study file"
            ) from None
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            parsed = None  # load_study names the line
        chosen = None
        if parsed is not None:
            chosen = _stage_local_files(
                parsed, up.dir, file=path.name, text=text, study=study.code, uploaded=uploaded
            )
        design = load_study(path)
        # The stand-ins have served: the job reads the stored plates, never a file.
        design = dataclasses.replace(
            design, analysis=dataclasses.replace(design.analysis, inputs=(), sample_map=None)
        )
        name = path.name
    if design.study_id and design.study_id != study.code:
        raise InputError(
            f"the study file is for study '{design.study_id}', not '{study.code}'",
            file=name,
            field="study.id",
            expected=f'id = "{study.code}"',
        )
    measurements = load_measurements(store, study.code, plates=chosen)
    plates = sorted(measurements["plate_id"].unique().tolist())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    study_file = {"name": name, "sha256": digest, "text": text}
    if note:
        study_file["note"] = note
    file_input = {"name": name, "bytes": len(text.encode("utf-8")), "sha256": digest}
    report_inputs = [{**file_input, "note": "the study file"}, *_plate_inputs(store, study, plates)]
    analysis = _queue(
        store,
        study,
        user,
        "hazard",
        {
            "cytosafe_version": __version__,
            "command": "analyze",
            "study_file": study_file,
            "hazard": design.settings.to_dict(),
        },
        inputs=[file_input],
    )

    def work(step) -> None:
        from cytosafe import workflows
        from cytosafe.report.hazard import render_hazard_report

        step(0.1, "quantifying and calling the hazard")
        result = workflows.run_analysis(design, inputs=measurements)
        step(0.6, "rendering the study report")
        html = render_hazard_report(result, inputs=report_inputs, packed=True)
        step(0.9, "storing the tables")
        # The study file was read from a temporary upload folder: name it as uploaded.
        ran = {**workflows.analysis_settings(result), "study": name, "plates": plates}
        complete_analysis(
            store,
            analysis.id,
            workflows.analysis_tables(result),
            user=user.username,
            measurements=result.quantification.measurements,
            report=html,
            settings={**ran, "study_file": study_file},
        )

    jobs.submit(analysis.id, user.username, work)
    return read_analysis(store, user, analysis.id)


def read_table(
    store: Store, cache: EncodedTables, user: User, analysis_id: int, name: str, fmt: str
) -> Response:
    """One result table of an analysis as CSV, JSON (records) or Parquet; Parquet is sent
    as stored (its SHA-256 is the one recorded in the audit trail)."""
    with store.reader() as session:
        analysis, _ = get_analysis(session, user, analysis_id)
        row = session.scalar(
            select(AnalysisTable).where(
                AnalysisTable.analysis_id == analysis.id, AnalysisTable.name == name
            )
        )
        if row is None:
            raise not_found(f"table '{name}' of analysis {analysis_id}")
        body = cache.get(row.sha256, fmt)
        if body is None:
            content = row.content  # the bytes are loaded only when not yet encoded
            body = content if fmt == "parquet" else encode_table(content, fmt)
            if fmt != "parquet":
                cache.put(row.sha256, fmt, body)
    filename = f"analysis-{analysis_id}-{name}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "parquet":
        return Response(body, media_type=PARQUET, headers=disposition)
    if fmt == "json":
        return Response(body, media_type="application/json")
    return Response(body, media_type="text/csv", headers=disposition)


def stored_table(store: Store, analysis_id: int, name: str) -> pd.DataFrame | None:
    """A result table of an analysis (None when it has none of that name); the caller
    has checked that the user may see the analysis."""
    with store.reader() as session:
        row = session.scalar(
            select(AnalysisTable).where(
                AnalysisTable.analysis_id == analysis_id, AnalysisTable.name == name
            )
        )
        return None if row is None else decode_table(row.content)


def read_report(store: Store, user: User, analysis_id: int) -> Response:
    """The latest report of an analysis (self-contained HTML), with the content security
    policy of reports (:func:`cytosafe.web.security.report_policy`); a signed analysis's
    report is served with its signature manifest at the top
    (:func:`cytosafe.report.signature.with_manifest`, 21 CFR 11.50(b)), the stored bytes
    unchanged."""
    with store.reader() as session:
        analysis, _ = get_analysis(session, user, analysis_id)
        report = session.scalars(
            select(Report).where(Report.analysis_id == analysis.id).order_by(Report.id.desc())
        ).first()
        if report is None:
            raise not_found(f"report of analysis {analysis_id}")
        content, headers = report.content, {}
        if report.media_type.startswith("text/html"):
            signatures = list_signatures(session, analysis.id)
            final = analysis.status == "signed_off"
            content = with_manifest(content, signatures, final=final)
            # Its own inline scripts may run, by hash, and the scripts they create (a packed
            # report's plotly.js, from a blob: URL); nothing else. The manifest adds no
            # script, so the stored report's policy is the policy.
            headers["Content-Security-Policy"] = report_policy(report.content, report.sha256)
        return Response(content, media_type=report.media_type, headers=headers)


def sign_analysis(store: Store, user: User, analysis_id: int, body: SignOffIn) -> AnalysisOut:
    """Sign an analysis electronically as ``user`` (:func:`cytosafe.store.signatures.sign`):
    the password again, and the user name when given (it must be the signed-in user's);
    the analysis becomes final at its "approved" signature.

    Raises
    ------
    SignatureRefused
        A wrong password or a user name that is not the signed-in user's (recorded in
        the audit trail); the face answers 401 and counts it as a failed sign-in.
    """
    with store.reader() as session:
        get_analysis(session, user, analysis_id)  # 404 when the user may not see it
    wanted = check_meaning(body.meaning)
    if body.username is not None and body.username.strip() != user.username:
        record_refusal(
            store, analysis_id, user=user.id, meaning=wanted.key, reason="wrong user name"
        )
        raise SignatureRefused(
            "signature refused: the user name is not the signed-in user's; nothing was "
            "signed (the attempt is recorded in the audit trail)"
        )
    sign(
        store,
        analysis_id,
        user=user.username,
        password=body.password,
        meaning=wanted.key,
        comment=body.comment,
    )
    return read_analysis(store, user, analysis_id)


def analysis_signatures(store: Store, user: User, analysis_id: int) -> list[SignatureOut]:
    """The signatures of an analysis ``user`` can see (404 otherwise), oldest first."""
    with store.reader() as session:
        get_analysis(session, user, analysis_id)
        return [SignatureOut(**s) for s in list_signatures(session, analysis_id)]
