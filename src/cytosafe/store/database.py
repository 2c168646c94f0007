"""Opening the store: which database, its engine, its sessions, its migrations.

The database is, in order: the ``url`` argument, the ``CYTOSAFE_DATABASE_URL``
environment variable, or an SQLite file ``cytosafe.sqlite3`` in the user's data
directory (``platformdirs.user_data_path("cytosafe")``, e.g.
``~/.local/share/cytosafe`` on Linux): zero setup for one scientist, PostgreSQL
(``postgresql+psycopg://user@host/db``) for a lab server. A plain file path means SQLite.

Opening upgrades the schema to the newest Alembic revision shipped in
``cytosafe/store/migrations`` (an empty database gets every table). On SQLite, write
transactions begin ``IMMEDIATE`` (one writer at a time, others wait up to 30 s) and
reads ``DEFERRED`` in WAL mode, so readers never block the writer; foreign keys are on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from cytosafe.errors import InputError
from cytosafe.store.audit import HEADS_FILE, record_baseline
from cytosafe.store.audit import install as install_audit

__all__ = [
    "AUDIT_HEADS_ENV",
    "DATABASE_URL_ENV",
    "Store",
    "default_url",
    "open_store",
    "resolve_url",
]

DATABASE_URL_ENV = "CYTOSAFE_DATABASE_URL"
#: A file each sign-off appends the audit chain's head to (outside the database).
AUDIT_HEADS_ENV = "CYTOSAFE_AUDIT_HEADS"
#: The first revision whose audit entries fingerprint the data (see :meth:`Store.upgrade`).
FINGERPRINTED_REVISION = "0005"
MIGRATIONS = Path(__file__).with_name("migrations")


class StoreSession(Session):
    """A session whose commits write the queued audit entries (see :mod:`.audit`)."""


install_audit(StoreSession)


def default_url() -> str:
    """``CYTOSAFE_DATABASE_URL``, else the SQLite file in the user's data directory."""
    env = os.environ.get(DATABASE_URL_ENV, "").strip()
    if env:
        return env
    import platformdirs

    return f"sqlite:///{platformdirs.user_data_path('cytosafe') / 'cytosafe.sqlite3'}"


def resolve_url(url: str | URL | Path | None = None) -> URL:
    """The database URL to use (see the module docstring), checked.

    Raises
    ------
    InputError
        For a URL that is not one, or names a database other than SQLite or PostgreSQL.
    """
    if url is None:
        url = default_url()
    if isinstance(url, Path) or (isinstance(url, str) and "://" not in url):
        url = f"sqlite:///{Path(url).expanduser()}"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise InputError(
            f"'{url}' is not a database URL",
            field="database URL",
            expected="sqlite:///path/file.sqlite3 or postgresql+psycopg://user@host/db",
        ) from None
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    elif backend != "sqlite" and backend != "postgresql":
        raise InputError(
            f"database '{backend}' is not supported",
            field="database URL",
            expected="sqlite:///... or postgresql+psycopg://...",
        )
    return parsed


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    on_disk = bool(url.database) and url.database != ":memory:"
    if on_disk:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # A file's pool is as large as a server's threads use at once: kept SQLite
    # connections are cheap, and each new one repeats the PRAGMAs below.
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": 30, "check_same_thread": False},
        **({"pool_size": 20, "max_overflow": 20} if on_disk else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Store:
    """A CytoSafe store: one database, upgraded to the current schema on open.

    Parameters
    ----------
    url:
        Database URL or SQLite file path (default: see :func:`default_url`).
    upgrade:
        Run the Alembic migrations up to the newest revision (default True).
    echo:
        Log every SQL statement (debugging).
    heads_file:
        A file each sign-off appends the audit chain's head to, one JSON line (default:
        ``$CYTOSAFE_AUDIT_HEADS``; none when unset). Kept outside the database (another
        disk, a write-once share), it anchors the chain against the truncation of its
        tail: ``cytosafe audit verify --head FILE`` checks every head in it.

    Examples
    --------
    >>> store = Store("sqlite:///study.sqlite3")  # doctest: +SKIP
    >>> with store.session() as session:  # one transaction: all or nothing
    ...     ...
    """

    def __init__(
        self,
        url: str | URL | Path | None = None,
        *,
        upgrade: bool = True,
        echo: bool = False,
        heads_file: str | Path | None = None,
    ):
        self.url = resolve_url(url)
        if heads_file is None:
            heads_file = os.environ.get(AUDIT_HEADS_ENV, "").strip() or None
        self.heads_file = None if heads_file is None else Path(heads_file).expanduser()
        info = {} if self.heads_file is None else {HEADS_FILE: str(self.heads_file)}
        try:
            if self.url.get_backend_name() == "sqlite":
                self.engine = _sqlite_engine(self.url, echo)
            else:
                self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True)
        except NoSuchModuleError as exc:  # pragma: no cover - a broken installation
            raise InputError(str(exc), field="database URL") from None
        self._writer = sessionmaker(
            self.engine, class_=StoreSession, expire_on_commit=False, info=info
        )
        self._reader = sessionmaker(
            self.engine.execution_options(sqlite_begin="DEFERRED"),
            class_=StoreSession,
            expire_on_commit=False,
        )
        if upgrade:
            self.upgrade()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def alembic_config(self):
        """The Alembic configuration of this store (``script_location`` in the package)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema up to ``revision``.

        A store made before the audit trail fingerprinted the data (revision 0004 or
        older) gets, once it reaches 0005, one audited ``baseline`` entry (attributed to
        ``cytosafe``) recording the fingerprint of every object it holds: later changes
        made behind the store's back are then found by ``cytosafe audit verify``, while
        the baseline itself vouches for the data as the upgrade found them.
        """
        before = self.revision()
        self._migrate("upgrade", revision)
        after = self.revision()
        if before is not None and before < FINGERPRINTED_REVISION <= (after or ""):
            with self.session() as session:
                record_baseline(
                    session, f"schema upgrade {before} -> {after}: data fingerprinted as found"
                )

    def downgrade(self, revision: str = "base") -> None:
        """Migrate the schema down to ``revision`` (``"base"``: no tables left)."""
        self._migrate("downgrade", revision)

    def _migrate(self, direction: str, revision: str) -> None:
        from alembic import command
        from alembic.util.exc import CommandError

        config = self.alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            try:
                getattr(command, direction)(config, revision)
            except CommandError as exc:
                raise InputError(
                    f"cannot migrate the database: {exc}",
                    field="database URL",
                    expected="a CytoSafe database of this or an older version",
                ) from None

    def revision(self) -> str | None:
        """The Alembic revision the database is at (None: no CytoSafe schema)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed (with its audit entries) when the block ends,
        rolled back entirely when it raises."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (on SQLite it does not take the write lock)."""
        with self._reader() as session:  # closing ends the transaction; objects stay loaded
            yield session

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str | URL | Path | None = None) -> Store:
    """Open (and upgrade) the store at ``url``; see :class:`Store`."""
    return Store(url)
