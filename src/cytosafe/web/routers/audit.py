"""The audit trail and the integrity check of the store: ``/api/audit``.

Group-scoped (issue 14, defect 5): an admin reads every entry; a study director reads
the entries about the studies of their groups (and of no group), about their groups, and
their own (their account and tokens, what they did), so a director of one group learns
nothing of another group's study codes, files, patients or users. The integrity check
covers the whole store, but names an object outside the director's groups only to an
admin.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from cytosafe.store import audit_problems, head, parse_heads, verify_tables
from cytosafe.web.deps import Director, StoreDep
from cytosafe.web.services.audit_trail import AuditFilter, filtered_entries

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/audit", tags=["audit"])
def list_audit(
    user: Director,
    store: StoreDep,
    object_type: str | None = None,
    object_id: str | None = None,
    study: Annotated[
        str,
        Query(
            max_length=200,
            description="A study id: entries about the study, its plates, analyses and data",
        ),
    ] = "",
    actor: Annotated[str, Query(max_length=200, description="Who did it (user name)")] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10, description="From this date (UTC)")] = "",
    until: Annotated[str, Query(max_length=10, description="To this date (UTC)")] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """Audit entries, oldest first (study director: those of their groups; admin: all),
    filtered as the audit-trail page filters them (422 for an unknown action, a date not
    written YYYY-MM-DD or a study the user cannot see)."""
    where = AuditFilter.parse(study=study, actor=actor, action=action, since=since, until=until)
    entries = filtered_entries(store, user, where, object_type=object_type, object_id=object_id)
    return {"total": len(entries), "entries": entries[offset : offset + limit]}


@router.get("/audit/head", tags=["audit"])
def chain_head(user: Director, store: StoreDep) -> dict:
    """The head of the audit chain (the last entry's number and hash): keep it outside
    the server, and give it back to ``/api/audit/verify?head=SEQ:HASH`` later to show
    that no entry was cut from the tail (study director)."""
    count, last = head(store)
    return {"seq": count, "hash": last}


@router.get("/audit/verify", tags=["audit"])
def verify(
    user: Director,
    store: StoreDep,
    head_: Annotated[
        list[str] | None,
        Query(
            alias="head",
            description="A chain head written down before (SEQ:HASH or a bare hash); "
            "repeatable. The chain must still reach it.",
        ),
    ] = None,
) -> dict:
    """Check the audit trail's hash chain, the heads written down, every stored object
    against the fingerprint the chain recorded, and the stored tables' hashes (study
    director). ``intact`` is false when any of them is broken; ``broken`` is the first
    problem (``kind``: chain, head, data or uncovered), ``problems`` all of them."""
    heads = [h for value in head_ or [] for h in parse_heads(value, source="head")]
    problems = audit_problems(store, heads=heads, visible_to=user)
    changed = verify_tables(store)
    count, last = head(store)
    listed = [
        {"seq": p.seq, "kind": p.kind, "reason": str(p), "object": p.object} for p in problems
    ]
    return {
        "intact": not problems and not changed,
        "entries": count,
        "head": last,
        "broken": listed[0] if listed else None,
        "problems": listed,
        "changed": changed,
    }
