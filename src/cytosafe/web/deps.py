"""What the endpoints depend on: the signed-in user and their role, the server's state,
study and analysis lookups that respect groups, and uploaded files.

Every endpoint under ``/api`` except ``POST /api/token`` needs a bearer token (401
without one) and checks the caller's role (403 when too low): ``viewer`` reads,
``analyst`` uploads and runs analyses, ``study_director`` signs off and reads the audit
trail, ``admin`` manages users. Roles are ordered: each includes the ones before it
(:data:`Viewer`, :data:`Analyst`, :data:`Director`, :data:`Admin`). A study that belongs
to a group is visible only to the group's members (and admins); to anyone else it does
not exist (404: :func:`get_study`, :func:`get_analysis`).

Uploads are written to a private temporary folder under their own names
(:func:`uploads`), so that the readers see files and their errors name the file the user
sent, not the folder.
"""

import functools
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, HTTPException, Request, UploadFile, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store import ROLES, Analysis, Store, Study, User, token_user
from cytosafe.web.compute import ComputePool
from cytosafe.web.jobs import JobRunner
from cytosafe.web.settings import Settings
from cytosafe.web.tables import EncodedTables

__all__ = [
    "Admin",
    "Analyst",
    "Compute",
    "Director",
    "Jobs",
    "ServerSettings",
    "StoreDep",
    "Tables",
    "TokenCache",
    "Tokens",
    "Uploads",
    "Viewer",
    "bearer",
    "current_user",
    "get_analysis",
    "get_study",
    "not_found",
    "on_loop",
    "require_role",
    "strip_folder",
    "strip_folder_column",
    "uploads",
    "visible",
]

bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


# --- the server's state (app.state, set by create_app) ----------------------------------
# Async, so that resolving them never sends a read endpoint to the thread pool (on_loop).


async def _store(request: Request) -> Store:
    return request.app.state.store


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


async def _compute(request: Request) -> ComputePool:
    return request.app.state.compute


async def _tables(request: Request) -> EncodedTables:
    return request.app.state.tables


StoreDep = Annotated[Store, Depends(_store)]
ServerSettings = Annotated[Settings, Depends(_settings)]
Jobs = Annotated[JobRunner, Depends(_jobs)]
Compute = Annotated[ComputePool, Depends(_compute)]
Tables = Annotated[EncodedTables, Depends(_tables)]


# --- authentication and roles -----------------------------------------------------------


class TokenCache:
    """Who a token belongs to, remembered for ``seconds`` (0: not at all).

    The lookup was a third of the cost of a read. A sign-out through this server forgets
    the token at once (:meth:`forget`); a revocation or role change made elsewhere
    (another server process, the CLI) takes effect within ``seconds``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._known: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def user(self, store: Store, token: str) -> User | None:
        """The active user of ``token`` (None: unknown, expired or revoked)."""
        now = time.monotonic()
        hit = self._known.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = token_user(store, token)
        if user is not None and self.seconds > 0:
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[token] = (now + self.seconds, user)
        return user

    def forget(self, token: str | None) -> None:
        """Forget ``token`` (it was revoked here)."""
        with self._lock:
            self._known.pop(token, None)


async def _tokens(request: Request) -> TokenCache:
    return request.app.state.tokens


Tokens = Annotated[TokenCache, Depends(_tokens)]


def current_user(request: Request, token: str | None) -> User:
    """The user of the request's bearer token, or a 401 saying how to sign in."""
    state = request.app.state
    user = state.tokens.user(state.store, token) if token else None
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not signed in: send 'Authorization: Bearer <token>' (POST /api/token)"
            if not token
            else "the token is unknown, expired or revoked: sign in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def require_role(minimum: str):
    """A dependency giving the signed-in user when their role is ``minimum`` or higher
    (403 otherwise)."""
    rank = ROLES.index(minimum)

    # The token lookup (one indexed query) and the role check, on the event loop:
    # see on_loop.
    async def check(request: Request, token: Annotated[str | None, Depends(bearer)]) -> User:
        user = current_user(request, token)
        if ROLES.index(user.role) < rank:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"user '{user.username}' ({user.role}) may not do this; "
                f"needs role {minimum} or higher",
            )
        return user

    return check


Viewer = Annotated[User, Depends(require_role("viewer"))]
Analyst = Annotated[User, Depends(require_role("analyst"))]
Director = Annotated[User, Depends(require_role("study_director"))]
Admin = Annotated[User, Depends(require_role("admin"))]


def on_loop(fn):
    """Serve a short read endpoint on the event loop instead of the thread pool.

    Its work is a few indexed queries (well under a millisecond on SQLite or a nearby
    PostgreSQL) and no heavy computation. On the pool, each of those queries gave up
    the GIL and then queued for it behind the other threads (a convoy): under 50 clients
    a 2 ms read took hundreds.
    """

    @functools.wraps(fn)
    async def endpoint(*args, **kwargs):
        return fn(*args, **kwargs)

    return endpoint


# --- studies and analyses the user may see ----------------------------------------------


def not_found(what: str) -> HTTPException:
    """The 404 of something missing, or hidden from the user (the same answer)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def visible(user: User, study: Study) -> bool:
    """Whether ``user`` may see ``study``: an admin, a member of its group, or anyone
    when it has no group."""
    if user.role == "admin" or study.group_id is None:
        return True
    return any(g.id == study.group_id for g in user.groups)


def get_study(session: Session, user: User, code: str) -> Study:
    """The study ``code``, if ``user`` may see it (404 otherwise)."""
    study = session.scalar(select(Study).where(Study.code == code))
    if study is None or not visible(user, study):
        raise not_found(f"study '{code}'")
    return study


def get_analysis(session: Session, user: User, analysis_id: int) -> tuple[Analysis, Study]:
    """The analysis and its study, if ``user`` may see the study (404 otherwise)."""
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise not_found(f"analysis {analysis_id}")
    study = session.get(Study, analysis.study_id)
    if not visible(user, study):
        raise not_found(f"analysis {analysis_id}")
    return analysis, study


# --- uploads ----------------------------------------------------------------------------


def _safe_name(name: str | None, default: str) -> str:
    base = Path(name or default).name
    return re.sub(r"[^A-Za-z0-9._+-]", "_", base) or default


def strip_folder(text: Any, folder: Path | str) -> Any:
    """``text`` with ``folder`` removed from the file paths in it (other values as they are)."""
    if not isinstance(text, str):
        return text
    return text.replace(f"{folder}/", "").replace(str(folder), "")


def strip_folder_column(
    frame: pd.DataFrame, folder: Path | str, column: str = "source_file"
) -> pd.DataFrame:
    """``frame`` with ``folder`` removed from the file paths in ``column``."""
    if column in frame.columns:
        frame = frame.copy()
        frame[column] = frame[column].map(lambda text: strip_folder(text, folder))
    return frame


class Uploads:
    """Uploaded files written to a private temporary folder under their own names, so
    that the readers see files and their errors name the file the user sent."""

    def __init__(self, limit_bytes: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cytosafe-upload-"))
        self.limit = limit_bytes

    def save(self, upload: UploadFile, default: str = "upload") -> Path:
        """Write ``upload`` to the folder (413 when larger than the limit; an empty
        file is an :class:`~cytosafe.errors.InputError`)."""
        name = _safe_name(upload.filename, default)
        path = self.dir / name
        n = 1
        while path.exists():
            n += 1
            path = self.dir / f"{n}-{name}"
        size = 0
        with path.open("wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > self.limit:
                    raise HTTPException(
                        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                        f"{name}: larger than {self.limit // (1 << 20)} MB",
                    )
                out.write(chunk)
        if size == 0:
            raise InputError("the uploaded file is empty", file=name)
        return path

    def strip(self, text: Any) -> Any:
        """``text`` with the temporary folder removed from file paths."""
        return strip_folder(text, self.dir)

    def strip_column(self, frame: pd.DataFrame, column: str = "source_file") -> pd.DataFrame:
        """``frame`` with the temporary folder removed from the paths in ``column``."""
        return strip_folder_column(frame, self.dir, column)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def uploads(settings: Settings) -> Iterator[Uploads]:
    """A temporary upload folder, removed afterwards; an :class:`InputError` raised
    inside names the files without the folder."""
    up = Uploads(int(settings.max_upload_mb * (1 << 20)))
    try:
        yield up
    except InputError as exc:
        raise type(exc)(
            up.strip(exc.message),
            file=up.strip(exc.file),
            row=exc.row,
            well=exc.well,
            field=exc.field,
            expected=exc.expected,
        ) from None
    finally:
        up.close()
