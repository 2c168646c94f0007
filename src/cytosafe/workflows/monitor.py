"""The monitoring workflow: watch a source, process what is new, send the alerts out.

**Predictions and alerts support a clinician's judgement and do not replace it.**

Sources:

* :class:`FolderSource` - a folder of observation files (``.csv``, ``.xlsx``: ``patient_id,
  time, item, value, unit``; FHIR R4 Bundles ``.json``, laboratory Observations
  included). A file is read when it is new or its content changed: the ledger remembers
  each path with the SHA-256 of what was read (and can be kept in a file, so a restarted
  monitor reads nothing twice). A changed file is read as it now stands
  (:meth:`cytosafe.clinical.monitor.Monitor.process`).
* :class:`FHIRServerSource` - a FHIR R4 server's REST endpoint, polled with
  ``_lastUpdated=ge<last seen>`` for Observation and MedicationAdministration (the
  search's ``next`` links followed); the last ``meta.lastUpdated`` seen is remembered,
  with the resources (id and ``meta.versionId``) stamped with that instant, so that one
  stamped with the same instant after the poll is read and those already read are not
  read twice (``gt`` would miss it: several resources can carry the same
  ``meta.lastUpdated``; the ``ge``/``gt`` prefixes of a date search:
  https://hl7.org/fhir/R4/search.html#date). A corrected resource's earlier rows are
  marked superseded in the store (:func:`cytosafe.store.monitor.supersede_observations`).

Each batch goes to :class:`~cytosafe.clinical.monitor.Monitor`; its alerts go to the
store (``monitor_alerts`` of the clinical study, audited, with the observations read:
:mod:`cytosafe.store.monitor`), to an output stream as JSON lines, and optionally to a
webhook (:func:`post_alerts`: POST JSON, a timeout, retries with exponential backoff).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from cytosafe.clinical.monitor import ALERT_DISCLAIMER, Alert, Monitor, Update
from cytosafe.errors import InputError

__all__ = [
    "FHIRServerSource",
    "FolderSource",
    "MonitorRun",
    "post_alerts",
    "read_observation_file",
    "run_monitor",
]

_SUFFIXES = (".csv", ".xlsx", ".json")


def _raw_from_observations(table: pd.DataFrame) -> pd.DataFrame:
    """Validated rows written back as raw rows that validate to the same values: numbers
    in their canonical unit (exact), categories and texts as written; times UTC."""
    numeric = table["unit"].astype(str) != ""
    value = (
        table["value"].astype(str).where(~numeric, table["value_num"].map(lambda v: repr(float(v))))
    )
    times = pd.to_datetime(table["time"]).dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    return pd.DataFrame({
        "patient_id": table["patient_id"].astype(str), "time": times,
        "item": table["item"].astype(str), "value": value, "unit": table["unit"].astype(str),
        "source_file": table["source_file"].astype(str), "source_row": table["source_row"],
    })  # fmt: skip


def read_observation_file(path: Path, *, product: str | None = None) -> pd.DataFrame:
    """The raw rows of one observation file (a table, or a FHIR Bundle with its labs)."""
    if path.suffix.lower() == ".json":
        from cytosafe.workflows.grading import _read_fhir

        return _raw_from_observations(_read_fhir(path, product, "raise").table)
    try:
        if path.suffix.lower() == ".xlsx":
            frame = pd.read_excel(path, dtype=str).fillna("")
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the table: {exc}", file=str(path)) from None
    frame["source_file"] = str(path)
    frame["source_row"] = range(2, len(frame) + 2)
    return frame


@dataclass
class FolderSource:
    """A folder of observation files; :meth:`poll` gives the new and changed ones.

    ``ledger``: path -> SHA-256 of what was read; ``ledger_file`` keeps it across runs.
    """

    folder: Path
    product: str | None = None
    ledger_file: Path | None = None
    ledger: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise InputError("not a folder", file=str(self.folder), expected="a folder to watch")
        if self.ledger_file is not None and Path(self.ledger_file).is_file():
            try:
                self.ledger = json.loads(Path(self.ledger_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"cannot read the ledger: {exc}", file=str(self.ledger_file)
                ) from None

    def poll(self) -> dict[str, pd.DataFrame]:
        """The files new or changed since the last poll, read (the ledger not yet updated:
        :meth:`commit` does it once the batch is processed)."""
        out: dict[str, pd.DataFrame] = {}
        self._pending: dict[str, str] = {}
        self.errors: list[tuple[str, str]] = []
        for path in sorted(self.folder.iterdir()):
            if path.suffix.lower() not in _SUFFIXES or not path.is_file():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if self.ledger.get(str(path)) == digest:
                continue
            self._pending[str(path)] = digest
            try:
                out[str(path)] = read_observation_file(path, product=self.product)
            except InputError as exc:
                self.errors.append((str(path), str(exc)))
        return out

    def commit(self) -> None:
        """Remember what the last poll read (after it was processed and stored)."""
        self.ledger.update(getattr(self, "_pending", {}))
        self._pending = {}
        if self.ledger_file is not None:
            Path(self.ledger_file).write_text(
                json.dumps(self.ledger, indent=1, sort_keys=True), encoding="utf-8"
            )

    def replay(self) -> dict[str, pd.DataFrame]:
        """The files of the ledger as they now are (to rebuild a restarted monitor's
        state; a file changed since is then read as new by the next poll)."""
        out = {}
        for name, digest in self.ledger.items():
            path = Path(name)
            if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                out[name] = read_observation_file(path, product=self.product)
        return out


@dataclass
class FHIRServerSource:
    """A FHIR R4 server polled with ``_lastUpdated=ge<last seen>``, de-duplicated by
    resource id and ``meta.versionId`` (see the module docstring)."""

    base_url: str
    product: str | None = None
    last_updated: str | None = None
    timeout: float = 10.0
    resources: tuple[str, ...] = ("Observation", "MedicationAdministration")
    client: Any = None
    _read: set = field(default_factory=set)
    #: resources stamped with ``last_updated``: key -> version read (None: not yet known)
    _boundary: dict = field(default_factory=dict)

    def _client(self):
        import httpx

        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout)
        return self.client

    def _search(self, kind: str) -> Iterator[dict]:
        url = f"{self.base_url.rstrip('/')}/{kind}"
        params: dict[str, str] | None = {"_count": "500", "_sort": "_lastUpdated"}
        if self.last_updated:
            params["_lastUpdated"] = f"ge{self.last_updated}"
        import httpx

        while url:
            try:
                r = self._client().get(url, params=params)
            except httpx.HTTPError as exc:
                raise InputError(
                    f"cannot reach the FHIR server: {exc}", file=url,
                    expected="a FHIR R4 server answering searches",
                ) from None  # fmt: skip
            if r.status_code != 200:
                raise InputError(
                    f"the FHIR server answered {r.status_code}", file=str(r.url),
                    expected="200 and a searchset Bundle",
                )  # fmt: skip
            bundle = r.json()
            yield from bundle.get("entry") or []
            url = next(
                (ln.get("url") for ln in bundle.get("link") or [] if ln.get("relation") == "next"),
                None,
            )
            params = None  # the next link carries them

    def poll(self) -> dict[str, pd.DataFrame]:
        """The resources updated since the last poll, as raw rows, one source per resource
        (``<base>/<type>/<id>``): an updated resource replaces what its earlier version said,
        and one updated to ``entered-in-error`` (or to anything not read) takes its rows
        back, so the patient is reprocessed from that time."""
        entries = [e for kind in self.resources for e in self._search(kind)]
        entries = [e for e in entries if isinstance(e.get("resource"), dict)]
        base = self.base_url.rstrip("/")
        # ``ge`` returns again what was stamped with the last instant seen: skip the
        # versions already read (and a resource listed twice across pages)
        fresh, keys, versions, done = [], [], [], set()
        for n, e in enumerate(entries, start=1):
            res = e["resource"]
            key = f"{base}/{res.get('resourceType')}/{res.get('id') or f'entry-{n}'}"
            version = _version(res)
            if self._boundary.get(key) == version or (key, version) in done:
                continue
            done.add((key, version))
            fresh.append(e)
            keys.append(key)
            versions.append(version)
        entries = fresh
        self._newest, self._pending = None, {}
        if not entries:
            return {}
        seen = [_stamp(e["resource"]) for e in entries]
        newest = max(seen)
        self._pending = {k: v for k, v, t in zip(keys, versions, seen, strict=True) if t == newest}
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": e["resource"]} for e in entries]}  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "poll.json"
            path.write_text(json.dumps(bundle), encoding="utf-8")
            try:
                rows = read_observation_file(path, product=self.product)
            except InputError as exc:
                if "holds no Observation" not in str(exc):
                    raise
                rows = pd.DataFrame(columns=["patient_id", "time", "item", "value", "unit",
                                             "source_file", "source_row"])  # fmt: skip
        # the entry number (from 1) names the resource each row came from
        rows["source_file"] = [keys[int(n) - 1] for n in rows["source_row"]]
        out = {key: part for key, part in rows.groupby("source_file", sort=False)}
        for key in keys:
            if key not in out and key in self._read:
                out[key] = rows.iloc[:0]  # read before, nothing now: its rows are taken back
        self._read.update(out.keys())
        self._newest = newest
        return out

    def commit(self) -> None:
        """Remember the newest ``meta.lastUpdated`` of what the last poll read, and the
        resources (and versions) stamped with it."""
        newest = getattr(self, "_newest", None)
        if newest is None or newest == pd.Timestamp.min.tz_localize("UTC"):
            return
        stamp = _iso_utc(newest)
        if self.last_updated and _stamp({"meta": {"lastUpdated": self.last_updated}}) == newest:
            self._boundary.update(self._pending)  # the same instant: add to those read
        else:
            self._boundary = dict(self._pending)
        self.last_updated = stamp
        self._newest, self._pending = None, {}


def _stamp(resource: dict) -> pd.Timestamp:
    """A resource's ``meta.lastUpdated`` (UTC; the earliest time when absent)."""
    text = str((resource.get("meta") or {}).get("lastUpdated") or "")
    if not text:
        return pd.Timestamp.min.tz_localize("UTC")
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _iso_utc(t: pd.Timestamp) -> str:
    """``2024-05-01T12:01:00Z`` (fractions of a second kept when there are any)."""
    text = t.tz_convert("UTC").tz_localize(None).isoformat()
    return text + "Z"


def _version(resource: dict) -> str:
    """What tells two versions of a resource apart: ``meta.versionId``, else (a server
    that does not version) ``meta.lastUpdated`` and a digest of the content."""
    meta = resource.get("meta") or {}
    if meta.get("versionId") not in (None, ""):
        return f"v{meta['versionId']}"
    body = json.dumps(resource, sort_keys=True, default=str).encode("utf-8")
    return f"{meta.get('lastUpdated')}#{hashlib.sha256(body).hexdigest()[:16]}"


def post_alerts(
    url: str,
    alerts: list[dict[str, Any]],
    *,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST ``{"alerts": [...], "note": ...}`` to ``url``; True once a 2xx answers.

    A connection error, a timeout or a 5xx (or 429) is retried ``retries`` times, waiting
    ``backoff x 2^attempt`` seconds between attempts; a 4xx other than 429 is not retried
    (the receiver refused the content). Returns False when every attempt failed: the
    monitor goes on (the alerts are in the store and on the output stream).
    """
    import httpx

    body = {"alerts": alerts, "note": ALERT_DISCLAIMER}
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        for attempt in range(retries + 1):
            try:
                r = client.post(url, json=body, timeout=timeout)
                if 200 <= r.status_code < 300:
                    return True
                if r.status_code < 500 and r.status_code != 429:
                    return False
            except httpx.HTTPError:
                pass
            if attempt < retries:
                sleep(backoff * 2**attempt)
        return False
    finally:
        if own:
            client.close()


@dataclass
class MonitorRun:
    """One monitoring session: the monitor, where alerts go, and what was done."""

    monitor: Monitor
    source: Any
    store: Any = None
    study: str | None = None
    user: str | None = None
    webhook: str | None = None
    webhook_options: dict[str, Any] = field(default_factory=dict)
    out: TextIO | None = None
    batches: int = 0
    alerts: int = 0
    webhook_failures: int = 0
    errors: int = 0

    def step(self) -> Update | None:
        """Poll the source once; process, store and send what is new."""
        batch = self.source.poll()
        for name, why in getattr(self.source, "errors", []):
            self._error(name, why)
        if not batch:
            self.source.commit()  # unreadable files are not read again until they change
            return None
        try:
            update = self.monitor.process(batch)
        except InputError:
            # one bad file must not stop the ward: each file alone, the bad ones reported
            # (and not read again until they change)
            parts = []
            for name, rows in batch.items():
                try:
                    parts.append(self.monitor.process({name: rows}))
                except InputError as exc:
                    self._error(name, str(exc))
            if not parts:
                self.source.commit()
                return None
            update = _combine(parts)
        alerts = [a.as_dict() for a in update.alerts]
        if self.store is not None:
            self._store(update.added, list(batch), update.alerts, update.removed)
        self.source.commit()  # only once stored: a crash before re-reads the batch
        self.batches += 1
        self.alerts += len(alerts)
        if self.out is not None:
            for a in alerts:
                self.out.write(json.dumps({"type": "alert", **a}, default=str) + "\n")
            self.out.write(json.dumps({
                "type": "batch", "sources": list(batch), "patients": sorted(update.revised_from),
                "late": update.late, "alerts": len(alerts), "note": ALERT_DISCLAIMER,
            }) + "\n")  # fmt: skip
            self.out.flush()
        if (
            self.webhook
            and alerts
            and not post_alerts(self.webhook, alerts, **self.webhook_options)
        ):
            self.webhook_failures += 1
            print(f"webhook {self.webhook}: {len(alerts)} alert(s) not delivered", file=sys.stderr)
        return update

    def replay(self) -> int:
        """Rebuild the state from what the ledger says was read (a restart): alerts are not
        raised again, and a file that was bad stays skipped. Returns the files replayed."""
        done = 0
        replay = getattr(self.source, "replay", None)
        for name, rows in (replay() if replay else {}).items():
            try:
                self.monitor.process({name: rows})
                done += 1
            except InputError:
                pass  # reported when it was first read
        return done

    def _error(self, source: str, why: str) -> None:
        self.errors += 1
        line = {"type": "error", "source": source, "error": why}
        if self.out is not None:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()
        print(f"{source}: {why} (not read; fix the file and it is read again)", file=sys.stderr)

    def _store(
        self,
        rows: pd.DataFrame,
        sources: list[str],
        alerts: list[Alert],
        removed: pd.DataFrame | None = None,
    ) -> None:
        """The rows read for the first time, those a corrected source no longer holds
        (marked superseded, audited, not deleted) and the alerts, in one transaction."""
        from cytosafe.store import import_observations
        from cytosafe.store.monitor import record_alerts, supersede_observations

        with self.store.session() as session:
            if removed is not None and len(removed):
                supersede_observations(session, removed, study=self.study, user=self.user)
            if len(rows):
                import_observations(
                    session, rows, study=self.study, user=self.user, source=", ".join(sources)
                )
            if alerts:
                record_alerts(
                    session, [a.as_dict() for a in alerts], study=self.study, user=self.user
                )


def _combine(parts: list[Update]) -> Update:
    """One update of several processed one after the other."""
    revised: dict[str, pd.Timestamp] = {}
    timeline = None
    for u in parts:
        timeline = u.merge_into(timeline)
        for p, t in u.revised_from.items():
            revised[p] = min(t, revised.get(p, t))
    frames = [u.predictions for u in parts if len(u.predictions)]
    return Update(
        timeline=timeline.loc[timeline["patient_id"].isin(list(revised))].reset_index(drop=True),
        revised_from=revised,
        late=sorted({p for u in parts for p in u.late}),
        predictions=pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        alerts=[a for u in parts for a in u.alerts],
        quarantine=pd.concat([u.quarantine for u in parts], ignore_index=True),
        added=pd.concat([u.added for u in parts], ignore_index=True),
    )


def run_monitor(
    run: MonitorRun,
    *,
    interval: float = 5.0,
    once: bool = False,
    max_batches: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> MonitorRun:
    """Poll ``run.source`` every ``interval`` seconds (once with ``once``) until stopped
    (Ctrl-C) or ``max_batches`` batches were processed."""
    while True:
        try:
            run.step()
        except InputError as exc:  # the source could not be read this time: try again later
            run._error(str(getattr(run.source, "base_url", "source")), str(exc))
        if once or (max_batches is not None and run.batches >= max_batches):
            return run
        sleep(interval)
