"""``cytosafe serve``: the web app on a study store.

FastAPI, uvicorn and the store are imported on first use so that ``cytosafe --help``
stays fast.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli.store import DatabaseOption

__all__ = ["find_examples", "serve_command"]


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
    create_user(
        store,
        "admin",
        role="admin",
        password=password,
        display_name="Administrator",
        must_change_password=True,  # printed on a console: the admin chooses their own
    )
    return password


def find_examples() -> Path | None:
    """The shipped ``examples`` folder of a source checkout (next to ``src``), else the
    one in the working directory; None when neither holds the example study (an
    installed wheel ships no examples)."""
    import cytosafe

    for root in (Path(cytosafe.__file__).resolve().parents[2], Path.cwd()):
        folder = root / "examples"
        if (folder / "cra-study" / "msd" / "samples.csv").is_file() and (
            folder / "crs-cohort" / "observations.csv"
        ).is_file():
            return folder
    return None


def _store_is_empty(store) -> bool:
    from sqlalchemy import select

    from cytosafe.store import Study

    with store.reader() as session:
        return session.scalar(select(Study.id).limit(1)) is None


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database: DatabaseOption = None,
    examples: Annotated[
        bool,
        typer.Option(help="Load the SIMULATED example study and cohort when the store is empty."),
    ] = True,
) -> None:
    """Start the CytoSafe web app and REST API (OpenAPI documentation at /docs).

    On a store where nobody can sign in yet, an ``admin`` user is created and its
    password printed once. On a store without studies, the SIMULATED example study and
    cohort of a source checkout are loaded (skipped, with a note, when not found).
    """
    import uvicorn

    from cytosafe.store import Store
    from cytosafe.web import create_app
    from cytosafe.web.services import load_examples

    store = Store(database)
    password = _first_admin(store)
    if password is not None:
        typer.echo(
            f"created user 'admin' with password {password} (shown once; you will be "
            "asked to choose your own at the first sign-in)"
        )
    app = create_app(store)
    if examples and _store_is_empty(store):
        folder = find_examples()
        if folder is None:
            typer.echo("no example data found (installed package): starting with an empty store")
        else:
            for line in load_examples(app, folder):
                typer.echo(line)
    typer.echo(f"CytoSafe on http://{host}:{port} (API documentation: http://{host}:{port}/docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        store.close()
