"""Store test backends: a throwaway PostgreSQL 15 cluster and per-test databases.

``postgres_cluster`` starts one server for the whole test session: ``initdb`` into a
temporary directory, ``pg_ctl start`` on a free port with its unix socket in that
directory (no TCP listener), ``trust`` authentication, durability switched off for
speed; it is stopped and deleted at the end. PostgreSQL refuses to run as root, so when
the tests run as root (CI) the server runs as the ``postgres`` system user, or ``nobody``
when there is none. A missing or broken PostgreSQL fails the tests; it never skips them.

``store`` is parametrised over ``sqlite`` and ``postgresql``: each test gets a fresh,
migrated store (an SQLite file in ``tmp_path``, or a new schema of one shared database
on the cluster: a new database per test would copy ``template1`` each time).
:func:`empty_database_url` gives a really new, empty database (the migration tests).

Test modules import the fixtures: ``from store_backends import postgres_cluster, store``.
The cluster is cached at module level so that importing the fixture into several modules
still starts one server.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from cytosafe.store import Store
from live_server import free_port

PG_BIN = Path(os.environ.get("CYTOSAFE_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class Cluster:
    root: Path
    port: int
    superuser: str
    run_as: str | None
    _shared: bool = False

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql+psycopg://{self.superuser}@/{database}?host={self.root}&port={self.port}"
        )

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = list(args)
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)

    def start(self) -> None:
        data = self.root / "data"
        done = self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            self.superuser,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        done = self._run(
            str(PG_BIN / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )
        if done.returncode:
            log = (
                (self.root / "server.log").read_text(errors="replace")
                if (self.root / "server.log").exists()
                else ""
            )
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{log}")

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run(
                str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.root / "data")
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser on ``database``, outside a transaction."""
        import psycopg

        with psycopg.connect(
            host=str(self.root),
            port=self.port,
            user=self.superuser,
            dbname=database,
            autocommit=True,
        ) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A new, empty database (each one costs a copy of ``template1``: use sparingly)."""
        name = f"cytosafe_test_{next(_NUMBERS)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self) -> str:
        """A URL whose connections work in a new, empty schema of the shared test
        database (``search_path``): as isolated as a database for the store, and free."""
        if not self._shared:
            self.admin('CREATE DATABASE "cytosafe_tests"')
            self._shared = True
        name = f"test_{next(_NUMBERS)}"
        self.admin(f'CREATE SCHEMA "{name}"', "cytosafe_tests")
        return self.url("cytosafe_tests") + f"&options=-csearch_path%3D{name}"


_NUMBERS = itertools.count(1)
_CLUSTER: Cluster | None = None


def _server_user() -> str | None:
    """None: run as ourselves; else the unprivileged user to run the server as (root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and found neither a 'postgres' nor a 'nobody' user")


def get_cluster() -> Cluster:
    global _CLUSTER
    if _CLUSTER is None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 not found in {PG_BIN} (set CYTOSAFE_PG_BIN)")
        run_as = _server_user()
        root = Path(tempfile.mkdtemp(prefix="cytosafe-pg-"))
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = Cluster(root=root, port=free_port(), superuser="postgres", run_as=run_as)
        atexit.register(cluster.stop)  # also when the session is interrupted
        cluster.start()
        _CLUSTER = cluster
    return _CLUSTER


@pytest.fixture(scope="session")
def postgres_cluster():
    """The throwaway PostgreSQL 15 server of this test session."""
    global _CLUSTER
    yield get_cluster()
    if _CLUSTER is not None:  # several modules import this fixture: stop once
        _CLUSTER.stop()
        _CLUSTER = None


def new_store(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    return Store(get_cluster().create_schema())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The database under test."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_cluster")
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    """A fresh, migrated store on ``backend``."""
    s = new_store(backend, tmp_path)
    yield s
    s.close()


def empty_database_url(backend: str, tmp_path: Path) -> str:
    """A URL of an empty database (no tables) on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    return get_cluster().create_database()


ELISA = Path(__file__).resolve().parents[1] / "examples" / "cra-study" / "tidy" / "elisa.csv"
STUDY = "CRA-EX-001"


def quantified(plate: str = "ELISA-01"):
    """The example ELISA plate quantified, renamed to ``plate`` (a distinct plate)."""
    import pandas as pd

    import cytosafe

    table = pd.read_csv(ELISA)
    table["plate_id"] = plate
    return cytosafe.quantify(table)


def seeded(store: Store) -> Store:
    """``store`` with a study director ``ada``, an analyst ``bob``, a viewer ``vic``
    (created by ada) and the study CRA-EX-001."""
    from cytosafe.store import create_study, create_user

    # No passwords: argon2 is slow on purpose, and only the password test needs one.
    create_user(store, "ada", role="study_director")
    create_user(store, "bob", role="analyst", by="ada")
    create_user(store, "vic", role="viewer", by="ada")
    create_study(store, STUDY, user="ada", title="Example CRA")
    return store
