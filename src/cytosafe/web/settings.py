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
    max_request_mb:
        Largest request body (all files of an upload together); a larger one is refused
        with a 413 while it arrives (:class:`~cytosafe.web.upload_limits.BodyLimit`).
    max_receiving_mb:
        The most request-body bytes the server receives at once, all requests together;
        past it an upload is refused with a 413 and ``Retry-After``.
    sign_in_account_attempts, sign_in_address_failures, sign_in_window_minutes:
        Sign-in throttling (:class:`~cytosafe.web.throttle.SignInThrottle`): attempts
        per user name, and failed attempts per client address, within a moving window of
        that many minutes; past either, sign-in is locked (429) until the window moves on.
    """

    database: str | None = None
    workers: int = 2
    compute_workers: int = 1
    token_cache_seconds: float = 2.0
    token_hours: float = 12.0
    max_upload_mb: float = 200.0
    max_request_mb: float = 250.0
    max_receiving_mb: float = 1024.0
    sign_in_account_attempts: int = 5
    sign_in_address_failures: int = 20
    sign_in_window_minutes: int = 15
