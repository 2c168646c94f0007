"""Studies and their plates: listing what a user may see, creating studies, storing the
plates of uploaded exports."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cytosafe.store import Measurement, Plate, Store, Study, User, create_study, import_measurements
from cytosafe.web.deps import get_study, uploads, visible
from cytosafe.web.schemas import PlateOut, StudyIn, StudyOut
from cytosafe.web.settings import Settings

__all__ = [
    "list_plates",
    "list_studies",
    "new_study",
    "read_study",
    "store_exports",
    "study_out",
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
