"""Template stores: an expensive initial store built once, copied fresh into each test.

Creating users (argon2id hashes), studies and stored quantifications costs seconds; a
test module whose every test starts from the same such store builds it once into a
template and gives each test its own copy, so that a test that signs, locks out or
tampers still starts from exactly the state the build left and changes nothing the next
test sees.

* SQLite: the template is a file; the build's store is closed and its write-ahead log
  checkpointed into the file (a copy of the file alone is then complete), and each test
  gets ``shutil.copyfile`` of it in its ``tmp_path``.
* PostgreSQL: the template is a database of the session's cluster; each test gets
  ``CREATE DATABASE ... TEMPLATE`` of it (a file copy on the server), dropped after the
  test.

The audit chain, the sequences and the guard triggers are copied with the data, so
``verify_audit`` sees in a copy the chain the build wrote.

Usage, in a test module::

    template = store_template(build)  # build(store) -> anything (ids, detached objects)

    @pytest.fixture
    def full(backend, tmp_path):
        with template.copy(backend, tmp_path) as (store, made):
            yield store, made

``build`` runs once per backend and test process (lazily, at the first test that needs
it); what it returns is shared by every copy, so it must be read-only: ids, or the
detached objects the store functions return (which the store functions only read).
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from cytosafe.store import Store
from store_backends import get_cluster

_NUMBERS = itertools.count(1)


def _checkpointed(path: Path) -> None:
    """Fold the write-ahead log of the closed SQLite store ``path`` into the file."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{path} is still open elsewhere: its log was not folded in")


class StoreTemplate:
    """A store built once per backend by ``build`` and copied fresh for each test."""

    def __init__(self, build: Callable[[Store], Any]):
        self.build = build
        self._built: dict[str, tuple[str, Any]] = {}  # backend -> (file or database, made)

    def _template(self, backend: str) -> tuple[str, Any]:
        key = backend if backend == "sqlite" else f"{backend}@{get_cluster().root}"
        if key not in self._built:  # (a new cluster, should one start, has no template)
            if backend == "sqlite":
                folder = Path(tempfile.mkdtemp(prefix="cytosafe-template-"))
                atexit.register(shutil.rmtree, folder, True)
                where = str(folder / "template.sqlite3")
                store = Store(f"sqlite:///{where}")
            else:
                cluster = get_cluster()
                where = f"cytosafe_template_{next(_NUMBERS)}"
                cluster.admin(f'CREATE DATABASE "{where}"')
                store = Store(cluster.url(where))
            try:
                made = self.build(store)
            finally:
                store.close()  # every connection released: the copy is complete
            if backend == "sqlite":
                _checkpointed(Path(where))
            self._built[key] = (where, made)
        return self._built[key]

    @contextmanager
    def copy(
        self, backend: str, tmp_path: Path, name: str = "store.sqlite3"
    ) -> Iterator[tuple[Store, Any]]:
        """A new store on ``backend`` holding what ``build`` made, and what it returned
        (SQLite: the file ``name`` in ``tmp_path``)."""
        where, made = self._template(backend)
        if backend == "sqlite":
            target = tmp_path / name
            shutil.copyfile(where, target)
            store = Store(f"sqlite:///{target}")
            try:
                yield store, made
            finally:
                store.close()
            return
        database = f"{where}_copy_{next(_NUMBERS)}"
        get_cluster().admin(f'CREATE DATABASE "{database}" TEMPLATE "{where}" STRATEGY FILE_COPY')
        store = Store(get_cluster().url(database))
        try:
            yield store, made
        finally:
            store.close()
            get_cluster().admin(f'DROP DATABASE "{database}" WITH (FORCE)')


def store_template(build: Callable[[Store], Any]) -> StoreTemplate:
    """A :class:`StoreTemplate` of ``build`` (one per test module and process)."""
    return StoreTemplate(build)
