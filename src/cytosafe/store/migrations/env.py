"""Alembic environment of the CytoSafe store.

Run by :meth:`cytosafe.store.Store.upgrade` with an open connection in
``config.attributes["connection"]``; ``alembic -x url=...`` works too for operators.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from cytosafe.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two servers opening one fresh database must not both create its tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(1129923662)"))
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        from cytosafe.store.database import resolve_url

        url = resolve_url(None)
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
