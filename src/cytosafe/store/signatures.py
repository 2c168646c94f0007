"""Electronic signatures of analyses, in the manner of 21 CFR Part 11 (subpart C).

:func:`sign` executes one signature: the signer gives their password again (and the web
app asks for the user name too at the first signature of a session, 11.200(a)(1)), picks
the meaning from the configured list (:func:`meanings`, read from
``cytosafe/data/signature_meanings.toml``: authored, reviewed, approved; 11.50(a)(3)) and
may add a bounded comment. An analysis collects several signatures (its author's, a
reviewer's) and becomes final (``signed_off``) at the one whose meaning is final
(approved). Each signature is a row of the append-only ``signatures`` table (the
database refuses UPDATE and DELETE, migration 0006) holding the signer, the time (UTC),
the meaning, the comment and ``signed_sha256``, the SHA-256 of what was signed
(:func:`signed_content`: the analysis and the SHA-256 of each of its tables and reports),
which links the signature to its record (11.70). It is recorded in the audit trail in
the same transaction, and the entry covers the signature's fingerprint
(:mod:`cytosafe.store.integrity`), so ``cytosafe audit verify`` finds a signature
changed or removed behind the store's back.

A wrong password is refused (:class:`SignatureRefused`) and the refusal is itself
recorded in the audit trail (action ``sign-refused``: it signed nothing, so it writes no
chain head, unlike a ``sign-off``). With ``no_self_approval`` (the data file's rule, or
``CYTOSAFE_NO_SELF_APPROVAL=1``), whoever created the analysis or signed it as its author
may not approve it (EU GMP Annex 11, 14; four eyes).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe import data
from cytosafe.errors import CytoSafeError, InputError
from cytosafe.store._session import (
    AuthorizationError,
    aware,
    find_analysis,
    find_user,
    reading,
    refuse_signed,
    require_role,
)
from cytosafe.store.analyses import finalise
from cytosafe.store.audit import canonical_json, record
from cytosafe.store.database import Store
from cytosafe.store.models import Analysis, AnalysisTable, Report, Signature, User
from cytosafe.store.users import verify_password

__all__ = [
    "MEANINGS_FILE",
    "NO_SELF_APPROVAL_ENV",
    "Meaning",
    "SignatureRefused",
    "check_comment",
    "check_meaning",
    "comment_limit",
    "list_signatures",
    "meanings",
    "no_self_approval",
    "record_refusal",
    "sign",
    "signed_content",
]

MEANINGS_FILE = "signature_meanings.toml"
#: Set to 1 (true, yes, on) to forbid self-approval whatever the data file says.
NO_SELF_APPROVAL_ENV = "CYTOSAFE_NO_SELF_APPROVAL"


class SignatureRefused(CytoSafeError):
    """The signer's credentials were wrong: nothing was signed (the web app's 401)."""


@dataclass(frozen=True)
class Meaning:
    """What a signature means (21 CFR 11.50(a)(3)): its ``key`` (stored), the ``label``
    shown, the ``statement`` the signer makes, the ``roles`` that may sign with it, and
    whether it makes the analysis ``final``."""

    key: str
    label: str
    statement: str
    roles: tuple[str, ...]
    final: bool


@functools.cache
def meanings() -> dict[str, Meaning]:
    """The configured meanings by key, in the order of the data file."""
    table = data.load(MEANINGS_FILE, schema="cytosafe.signatures")
    out = {}
    for item in table["meaning"]:
        out[item["key"]] = Meaning(
            key=item["key"],
            label=item["label"],
            statement=item["statement"],
            roles=tuple(item["roles"]),
            final=bool(item["final"]),
        )
    return out


def comment_limit() -> int:
    """The most characters a signature's comment may hold."""
    return int(data.load(MEANINGS_FILE)["rules"]["comment_max_characters"])


def no_self_approval() -> bool:
    """Whether self-approval is forbidden: ``$CYTOSAFE_NO_SELF_APPROVAL`` when set, else
    the data file's rule (off)."""
    env = os.environ.get(NO_SELF_APPROVAL_ENV, "").strip().lower()
    if env:
        return env in ("1", "true", "yes", "on")
    return bool(data.load(MEANINGS_FILE)["rules"]["no_self_approval"])


def check_meaning(meaning: str | None) -> Meaning:
    """The configured meaning ``meaning`` names (its key or label, any case).

    Raises
    ------
    InputError
        On ``field="meaning"``, listing the configured meanings.
    """
    known = meanings()
    text = (meaning or "").strip().casefold()
    for item in known.values():
        if text in (item.key.casefold(), item.label.casefold()):
            return item
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise InputError(
        f"'{shown}' is not a meaning of a signature" if text else "no meaning chosen",
        field="meaning",
        expected=" | ".join(known),
    )


def check_comment(comment: str | None) -> str | None:
    """The comment, stripped (None when empty).

    Raises
    ------
    InputError
        On ``field="comment"`` when it is longer than :func:`comment_limit` characters.
    """
    text = (comment or "").strip()
    limit = comment_limit()
    if len(text) > limit:
        raise InputError(
            f"is {len(text)} characters long",
            field="comment",
            expected=f"at most {limit} characters",
        )
    return text or None


def signed_content(session: Session, analysis: Analysis) -> dict[str, Any]:
    """What a signature of ``analysis`` signs: the analysis (id, study, kind, version)
    and the SHA-256 of each of its tables and reports as stored now. ``signed_sha256`` is
    the SHA-256 of its canonical JSON (:func:`cytosafe.store.audit.canonical_json`), which
    the audit entry of the signature holds in full, so anyone can recompute it."""
    tables = session.execute(
        select(AnalysisTable.name, AnalysisTable.sha256).where(
            AnalysisTable.analysis_id == analysis.id
        )
    ).all()
    reports = session.execute(
        select(Report.id, Report.name, Report.sha256)
        .where(Report.analysis_id == analysis.id)
        .order_by(Report.id)
    ).all()
    return {
        "analysis": analysis.id,
        "study_id": analysis.study_id,
        "kind": analysis.kind,
        "version": analysis.version,
        "tables": {name: sha for name, sha in sorted(tables)},
        "reports": [{"id": i, "name": name, "sha256": sha} for i, name, sha in reports],
    }


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def record_refusal(
    store: Store, analysis: Analysis | int, *, user: User | str | int, meaning: str, reason: str
) -> None:
    """Record in the audit trail, in a transaction of its own, that ``user`` tried to
    sign ``analysis`` with ``meaning`` and was refused for ``reason`` (never the
    password itself)."""
    with store.session() as session:
        actor = find_user(session, user)
        record(
            session,
            "sign-refused",
            "analysis",
            getattr(analysis, "id", analysis),
            user=actor,
            details={"outcome": "refused", "reason": reason, "meaning": meaning},
        )


def sign(
    store: Store,
    analysis: Analysis | int,
    *,
    user: User | str,
    password: str,
    meaning: str,
    comment: str | None = None,
    forbid_self_approval: bool | None = None,
) -> Signature:
    """Sign ``analysis`` electronically as ``user``, whose ``password`` is checked again.

    Parameters
    ----------
    store:
        The store (not a session: a refused signature is recorded in a transaction of
        its own, since nothing else is written).
    analysis:
        A completed analysis (object or id).
    user, password:
        The signer and their password (21 CFR 11.200(a)(1)).
    meaning:
        One of :func:`meanings` (key or label): the roles it allows and whether it makes
        the analysis final come from the data file.
    comment:
        Optional, at most :func:`comment_limit` characters; printed in the manifest.
    forbid_self_approval:
        Refuse a final signature by whoever created the analysis or signed it as
        ``authored`` (None: :func:`no_self_approval`).

    Returns
    -------
    Signature
        The stored signature (detached).

    Raises
    ------
    SignatureRefused
        The password is wrong (or the user has none); the refusal is audited.
    AuthorizationError
        The user's role may not sign with this meaning, or it would be a self-approval.
    InputError
        An unknown meaning, a comment too long, an analysis not completed, or a second
        signature of one meaning by one signer.
    SignedOffError
        The analysis is already final.
    """
    wanted = check_meaning(meaning)
    text = check_comment(comment)
    if not isinstance(store, Store):
        raise TypeError(f"expected a Store, got {type(store).__name__}")
    with reading(store) as session:
        signer = find_user(session, user)
        analysis_id = find_analysis(session, analysis).id
    # The slow hash is checked outside the write transaction, which holds the lock.
    if not isinstance(password, str) or not verify_password(signer, password):
        record_refusal(
            store, analysis_id, user=signer.id, meaning=wanted.key, reason="wrong password"
        )
        raise SignatureRefused(
            f"signature refused: the password of '{signer.username}' is wrong; nothing was "
            "signed (the attempt is recorded in the audit trail)"
        )
    forbid = no_self_approval() if forbid_self_approval is None else forbid_self_approval
    with store.session() as session:
        actor = find_user(session, signer.id)
        require_role(actor, wanted.roles, f"sign analyses as '{wanted.key}'")
        row = find_analysis(session, analysis_id, lock=True)
        refuse_signed(row, "sign it")
        if row.status != "completed":
            raise InputError(
                f"analysis {row.id} is {row.status}",
                field="status",
                expected="a completed analysis",
            )
        earlier = list(session.scalars(select(Signature).where(Signature.analysis_id == row.id)))
        if any(s.user_id == actor.id and s.meaning == wanted.key for s in earlier):
            raise InputError(
                f"'{actor.username}' has already signed analysis {row.id} as '{wanted.key}'",
                field="meaning",
                expected="another meaning, or another signer",
            )
        if forbid and wanted.final:
            authors = {s.user_id for s in earlier if s.meaning == "authored"}
            if actor.id == row.created_by_id or actor.id in authors:
                raise AuthorizationError(
                    f"user '{actor.username}' created or authored analysis {row.id} and may "
                    f"not sign it as '{wanted.key}': self-approval is not allowed here"
                )
        content = signed_content(session, row)
        signature = Signature(
            analysis_id=row.id,
            user_id=actor.id,
            meaning=wanted.key,
            comment=text,
            signed_sha256=_digest(content),
        )
        session.add(signature)
        session.flush()
        details: dict[str, Any] = {
            "signature": signature.id,
            "meaning": wanted.key,
            "statement": wanted.statement,
            "comment": text,
            "signed_sha256": signature.signed_sha256,
            "signed": content,
            "final": wanted.final,
        }
        if wanted.final:
            details["tables"] = finalise(row, actor)
            session.flush()
        record(
            session,
            "sign-off",
            "analysis",
            row.id,
            user=actor,
            details=details,
            covers=[("signature", signature.id)],
        )
        return signature


def list_signatures(target: Store | Session, analysis: Analysis | int) -> list[dict[str, Any]]:
    """The signatures of an analysis, oldest first, as the manifest prints them: the
    signer's printed name and user name, the time (UTC), the meaning (key, label and
    statement), the comment and ``signed_sha256``."""
    known = meanings()
    with reading(target) as session:
        rows = session.execute(
            select(Signature, User.username, User.display_name)
            .join(User, User.id == Signature.user_id)
            .where(Signature.analysis_id == getattr(analysis, "id", analysis))
            .order_by(Signature.signed_at, Signature.id)
        ).all()
        out = []
        for sig, username, display_name in rows:
            item = known.get(sig.meaning)
            out.append(
                {
                    "id": sig.id,
                    "analysis_id": sig.analysis_id,
                    "username": username,
                    "name": display_name or username,
                    "signed_at": aware(sig.signed_at),
                    "meaning": sig.meaning,
                    "label": item.label if item else sig.meaning,
                    "statement": item.statement if item else "",
                    "comment": sig.comment,
                    "signed_sha256": sig.signed_sha256,
                }
            )
        return out
