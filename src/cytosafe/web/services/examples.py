"""The SIMULATED example study and cohort that ``cytosafe serve`` loads into an empty store,
through the same services the API uses."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import UploadFile
from sqlalchemy import select

from cytosafe.store import User
from cytosafe.web.schemas import StudyIn
from cytosafe.web.services.analyses import run_hazard
from cytosafe.web.services.clinical import upload_observations
from cytosafe.web.services.studies import new_study, store_exports

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["EXAMPLE_COHORT", "EXAMPLE_STUDY", "load_examples"]

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
