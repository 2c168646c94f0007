"""The audit trail as people read it: filtered by study, user, action and dates, each
entry's object named and its details summarised (issue 15, item 2: "an audit-trail page,
group-scoped").

The entries are the ones :func:`cytosafe.store.audit_entries` lets the user read (an admin
all of them; anyone else those about the studies of their groups, their groups and
themselves), so the page and ``GET /api/audit`` show exactly the same entries.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cytosafe.errors import InputError
from cytosafe.store import Analysis, Group, Measurement, Plate, Store, Study, User, audit_entries
from cytosafe.store.audit import ACTIONS
from cytosafe.store.models import ApiToken
from cytosafe.web.deps import visible

__all__ = ["ACTIONS", "AuditFilter", "describe", "filtered_entries", "summarise"]

_HEX = re.compile(r"^[0-9a-f]{40,}$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")  # a time stamp, shown to the minute
_LONG = 80  # characters of one value shown in the summary


@dataclass(frozen=True)
class AuditFilter:
    """What to show: entries about ``study`` (its code: the study, its plates, analyses,
    measurements and observations), done by ``actor`` (user name), of ``action``, from
    ``since`` to ``until`` (dates, both included, UTC). Empty: no restriction."""

    study: str = ""
    actor: str = ""
    action: str = ""
    since: dt.date | None = None
    until: dt.date | None = None

    @classmethod
    def parse(
        cls, study: str = "", actor: str = "", action: str = "", since: str = "", until: str = ""
    ) -> AuditFilter:
        """A filter from query text; a bad action or date is an :class:`InputError`."""
        action = (action or "").strip()
        if action and action not in ACTIONS:
            raise InputError(
                f"unknown action '{action}'", field="action", expected=" | ".join(ACTIONS)
            )
        dates = []
        for name, text in (("since", since), ("until", until)):
            text = (text or "").strip()
            try:
                dates.append(dt.date.fromisoformat(text) if text else None)
            except ValueError:
                raise InputError(
                    f"'{text}' is not a date", field=name, expected="YYYY-MM-DD"
                ) from None
        if dates[0] and dates[1] and dates[0] > dates[1]:
            raise InputError("is after 'until'", field="since", expected="a date before 'until'")
        return cls(
            study=(study or "").strip(),
            actor=(actor or "").strip(),
            action=action,
            since=dates[0],
            until=dates[1],
        )


def _about_study(session, study: Study, entries: list[dict]) -> list[dict]:
    plates = set(session.scalars(select(Plate.id).where(Plate.study_id == study.id)))
    analyses = set(session.scalars(select(Analysis.id).where(Analysis.study_id == study.id)))
    wanted = sorted({int(e["object_id"]) for e in entries if e["object_type"] == "measurement"})
    measurements: set[int] = set()
    for start in range(0, len(wanted), 1000):
        measurements.update(
            session.scalars(
                select(Measurement.id).where(
                    Measurement.id.in_(wanted[start : start + 1000]),
                    Measurement.plate_id.in_(plates or {-1}),
                )
            )
        )
    ids = {
        "study": {study.id},
        "observations": {study.id},
        "plate": plates,
        "analysis": analyses,
        "measurement": measurements,
    }

    def about(entry: dict) -> bool:
        number = entry["object_id"]
        if number is None or not number.isdigit():
            return False
        return int(number) in ids.get(entry["object_type"], ())

    return [e for e in entries if about(e)]


def filtered_entries(
    store: Store,
    user: User,
    where: AuditFilter,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
) -> list[dict]:
    """The entries ``user`` may read that match ``where`` (and are about ``object_type``
    ``object_id`` when given), oldest first (as :func:`cytosafe.store.audit_entries`). A
    study the user may not see is unknown to them (an :class:`InputError`, the same as for
    a study that does not exist)."""
    entries = audit_entries(store, object_type=object_type, object_id=object_id, visible_to=user)
    if where.actor:
        entries = [e for e in entries if e["actor"] == where.actor]
    if where.action:
        entries = [e for e in entries if e["action"] == where.action]
    if where.since is not None:
        entries = [e for e in entries if e["at"][:10] >= where.since.isoformat()]
    if where.until is not None:
        entries = [e for e in entries if e["at"][:10] <= where.until.isoformat()]
    if where.study:
        with store.reader() as session:
            study = session.scalar(select(Study).where(Study.code == where.study))
            if study is None or not visible(session.get(User, user.id), study):
                raise InputError(f"unknown study '{where.study}'", field="study")
            entries = _about_study(session, study, entries)
    return entries


def describe(store: Store, entries: list[dict]) -> dict[tuple[str, str | None], str]:
    """A readable name of each entry's object (``study CRA-001``, ``plate MSD-01 of
    CRA-001``, ``user ada``), keyed by ``(object_type, object_id)``. Only the objects of
    ``entries`` are looked up (the entries the user may read)."""
    ids: dict[str, set[int]] = {}
    for e in entries:
        if e["object_id"] is not None and e["object_id"].isdigit():
            ids.setdefault(e["object_type"], set()).add(int(e["object_id"]))
    names: dict[tuple[str, str | None], str] = {}
    with store.reader() as session:

        def lookup(kind: str, query) -> dict[int, Any]:
            wanted = sorted(ids.get(kind, ()))
            return dict(session.execute(query.where(query.selected_columns[0].in_(wanted))).all())

        studies = lookup("study", select(Study.id, Study.code))
        studies.update(lookup("observations", select(Study.id, Study.code)))
        plates = {
            i: f"{code} of {study}"
            for i, (code, study) in {
                row[0]: (row[1], row[2])
                for row in session.execute(
                    select(Plate.id, Plate.code, Study.code)
                    .join(Study, Study.id == Plate.study_id)
                    .where(Plate.id.in_(sorted(ids.get("plate", ()))))
                )
            }.items()
        }
        analyses = {
            row[0]: f"{row[0]} ({row[1]}, {row[2]})"
            for row in session.execute(
                select(Analysis.id, Analysis.kind, Study.code)
                .join(Study, Study.id == Analysis.study_id)
                .where(Analysis.id.in_(sorted(ids.get("analysis", ()))))
            )
        }
        users = lookup("user", select(User.id, User.username))
        groups = lookup("group", select(Group.id, Group.name))
        tokens = {
            row[0]: f"{row[0]} of {row[1]}"
            for row in session.execute(
                select(ApiToken.id, User.username)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.id.in_(sorted(ids.get("api_token", ()))))
            )
        }
    known = {
        "study": studies,
        "observations": studies,
        "plate": plates,
        "analysis": analyses,
        "user": users,
        "group": groups,
        "api_token": tokens,
    }
    label = {"api_token": "API token", "observations": "observations of"}
    for e in entries:
        kind, number = e["object_type"], e["object_id"]
        name = None
        if number is not None and number.isdigit():
            name = known.get(kind, {}).get(int(number))
        shown = name if name is not None else (number or "")
        names[(kind, number)] = f"{label.get(kind, kind)} {shown}".strip()
    return names


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{_short(value['from'])} → {_short(value['to'])}"
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        if len(value) > 5:
            return f"{len(value)} items ({', '.join(_short(v) for v in value[:3])}, …)"
        return ", ".join(_short(v) for v in value)
    text = str(value)
    if _ISO.match(text):
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if at.tzinfo is not None:
                at = at.astimezone(dt.UTC)
            return at.strftime("%Y-%m-%d %H:%M") + (" UTC" if at.tzinfo else "")
    if _HEX.match(text):
        return text[:12] + "…"  # a hash: its start identifies it for a reader
    return text if len(text) <= _LONG else text[: _LONG - 1] + "…"


def summarise(details: dict) -> str:
    """One line of an entry's details: ``key: value`` pairs, hashes shortened, long
    values cut; the fingerprints the entry records are counted, not listed."""
    parts = [
        f"{key.replace('_', ' ')}: {_short(value)}"
        for key, value in details.items()
        if not (key == "covers" and isinstance(value, dict))
    ]
    covers = details.get("covers")
    if isinstance(covers, dict):  # last: what the entry says comes first
        n = len(covers)
        parts.append(f"fingerprints of {n} object{'s' if n != 1 else ''}")
    return "; ".join(parts)
