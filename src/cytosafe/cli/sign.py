"""``cytosafe store sign``: sign a stored analysis electronically (21 CFR Part 11).

The signer is a store user with a password (``--user``, by default the operating-system
login); the password is asked for on the terminal (:func:`getpass.getpass`, not echoed)
or read from the first line of standard input with ``--password-stdin`` (for scripts:
never put a password in a command line, where ``ps`` and the shell history see it). The
meaning is one of the configured meanings (``authored``, ``reviewed``, ``approved``;
``cytosafe/data/signature_meanings.toml``) and the comment is optional. A wrong password
is refused (exit 2) and recorded in the audit trail; an ``approved`` signature makes the
analysis final. See :func:`cytosafe.store.signatures.sign`.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from cytosafe.cli.store import DatabaseOption
from cytosafe.errors import InputError

__all__ = ["store_sign"]


def _password(user: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("no password on standard input", field="--password-stdin")
        return line.rstrip("\r\n")
    return getpass.getpass(f"Password of {user} (to sign): ")


def store_sign(
    analysis: Annotated[int, typer.Argument(help="The id of the analysis to sign.")],
    meaning: Annotated[
        str,
        typer.Option(
            help="What the signature means: authored | reviewed | approved (approved makes "
            "the analysis final).",
            show_default=False,
        ),
    ],
    comment: Annotated[
        str | None, typer.Option(help="Why, or on what condition (at most 500 characters).")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="The signer, a store user (default: your login name).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from the first line of standard input."
        ),
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Sign a stored analysis electronically: your password again, a meaning, a comment."""
    from cytosafe.store import Store
    from cytosafe.store.signatures import check_comment, check_meaning, sign

    signer = user or getpass.getuser()
    wanted = check_meaning(meaning)  # before the password is asked for
    check_comment(comment)
    password = _password(signer, password_stdin)
    with Store(database) as store:
        signature = sign(
            store, analysis, user=signer, password=password, meaning=wanted.key, comment=comment
        )
        with store.reader() as session:
            from cytosafe.store.models import Analysis

            status = session.get(Analysis, analysis).status
    typer.echo(
        f"analysis {analysis} signed by {signer} as '{wanted.key}' (signature "
        f"{signature.id}, SHA-256 signed {signature.signed_sha256}); status {status}"
    )
