"""Bounded load test of the REST API on loopback: N concurrent clients for T seconds.

A temporary SQLite store is filled with the SIMULATED example plates MSD-01 and MSD-02
(quantified) and served by uvicorn in a separate process. Each client (httpx, one
asyncio task each) loops until the time is up, choosing at random: read an analysis,
read the QC table as JSON, list the studies (reads), or grade a small batch of
observations (two patients of the example cohort, ``POST /api/grade``; 20% by default,
``--grade-share``).

Prints the requests per second, p50/p99 latency for reads and for grading, and the
errors (non-2xx answers and exceptions). Target (issue 6): no errors, p99 of reads under
200 ms on the 2-core machine.

    python benchmarks/bench_api.py [--clients 50] [--seconds 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MSD = ROOT / "examples" / "cra-study" / "msd"
OBSERVATIONS = ROOT / "examples" / "crs-cohort" / "observations.csv"
PASSWORD = "benchmark password"


def _prepare(database: str) -> int:
    """Fill the store; returns the id of the quantification analysis."""
    from cytosafe.report import render_qc_report
    from cytosafe.store import (
        Store,
        complete_analysis,
        create_study,
        create_user,
        import_analysis,
        import_measurements,
    )
    from cytosafe.workflows import (
        quantification_settings,
        quantification_tables,
        run_quantification,
    )

    store = Store(database)
    try:
        create_user(store, "bench", role="analyst", password=PASSWORD)
        create_study(store, "BENCH-001", user="bench", title="API benchmark")
        samples = pd.read_csv(MSD / "samples.csv", dtype=str, keep_default_na=False)
        with tempfile.TemporaryDirectory() as tmp:
            sample_map = Path(tmp) / "samples.csv"
            samples[samples["plate_id"].isin(["MSD-01", "MSD-02"])].to_csv(sample_map, index=False)
            result = run_quantification(
                [MSD / "plate_MSD-01.csv", MSD / "plate_MSD-02.csv"],
                sample_map=sample_map,
                study_id="BENCH-001",
            )
        import_measurements(store, result.measurements, study="BENCH-001", user="bench")
        # Stored as the API's background job stores it: queued, then completed.
        analysis = import_analysis(
            store,
            "quantification",
            {},
            study="BENCH-001",
            user="bench",
            settings={"command": "quantify"},
            status="queued",
        )
        complete_analysis(
            store,
            analysis.id,
            quantification_tables(result),
            user="bench",
            report=render_qc_report(result),
            settings=quantification_settings(result, study_id="BENCH-001"),
        )
        return analysis.id
    finally:
        store.close()


def _serve(database: str, port: int) -> None:
    import logging

    import uvicorn

    from cytosafe.store import Store
    from cytosafe.web import create_app

    logging.getLogger("uvicorn.access").disabled = True
    uvicorn.run(create_app(Store(database)), host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch() -> bytes:
    obs = pd.read_csv(OBSERVATIONS, dtype=str, keep_default_na=False)
    two = obs["patient_id"].drop_duplicates().head(2)
    return obs[obs["patient_id"].isin(two)].to_csv(index=False).encode()


async def _load(
    base: str, analysis_id: int, clients: int, seconds: float, seed: int, share: float
) -> dict:
    # aiohttp, not httpx, drives the load: the load generator shares the machine's two
    # cores with the server, and httpx spent more CPU per request than the server did,
    # so the measured latency was the client's own queue.
    import aiohttp

    async with aiohttp.ClientSession(base) as client:
        form = {"username": "bench", "password": PASSWORD}
        async with client.post("/api/token", data=form) as r:
            r.raise_for_status()
            headers = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    batch = _batch()
    reads = [
        f"/api/analyses/{analysis_id}",
        f"/api/analyses/{analysis_id}/tables/qc?format=json",
        "/api/studies",
    ]
    latencies: dict[str, list[float]] = {"read": [], "grade": []}
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def one(index: int, client) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.perf_counter() < deadline:
            grade = rng.random() < share
            start = time.perf_counter()
            try:
                if grade:
                    form = aiohttp.FormData()
                    form.add_field(
                        "file", batch, filename="observations.csv", content_type="text/csv"
                    )
                    request = client.post("/api/grade", data=form, headers=headers)
                else:
                    request = client.get(rng.choice(reads), headers=headers)
                async with request as r:
                    await r.read()
                    ok = 200 <= r.status < 300
                    if not ok:
                        errors.append(f"{r.status} {r.url.path}")
            except Exception as exc:  # an error to count, not to stop on
                ok = False
                errors.append(repr(exc))
            if ok:
                latencies["grade" if grade else "read"].append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:
        begun = time.perf_counter()
        await asyncio.gather(*(one(i, client) for i in range(clients)))
        elapsed = time.perf_counter() - begun
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * float(np.quantile(values, q)):7.1f} ms" if values else "      -"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--grade-share", type=float, default=0.2, help="Share of requests that grade (0-1)."
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 500 or not 0 < args.seconds <= 600:
        parser.error("--clients must be 1-500 and --seconds 0-600 (a bounded test)")
    if not 0 <= args.grade_share <= 1:
        parser.error("--grade-share must be between 0 and 1")

    import httpx

    with tempfile.TemporaryDirectory(prefix="cytosafe-bench-") as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        analysis_id = _prepare(database)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = multiprocessing.get_context("spawn").Process(target=_serve, args=(database, port))
        server.start()
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                print("the server did not start", file=sys.stderr)
                return 2
            out = asyncio.run(
                _load(base, analysis_id, args.clients, args.seconds, args.seed, args.grade_share)
            )
        finally:
            server.terminate()
            server.join(30)

    reads, grades = out["latencies"]["read"], out["latencies"]["grade"]
    total = len(reads) + len(grades) + len(out["errors"])
    print(f"{args.clients} clients for {out['elapsed']:.1f} s on {base}")
    print(f"requests  {total:7d}   throughput {total / out['elapsed']:8.1f} req/s")
    print(f"reads     {len(reads):7d}   p50 {_ms(reads, 0.5)}   p99 {_ms(reads, 0.99)}")
    print(f"grading   {len(grades):7d}   p50 {_ms(grades, 0.5)}   p99 {_ms(grades, 0.99)}")
    print(f"errors    {len(out['errors']):7d}")
    for line in sorted(set(out["errors"]))[:10]:
        print(f"  {line}")
    target = not out["errors"] and bool(reads) and float(np.quantile(reads, 0.99)) < 0.2
    print("target (no errors, p99 of reads < 200 ms):", "met" if target else "NOT met")
    return 0 if not out["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
