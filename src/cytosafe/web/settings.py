"""Settings of the web app and REST API (:func:`cytosafe.web.create_app`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Settings of the API.

    Attributes
    ----------
    database:
        Database URL or SQLite file used when ``create_app`` is given no store.
    workers:
        Threads running background analyses.
    compute_workers:
        Processes grading uploaded observations (:class:`~cytosafe.web.compute.ComputePool`;
        0 grades in the request's own thread).
    token_cache_seconds:
        How long the server remembers whose a token is before asking the store again
        (0: on every request). A revocation made outside this server takes effect
        within this time.
    token_hours:
        Lifetime of an API token.
    max_upload_mb:
        Largest accepted upload, per file.
    """

    database: str | None = None
    workers: int = 2
    compute_workers: int = 1
    token_cache_seconds: float = 2.0
    token_hours: float = 12.0
    max_upload_mb: float = 200.0
