"""The server's helpers for load: the compute worker pool and the encoded-table cache."""

from __future__ import annotations

import asyncio
import os

import pytest

from cytosafe.errors import InputError
from cytosafe.web.compute import NICENESS, ComputePool
from cytosafe.web.tables import EncodedTables


def _fail(path: str) -> None:
    raise InputError("a time is not a number", file=path, row=7, field="time")


def _niceness() -> int:
    return os.nice(0)


@pytest.fixture(scope="module")
def pool():
    pool = ComputePool(1)
    yield pool
    pool.shutdown()


def test_an_input_error_in_a_worker_keeps_where_it_is(pool):
    with pytest.raises(InputError) as caught:
        pool.call(_fail, "observations.csv")
    assert (caught.value.file, caught.value.row, caught.value.field) == (
        "observations.csv",
        7,
        "time",
    )
    assert str(caught.value) == "observations.csv, row 7, field 'time': a time is not a number"


def test_workers_run_below_the_server_priority(pool):
    assert pool.call(_niceness) == os.nice(0) + NICENESS


def test_run_awaits_a_worker_from_the_event_loop(pool):
    assert asyncio.run(pool.run(divmod, 17, 5)) == (3, 2)


def test_no_workers_runs_in_the_calling_process():
    inline = ComputePool(0)
    assert inline.call(os.getpid) == os.getpid()
    assert asyncio.run(inline.run(divmod, 9, 4)) == (2, 1)
    with pytest.raises(InputError):
        inline.call(_fail, "x.csv")
    with pytest.raises(ValueError):
        ComputePool(-1)


def test_encoded_tables_forget_the_least_recently_used_first():
    cache = EncodedTables(max_bytes=40)
    cache.put("a", "json", b"x" * 10)
    cache.put("b", "json", b"y" * 10)
    cache.put("c", "csv", b"z" * 10)
    assert cache.get("a", "json") == b"x" * 10  # a is now the most recent
    cache.put("d", "json", b"w" * 10)  # 40 bytes: all fit
    cache.put("e", "json", b"v" * 5)  # 45 bytes: b, the least recently used, goes
    assert cache.get("b", "json") is None
    assert cache.get("a", "json") is not None
    assert cache.get("a", "csv") is None  # the format is part of the key
    cache.put("big", "json", b"!" * 11)  # over a quarter of the budget: not kept
    assert cache.get("big", "json") is None
