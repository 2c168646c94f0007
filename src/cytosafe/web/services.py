"""What the web app does, as plain functions over the store and the analysis workflows.

The REST API (:mod:`cytosafe.web.routers`) and the web pages (:mod:`cytosafe.web.pages`)
both call these, after their own sign-in and role checks, so a page and its endpoint
answer alike; neither calls the other. Each function takes the store (and, where it
needs them, the server's settings, job runner, compute pool or table cache) and the
signed-in user; it raises :class:`~cytosafe.errors.InputError` for bad input (422) and
:class:`~fastapi.HTTPException` for a study or analysis the user cannot see (404) or a
group they are not in (403).

Background analyses are queued here and run by the job runner
(:class:`~cytosafe.web.jobs.JobRunner`); grading runs in a compute worker
(:class:`~cytosafe.web.compute.ComputePool`), so its functions here are module-level and
pickle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from fastapi import HTTPException, UploadFile, status
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store import (
    Analysis,
    AnalysisTable,
    Measurement,
    Plate,
    Report,
    Store,
    Study,
    User,
    add_report,
    add_to_group,
    audit_entries,
    complete_analysis,
    create_study,
    create_user,
    decode_table,
    import_analysis,
    import_grades,
    import_measurements,
    import_observations,
    issue_token,
    load_measurements,
    revoke_token,
    sign_off,
    verify_password,
)
from cytosafe.web.compute import ComputePool
from cytosafe.web.deps import (
    TokenCache,
    Uploads,
    get_analysis,
    get_study,
    not_found,
    strip_folder_column,
    visible,
)
from cytosafe.web.deps import uploads as upload_folder
from cytosafe.web.jobs import JobRunner
from cytosafe.web.schemas import (
    AnalysisOut,
    PlateOut,
    QuantifyIn,
    SignOffIn,
    StudyIn,
    StudyOut,
    TableOut,
    UserIn,
    UserOut,
)
from cytosafe.web.settings import Settings
from cytosafe.web.tables import EncodedTables, encode_table

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "EXAMPLE_COHORT",
    "EXAMPLE_STUDY",
    "PARQUET",
    "analysis_out",
    "aop_figure",
    "clinical_study",
    "grade_and_store",
    "grade_upload",
    "list_analyses",
    "list_plates",
    "list_studies",
    "list_users",
    "load_examples",
    "new_study",
    "new_user",
    "parse_scales",
    "read_analysis",
    "read_report",
    "read_study",
    "read_table",
    "recommend_assays",
    "records",
    "run_hazard",
    "run_quantification",
    "sign_analysis",
    "sign_in",
    "sign_out",
    "store_exports",
    "stored_table",
    "study_out",
    "upload_observations",
    "user_out",
    "without_local_files",
]

PARQUET = "application/vnd.apache.parquet"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records (ISO dates; anything else as text)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


# --- sign-in and users ------------------------------------------------------------------


def sign_in(
    store: Store, settings: Settings, username: str, password: str, *, name: str
) -> tuple[str, dt.timedelta] | None:
    """A new token (named ``name``) of the user with this password, and its lifetime;
    None for a wrong user name or password."""
    with store.reader() as session:
        user = session.scalar(select(User).where(User.username == username))
    if user is None or not verify_password(user, password):
        return None
    lifetime = dt.timedelta(hours=settings.token_hours)
    return issue_token(store, user.username, lifetime=lifetime, name=name), lifetime


def sign_out(store: Store, tokens: TokenCache, token: str | None) -> None:
    """Revoke ``token``, and forget it at once on this server."""
    tokens.forget(token)
    revoke_token(store, token)


def user_out(user: User) -> UserOut:
    """A user as the API shows it (its groups loaded)."""
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        groups=sorted(g.name for g in user.groups),
    )


def list_users(store: Store) -> list[UserOut]:
    """Every user, by user name."""
    with store.reader() as session:
        return [user_out(u) for u in session.scalars(select(User).order_by(User.username))]


def new_user(store: Store, admin: User, body: UserIn) -> UserOut:
    """Create a user with a password, a role and groups, in one transaction."""
    with store.session() as session:
        created = create_user(
            session,
            body.username,
            role=body.role,
            password=body.password,
            display_name=body.display_name,
            by=admin.username,
        )
        for group in body.groups:
            add_to_group(session, created.username, group, by=admin.username)
    with store.reader() as session:
        return user_out(session.get(User, created.id))


# --- studies and plates -----------------------------------------------------------------


def study_out(session: Session, study: Study) -> StudyOut:
    """A study as the API shows it."""
    group = study.group.name if study.group_id is not None else None
    return StudyOut(
        code=study.code,
        title=study.title,
        kind=study.kind,
        group=group,
        created_at=study.created_at,
    )


def list_studies(store: Store, user: User) -> list[StudyOut]:
    """The studies ``user`` can see, by code."""
    with store.reader() as session:
        studies = session.scalars(select(Study).order_by(Study.code)).all()
        return [study_out(session, s) for s in studies if visible(user, s)]


def read_study(store: Store, user: User, code: str) -> StudyOut:
    """One study ``user`` can see (404 otherwise)."""
    with store.reader() as session:
        return study_out(session, get_study(session, user, code))


def new_study(store: Store, user: User, body: StudyIn) -> StudyOut:
    """Create a study; its ``group`` must be one of the user's (any, for an admin)."""
    if (
        body.group is not None
        and user.role != "admin"
        and body.group not in {g.name for g in user.groups}
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"you are not a member of group '{body.group}'"
        )
    study = create_study(
        store, body.code, user=user.username, title=body.title, kind=body.kind, group=body.group
    )
    with store.reader() as session:
        return study_out(session, session.get(Study, study.id))


def list_plates(store: Store, user: User, code: str) -> list[PlateOut]:
    """The study's plates with the number of stored measurements."""
    with store.reader() as session:
        study = get_study(session, user, code)
        rows = session.execute(
            select(Plate, func.count(Measurement.id))
            .outerjoin(Measurement, Measurement.plate_id == Plate.id)
            .where(Plate.study_id == study.id)
            .group_by(Plate.id)
            .order_by(Plate.code)
        ).all()
        return [
            PlateOut(
                code=p.code,
                source_file=p.source_file,
                n_measurements=n,
                measurements_sha256=p.measurements_sha256,
            )
            for p, n in rows
        ]


def store_exports(
    store: Store,
    settings: Settings,
    user: User,
    code: str,
    files: list[UploadFile],
    sample_map: UploadFile | None = None,
) -> list[PlateOut]:
    """Read and validate uploaded exports (and a sample map), then store all their plates
    in one transaction; a plate already stored with the same measurements is kept."""
    from cytosafe.quantification import load_measurements as read_exports

    with store.reader() as session:
        study = get_study(session, user, code)
    with upload_folder(settings) as up:
        paths = [up.save(f, f"export-{i}.csv") for i, f in enumerate(files, 1)]
        map_path = None if sample_map is None else up.save(sample_map, "samples.csv")
        table, _ = read_exports(paths, sample_map=map_path, study_id=study.code)
        table = up.strip_column(table)
    plates = import_measurements(store, table, study=study.code, user=user.username)
    counts = table.groupby("plate_id").size()
    return [
        PlateOut(
            code=p.code,
            source_file=p.source_file,
            n_measurements=int(counts.get(p.code, 0)),
            measurements_sha256=p.measurements_sha256,
        )
        for p in plates
    ]


# --- analyses ---------------------------------------------------------------------------


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
    store: Store, study: Study, user: User, kind: str, settings: dict, inputs=None
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
    )


def run_quantification(
    store: Store, jobs: JobRunner, user: User, code: str, body: QuantifyIn | None = None
) -> AnalysisOut:
    """Queue the quantification of the study's stored plates (all, or ``body.plates``):
    standard curves, back-calculated wells, potency and the QC report."""
    from cytosafe import __version__
    from cytosafe.curves.calibration import CalibrationSettings

    body = body or QuantifyIn()
    calibration = CalibrationSettings(model=body.model.value, weighting=body.weighting.value)
    with store.reader() as session:
        study = get_study(session, user, code)
    # Read now: a study without (those) plates is the caller's error, not the job's.
    measurements = load_measurements(store, study.code, plates=body.plates)
    plates = sorted(measurements["plate_id"].unique().tolist())
    asked = {
        "cytosafe_version": __version__,
        "command": "quantify",
        "plates": plates,
        "calibration": calibration.to_dict(),
    }
    analysis = _queue(store, study, user, "quantification", asked)

    def work(step) -> None:
        from cytosafe import workflows
        from cytosafe.report import render_qc_report

        step(0.1, "fitting standard curves")
        # A list of one table: run_quantification records file inputs by testing
        # ``inputs or []``, which a bare DataFrame cannot answer.
        result = workflows.run_quantification([measurements], settings=calibration)
        step(0.6, "rendering the QC report")
        html = render_qc_report(result, title=f"{study.code}: quantification")
        step(0.9, "storing the tables")
        complete_analysis(
            store,
            analysis.id,
            workflows.quantification_tables(result),
            user=user.username,
            measurements=result.measurements,
            report=html,
            settings=workflows.quantification_settings(result, study_id=study.code, plates=plates),
        )

    jobs.submit(analysis.id, user.username, work)
    return read_analysis(store, user, analysis.id)


_SECTION = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", re.MULTILINE)
_LOCAL_FILES = re.compile(
    r"^(\s*)(inputs|sample_map)\s*=\s*(\[.*?\]|\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE | re.DOTALL
)


def without_local_files(text: str) -> str:
    """The study file with ``[analysis] inputs`` and ``sample_map`` emptied, lines kept.

    They name files on the scientist's disk; the API analyses the plates stored in the
    study instead (uploaded with their sample map), so they are not looked for.
    """
    out, last = [], 0
    for match in _SECTION.finditer(text + "\n[end]"):
        start = match.start()
        chunk = text[last:start]
        if out and out[-1][0] == "analysis":
            chunk = _LOCAL_FILES.sub(
                lambda m: (
                    m.group(1)
                    + m.group(2)
                    + (' = ""' if m.group(2) == "sample_map" else " = []")
                    + "\n" * m.group(3).count("\n")
                ),
                chunk,
            )
        out.append((match.group(1).strip(), chunk))
        last = start
    return "".join(chunk for _, chunk in out) + text[last:]


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
    the analysis settings."""
    from cytosafe import __version__
    from cytosafe.hazard import load_study

    with store.reader() as session:
        study = get_study(session, user, code)
    with upload_folder(settings) as up:
        path = up.save(study_file, "study.toml")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                "not UTF-8 text", file=path.name, expected="a TOML study file"
            ) from None
        path.write_text(without_local_files(text), encoding="utf-8")
        design = load_study(path)
        name = path.name
    if design.study_id and design.study_id != study.code:
        raise InputError(
            f"the study file is for study '{design.study_id}', not '{study.code}'",
            file=name,
            field="study.id",
            expected=f'id = "{study.code}"',
        )
    measurements = load_measurements(store, study.code)
    plates = sorted(measurements["plate_id"].unique().tolist())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    study_file = {"name": name, "sha256": digest, "text": text}
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
        inputs=[{"name": name, "bytes": len(text.encode("utf-8")), "sha256": digest}],
    )

    def work(step) -> None:
        from cytosafe import workflows
        from cytosafe.report.hazard import render_hazard_report

        step(0.1, "quantifying and calling the hazard")
        result = workflows.run_analysis(design, inputs=measurements)
        step(0.6, "rendering the study report")
        html = render_hazard_report(result)
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
    """The latest report of an analysis (self-contained HTML)."""
    with store.reader() as session:
        analysis, _ = get_analysis(session, user, analysis_id)
        report = session.scalars(
            select(Report).where(Report.analysis_id == analysis.id).order_by(Report.id.desc())
        ).first()
        if report is None:
            raise not_found(f"report of analysis {analysis_id}")
        return Response(report.content, media_type=report.media_type)


def sign_analysis(
    store: Store, user: User, analysis_id: int, body: SignOffIn | None = None
) -> AnalysisOut:
    """Sign off a completed analysis: from now on it is final."""
    with store.reader() as session:
        get_analysis(session, user, analysis_id)
    sign_off(store, analysis_id, user=user.username, meaning=(body or SignOffIn()).meaning)
    return read_analysis(store, user, analysis_id)


# --- clinical grading -------------------------------------------------------------------


def parse_scales(text: str) -> list[str]:
    """Comma-separated scale names; none named: ASTCT 2019."""
    return [s.strip() for s in text.split(",") if s.strip()] or ["astct2019"]


def _grades_out(result: Any) -> dict:
    """The scales, per-patient and cohort tables of a grading, as the API returns them."""
    return {
        "scales": result.scales,
        "patients": records(result.patients),
        "cohort": records(result.cohort),
    }


def grade_upload(path: str, scales: list[str]) -> dict:
    """Grade one uploaded observation table (run in a compute worker)."""
    from cytosafe.clinical import grade, read_observations

    return _grades_out(grade(read_observations(path), scales))


def _read_and_grade(
    kind: str,
    parts: dict[str, str],
    folder: str,
    product: str | None,
    scales: list[str],
    title: str,
) -> tuple[Any, Any, str]:
    """Read uploaded observations (a table, SDTM domains or a FHIR bundle), grade them and
    render the report (run in a compute worker); file names lose the upload folder."""
    from cytosafe.clinical import grade, read_observations
    from cytosafe.report.clinical import render_clinical_report

    if kind == "table":
        obs = read_observations(parts["file"])
    elif kind == "sdtm":
        from cytosafe.io.sdtm import read_sdtm

        obs = read_sdtm(**parts, product=product).observations
    else:
        from cytosafe.io.fhir import read_fhir

        obs = read_fhir(parts["bundle"], product=product).observations
    obs.table = strip_folder_column(obs.table, folder)
    result = grade(obs, scales)
    return obs, result, render_clinical_report(result, title=title)


def clinical_study(store: Store, user: User, code: str) -> Study:
    """A clinical study ``user`` can see (404 otherwise; a CRA study is bad input)."""
    with store.reader() as session:
        study = get_study(session, user, code)
    if study.kind != "clinical":
        raise InputError(
            f"study '{code}' is a {study.kind} study",
            field="study",
            expected="a clinical study (kind 'clinical')",
        )
    return study


def grade_and_store(
    store: Store,
    compute: ComputePool,
    study: Study,
    user: User,
    up: Uploads,
    kind: str,
    parts: dict,
    product: str | None,
    scales: str,
) -> dict:
    """Read and grade uploaded observations (``kind``: ``table``, ``sdtm`` or ``fhir``)
    in a compute worker, then store the observations, their grades (a grading analysis)
    and its report in one transaction; returns the per-patient and cohort tables."""
    from cytosafe import __version__

    source = ", ".join(Path(p).name for p in parts.values())
    obs, result, html = compute.call(
        _read_and_grade,
        kind,
        {k: str(v) for k, v in parts.items()},
        str(up.dir),
        product or None,
        parse_scales(scales),
        f"{study.code}: CRS grading",
    )
    columns = ["patient_id", "time", "item", "value", "unit", "source_file", "source_row"]
    with store.session() as session:
        n = import_observations(
            session, obs.table[columns], study=study.code, user=user.username, source=source
        )
        analysis = import_grades(
            session,
            result.timeline,
            study=study.code,
            user=user.username,
            settings={
                "cytosafe_version": __version__,
                "command": "grade",
                "scales": list(result.scales),
                "source": source,
            },
            tables={"patients": result.patients, "cohort": result.cohort},
        )
        add_report(session, analysis, html, user=user.username)
    return {"analysis": analysis.id, "observations": n, **_grades_out(result)}


def upload_observations(
    store: Store,
    settings: Settings,
    compute: ComputePool,
    user: User,
    code: str,
    file: UploadFile,
    scales: str = "astct2019",
) -> dict:
    """Store an uploaded observation table (patient_id, time, item, value, unit) and its
    grades (a grading analysis) in one transaction; returns the per-patient and cohort
    tables."""
    study = clinical_study(store, user, code)
    with upload_folder(settings) as up:
        path = up.save(file, "observations.csv")
        return grade_and_store(
            store, compute, study, user, up, "table", {"file": path}, None, scales
        )


# --- knowledge --------------------------------------------------------------------------


def recommend_assays(
    modality: str,
    target: str | None = None,
    fc: str | None = None,
    intended_use: str = "hazard_identification",
) -> dict:
    """The ranked CRA formats for a molecule and what they cannot see, as JSON."""
    from cytosafe.assays.recommend import recommend

    rec = recommend(modality, target, fc, intended_use)
    return {
        "modality": rec.modality,
        "modality_name": rec.modality_name,
        "target": rec.target,
        "fc": rec.fc,
        "intended_use": rec.intended_use,
        "chosen": rec.chosen,
        "uncovered": rec.uncovered,
        "notes": rec.notes,
        "panel": rec.panel,
        "controls": json.loads(json.dumps(rec.controls, default=str)),
        "ranking": records(rec.ranking),
        "citations": rec.citations,
        "knowledge_base_version": rec.kb_version,
    }


def aop_figure(modality: str | None = None, highlight: str | None = None) -> str:
    """The CRS adverse outcome pathway as SVG (one modality's pathway when given), with
    the comma-separated key events of ``highlight`` emphasised."""
    from cytosafe.aop import aop_svg, load_crs_aop

    aop = load_crs_aop()
    marks = {h.strip() for h in (highlight or "").split(",") if h.strip()}
    unknown = sorted(marks - set(aop.events))
    if unknown:
        raise InputError(
            f"unknown key event '{unknown[0]}'",
            field="highlight",
            expected="keys of the AOP's events: " + ", ".join(sorted(aop.events)),
        )
    if modality is not None and not aop.mies_for(modality):
        raise InputError(
            f"unknown modality '{modality}'",
            field="modality",
            expected="a modality of the AOP, e.g. cd3_bispecific",
        )
    return aop_svg(aop, highlight=marks, modality=modality)


# --- the example data of `cytosafe serve` -----------------------------------------------

EXAMPLE_STUDY = "CRA-EX-001"
EXAMPLE_COHORT = "CRS-EX-001"


def load_examples(app: FastAPI, examples: Path, *, user: str = "admin") -> list[str]:
    """Load the SIMULATED example study (MSD plates, sample map; its hazard analysis
    queued as a background job of ``app``) and the example cohort (observations, graded)
    into the app's store, as ``user`` (else the first admin), through the functions the
    API uses. Returns what was loaded, one line each."""
    state = app.state
    store, settings = state.store, state.settings

    def upload(path: Path) -> UploadFile:
        return UploadFile(io.BytesIO(path.read_bytes()), filename=path.name)

    with store.reader() as session:
        actor = session.scalar(select(User).where(User.username == user))
        if actor is None or actor.role != "admin":
            actor = session.scalar(select(User).where(User.role == "admin").order_by(User.id))
    if actor is None:
        return ["example data not loaded: the store has no admin user to load it as"]
    cra = examples / "cra-study"
    new_study(store, actor, StudyIn(code=EXAMPLE_STUDY, title="SIMULATED example CRA study"))
    plates = sorted((cra / "msd").glob("plate_*.csv"))
    stored = store_exports(
        store,
        settings,
        actor,
        EXAMPLE_STUDY,
        [upload(p) for p in plates],
        upload(cra / "msd" / "samples.csv"),
    )
    job = run_hazard(store, settings, state.jobs, actor, EXAMPLE_STUDY, upload(cra / "study.toml"))
    cohort = StudyIn(code=EXAMPLE_COHORT, title="SIMULATED example CRS cohort", kind="clinical")
    new_study(store, actor, cohort)
    graded = upload_observations(
        store,
        settings,
        state.compute,
        actor,
        EXAMPLE_COHORT,
        upload(examples / "crs-cohort" / "observations.csv"),
        "astct2019",
    )
    return [
        f"loaded SIMULATED example study {EXAMPLE_STUDY}: {len(stored)} MSD plates; "
        f"hazard analysis {job.id} running",
        f"loaded SIMULATED example cohort {EXAMPLE_COHORT}: {graded['observations']} "
        f"observations graded (analysis {graded['analysis']})",
    ]
