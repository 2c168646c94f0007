"""Command-line function of the web face, for ``cli.py`` to register as ``cytosafe serve``.

A plain Typer-annotated function (no app here: ``cli.py`` is the one place commands are
wired); FastAPI, uvicorn and the store are imported on first use so that
``cytosafe --help`` stays fast.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

__all__ = ["serve_command"]


def _first_admin(store) -> str | None:
    """Create an ``admin`` user with a random password when the store has no user who
    can sign in; returns the password (shown once), else None."""
    from sqlalchemy import select

    from cytosafe.store import User, create_user

    with store.reader() as session:
        if session.scalar(select(User.id).where(User.password_hash.is_not(None)).limit(1)):
            return None
        taken = session.scalar(select(User.id).where(User.username == "admin")) is not None
    if taken:
        return None
    password = secrets.token_urlsafe(12)
    create_user(store, "admin", role="admin", password=password, display_name="Administrator")
    return password


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="Database URL or SQLite file (default: $CYTOSAFE_DATABASE_URL, else the "
            "SQLite store in the user data directory).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the CytoSafe REST API (OpenAPI documentation at /docs).

    On a store where nobody can sign in yet, an ``admin`` user is created and its
    password printed once.
    """
    import uvicorn

    from cytosafe.store import Store
    from cytosafe.web import create_app

    store = Store(database)
    password = _first_admin(store)
    if password is not None:
        typer.echo(f"created user 'admin' with password {password} (shown once; change it)")
    typer.echo(f"CytoSafe API on http://{host}:{port} (documentation: http://{host}:{port}/docs)")
    try:
        uvicorn.run(create_app(store), host=host, port=port, log_level="info")
    finally:
        store.close()
