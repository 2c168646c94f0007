"""The audit trail and the integrity check of the store: ``/api/audit``."""

from typing import Annotated

from fastapi import APIRouter, Query

from cytosafe.store import audit_entries, head, verify_audit, verify_tables
from cytosafe.web.deps import Director, StoreDep

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/audit", tags=["audit"])
def list_audit(
    user: Director,
    store: StoreDep,
    object_type: str | None = None,
    object_id: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """Audit entries, oldest first (study director)."""
    entries = audit_entries(store, object_type=object_type, object_id=object_id)
    return {"total": len(entries), "entries": entries[offset : offset + limit]}


@router.get("/audit/verify", tags=["audit"])
def verify(user: Director, store: StoreDep) -> dict:
    """Check the audit trail's hash chain and the stored tables' hashes (study
    director). ``intact`` is false when either is broken."""
    broken = verify_audit(store)
    changed = verify_tables(store)
    count, last = head(store)
    return {
        "intact": broken is None and not changed,
        "entries": count,
        "head": last,
        "broken": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
        "changed": changed,
    }
