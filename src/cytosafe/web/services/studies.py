"""Studies and their plates: listing what a user may see, creating studies, storing the
plates of uploaded exports, attaching a sample map to stored plates, deleting a plate,
a plate's layout, and the study's design (stored from the form, imported and exported as
a study file)."""

from __future__ import annotations

import hashlib
import json

from fastapi import HTTPException, UploadFile, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store import (
    Measurement,
    Plate,
    Store,
    Study,
    User,
    create_study,
    import_measurements,
    load_measurements,
)
from cytosafe.web.deps import get_study, not_found, uploads, visible
from cytosafe.web.schemas import PlateOut, StudyIn, StudyOut
from cytosafe.web.settings import Settings

__all__ = [
    "as_upload",
    "attach_sample_map",
    "design_file",
    "design_upload",
    "list_plates",
    "list_studies",
    "new_study",
    "own_study_file",
    "plate_view",
    "read_design",
    "read_study",
    "remove_plate",
    "store_design",
    "store_exports",
    "study_out",
    "unmapped_plates",
]


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
    with uploads(settings) as up:
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


# --- sample maps, plate deletion, the plate's layout ---------------------------------------


def _map_plates(smap, study_plates: list[str], asked: str | None, source: str) -> list[str]:
    """The plates a sample map is attached to: ``asked``, or those its ``plate_id``
    column names, or the study's one plate."""
    if asked:
        if asked not in study_plates:
            raise InputError(
                f"the study has no plate '{asked}'",
                field="plate_id",
                expected=", ".join(study_plates) or "upload the exports first",
            )
        return [asked]
    if "plate_id" in smap.columns:
        named = sorted({str(p).strip() for p in smap["plate_id"].dropna() if str(p).strip()})
        unknown = [p for p in named if p not in study_plates]
        if unknown:
            rows = smap["_map_row"][smap["plate_id"].astype(str).str.strip() == unknown[0]]
            raise InputError(
                f"the sample map names plate '{unknown[0]}', which the study does not hold",
                file=source,
                row=int(rows.iloc[0]) if len(rows) else None,
                field="plate_id",
                expected="plates among: " + ", ".join(study_plates),
            )
        return named
    if len(study_plates) == 1:
        return study_plates
    raise InputError(
        "the sample map has no plate_id column and the study holds several plates",
        file=source,
        field="plate_id",
        expected="choose the plate, or add a plate_id column to the map",
    )


def attach_sample_map(
    store: Store,
    settings: Settings,
    user: User,
    code: str,
    sample_map: UploadFile,
    *,
    plate: str | None = None,
    reason: str = "",
) -> list[dict]:
    """Attach (or replace) the sample map of stored plates: ``plate``, or every plate the
    map's ``plate_id`` column names (or the study's only plate).

    The map is read and joined as the readers join it (:func:`cytosafe.io.read_sample_map`,
    :func:`cytosafe.io.samples.annotate`: a key twice, a well the plate lacks, a sample or
    control missing from the map, a bad number are an :class:`InputError` naming the
    file, row or well and field), then every plate is edited in one transaction
    (:func:`cytosafe.store.studies.annotate_plate`, audited; refused under a signed-off
    analysis).
    """
    from cytosafe.io.samples import annotate, read_sample_map
    from cytosafe.store.studies import annotate_plate

    with store.reader() as session:
        study = get_study(session, user, code)
        study_plates = sorted(session.scalars(select(Plate.code).where(Plate.study_id == study.id)))
    reason = reason.strip() or "sample map attached"
    with uploads(settings) as up:
        path = up.save(sample_map, "samples.csv")
        raw = path.read_bytes()
        smap = read_sample_map(path)
        name = path.name
        smap.attrs["source"] = name
        chosen = _map_plates(smap, study_plates, plate, name)
        tables = []
        for one in chosen:
            table = load_measurements(store, study.code, plates=[one])
            tables.append(annotate(table, smap, source=name))
    digest = hashlib.sha256(raw).hexdigest()
    with store.session() as session:
        return [
            annotate_plate(
                session,
                study.code,
                one,
                table,
                user=user.username,
                reason=reason,
                source=name,
                source_sha256=digest,
            )
            for one, table in zip(chosen, tables, strict=True)
        ]


def remove_plate(store: Store, user: User, code: str, plate: str, reason: str) -> dict:
    """Delete a plate of the study, with a reason (audited; a plate read by a signed-off
    analysis is refused, 409)."""
    from cytosafe.store.studies import delete_plate

    with store.reader() as session:
        study = get_study(session, user, code)
    return delete_plate(store, study.code, plate, user=user.username, reason=reason)


def plate_view(store: Store, user: User, code: str, plate: str, analyte: str | None) -> dict:
    """The layout of a stored plate (:func:`cytosafe.web.plate_layout.plate_grid`), with
    the analyses that read it (``analyses``: id, kind, version, status)."""
    from cytosafe.store.models import Analysis
    from cytosafe.web.plate_layout import plate_grid

    with store.reader() as session:
        study = get_study(session, user, code)
        row = session.scalar(select(Plate).where(Plate.study_id == study.id, Plate.code == plate))
        if row is None:
            raise not_found(f"plate '{plate}' of study '{code}'")
        analyses = [
            {"id": a.id, "kind": a.kind, "version": a.version, "status": a.status}
            for a in session.scalars(
                select(Analysis)
                .where(Analysis.plates.any(Plate.id == row.id))
                .order_by(Analysis.id)
            )
        ]
        out = PlateOut(
            code=row.code, source_file=row.source_file, measurements_sha256=row.measurements_sha256
        )
    table = load_measurements(store, study.code, plates=[plate])
    out.n_measurements = len(table)
    return {"plate": out, "grid": plate_grid(table, analyte), "analyses": analyses}


# --- the study design ----------------------------------------------------------------------


def read_design(store: Store, user: User, code: str) -> dict | None:
    """The study's stored design (None: none yet)."""
    with store.reader() as session:
        study = get_study(session, user, code)
        return None if study.design is None else dict(study.design)


def store_design(store: Store, user: User, code: str, design: dict, *, file: str) -> dict:
    """Validate ``design`` (as ``cytosafe analyze`` reads a study file) and store it as the
    study's (audited); ``study.id`` is the study's code."""
    from cytosafe.store.studies import save_design
    from cytosafe.web.design_form import own_design, validate_design

    with store.reader() as session:
        study = get_study(session, user, code)
    own, _ = own_design(design, study.code)
    validate_design(own, study.code, file=file)
    save_design(store, study.code, own, user=user.username)
    return own


def design_upload(
    store: Store, settings: Settings, user: User, code: str, study_file: UploadFile
) -> tuple[dict, list[str]]:
    """The design of an uploaded study file (TOML), validated, as this study's, and notes
    on what was changed (another study id; inputs left out); not stored."""
    from cytosafe.web.design_form import design_from_toml

    with store.reader() as session:
        study = get_study(session, user, code)
    with uploads(settings) as up:
        path = up.save(study_file, "study.toml")
        return design_from_toml(path.read_bytes(), study.code, file=path.name)


def design_file(store: Store, user: User, code: str) -> str:
    """The stored design as a study file (TOML); 404 when the study has none."""
    from cytosafe.web.design_form import design_toml

    with store.reader() as session:
        study = get_study(session, user, code)
        if study.design is None:
            raise not_found(f"a design of study '{code}'")
        return design_toml(study.design, study.code)


def as_upload(content: str | bytes, name: str) -> UploadFile:
    """``content`` as an uploaded file (what :func:`cytosafe.web.services.run_hazard` reads)."""
    import io

    data = content.encode("utf-8") if isinstance(content, str) else content
    return UploadFile(io.BytesIO(data), filename=name)


def own_study_file(raw: bytes, code: str, name: str) -> tuple[bytes, str | None]:
    """An uploaded study file made this study's: a ``study.id`` other than ``code`` is
    replaced by it (the line rewritten, the rest of the file as it was), with a note that
    says so; a file that is not TOML is left to the hazard job's reader to name its line.
    """
    import re
    import tomllib

    try:
        text = raw.decode("utf-8-sig")
        parsed = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return raw, None
    study = parsed.get("study")
    old = study.get("id") if isinstance(study, dict) else None
    if old is None or old == code:
        return raw, None
    from cytosafe.web.design_form import dumps_toml

    # The [study] table's id line (the common spelling); otherwise the file is rewritten.
    lines = text.splitlines(keepends=True)
    section, done = None, False
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if header or re.match(r"^\s*\[\[", line):
            section = header.group(1) if header else None
            continue
        if section == "study" and re.match(r"^\s*id\s*=", line):
            lines[i] = f"id = {json.dumps(code, ensure_ascii=False)}\n"
            done = True
            break
    new = "".join(lines)
    try:
        ok = done and tomllib.loads(new).get("study", {}).get("id") == code
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        parsed["study"]["id"] = code
        new = dumps_toml(parsed)
    note = (
        f"The study file {name} is for study '{old}'; it was run as this study, '{code}' "
        "(its study id replaced)."
    )
    return new.encode("utf-8"), note


def unmapped_plates(store: Store, user: User, code: str) -> dict[str, int]:
    """Plates whose sample wells lack a donor and a treatment (an export uploaded without
    its sample map), with how many such wells (one per well, not per analyte): the study
    page says so before a quantification finds no potency to compute."""
    with store.reader() as session:
        study = get_study(session, user, code)
        rows = session.execute(
            select(Plate.code, func.count(func.distinct(Measurement.well)))
            .join(Measurement, Measurement.plate_id == Plate.id)
            .where(
                Plate.study_id == study.id,
                Measurement.sample_type == "sample",
                Measurement.donor_id.is_(None),
                Measurement.treatment.is_(None),
            )
            .group_by(Plate.code)
            .order_by(Plate.code)
        ).all()
    return {plate: int(n) for plate, n in rows if n}
