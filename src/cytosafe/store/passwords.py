"""The password policy: what a password must be wherever one is set.

:func:`check_password` is called by :func:`cytosafe.store.create_user` (and so by the API,
the web pages and the first admin of ``cytosafe serve``); it raises an
:class:`~cytosafe.errors.InputError` on ``field="password"`` saying what is expected, and
never echoes the password.

The rules follow OWASP ASVS 4.0.3 V2.1 (level 2) and NIST SP 800-63B section 5.1.1.2:

* at least 12 characters, counted after runs of spaces are combined into one (ASVS 2.1.1);
  at most 128 (ASVS 2.1.2); any printable Unicode, spaces included, and no composition
  rules such as "one digit and one capital" (ASVS 2.1.9);
* not a common password (ASVS 2.1.7; NIST: "passwords obtained from previous breach
  corpuses", "dictionary words", "repetitive or sequential characters"): the password, or
  what is left of it once the digits and symbols around it are taken away and the usual
  letter-for-digit swaps undone (``P@ssw0rd!2024`` is ``password``), must not be one of
  the 1,000 most common passwords of the ``common_passwords.txt`` list shipped in
  :mod:`cytosafe.data` (cited in the file), nor one of them repeated;
* not one character repeated, nor a run along the alphabet, the digits or a keyboard row
  (``aaaaaaaaaaaa``, ``123456789012``, ``qwertyuiopas``);
* not the user name, nor containing it (NIST: "context-specific words, such as ... the
  username").
"""

from __future__ import annotations

import functools
import re
import unicodedata

from cytosafe.errors import InputError

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_password", "common_passwords"]

MIN_LENGTH = 12  # OWASP ASVS 4.0.3, 2.1.1
MAX_LENGTH = 128  # OWASP ASVS 4.0.3, 2.1.2

_EXPECTED = (
    f"{MIN_LENGTH} to {MAX_LENGTH} characters that are not a common password, a run of "
    "keys or the user name (a few unrelated words make a good one)"
)
# Runs a person types without thinking: the alphabet, the digits, the keyboard rows.
_RUNS = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiop",
    "azertyuiop",
    "1qaz2wsx3edc4rfv5tgb",
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i"})  # fmt: skip


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, in lower case."""
    from cytosafe import data

    text = data.path("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("# ")
    )


def _repeats(text: str, words: frozenset[str]) -> bool:
    """Whether ``text`` is one common word (or any single unit) said again and again."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return size < 4 or text[:size] in words
    return False


def _is_run(text: str) -> bool:
    """Whether ``text`` is a stretch of one of the typed runs, forwards or backwards."""
    if len(text) < 4:
        return False
    for run in _RUNS:
        cycle = run * (len(text) // len(run) + 2)
        if text in cycle or text[::-1] in cycle:
            return True
    return False


def _cores(password: str) -> set[str]:
    """What a common-password check looks at: the password in lower case, with the digits
    and symbols around it stripped, then with letter-for-digit swaps undone and stripped
    again, and each of these without its symbols."""

    def strip(text: str) -> str:
        return re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text)

    lower = password.lower()
    steps = [lower, strip(lower)]
    steps += [steps[-1].translate(_LEET), lower.translate(_LEET)]
    steps += [strip(steps[-2]), strip(steps[-1])]
    cores = set(steps) | {re.sub(r"[\W_]+", "", s) for s in steps}
    return {c for c in cores if c}


def check_password(password: str | None, *, username: str | None = None) -> None:
    """Refuse a password that does not meet the policy (see the module).

    Raises
    ------
    InputError
        On ``field="password"``, saying what was wrong and what is expected; the password
        itself is never in the message.

    Examples
    --------
    >>> check_password("correct horse battery", username="ada")
    >>> check_password("Password1234!")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cytosafe.errors.InputError: field 'password': is a common password ...
    """
    if not isinstance(password, str):
        raise InputError("is missing", field="password", expected=_EXPECTED)
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in password):
        raise InputError(
            "holds control characters", field="password", expected="printable characters"
        )
    length = len(re.sub(r" {2,}", " ", password))  # ASVS 2.1.1: spaces combined
    if length < MIN_LENGTH:
        raise InputError(
            f"is shorter than {MIN_LENGTH} characters ({length})",
            field="password",
            expected=_EXPECTED,
        )
    if len(password) > MAX_LENGTH:
        raise InputError(
            f"is longer than {MAX_LENGTH} characters", field="password", expected=_EXPECTED
        )
    words = common_passwords()
    squeezed = re.sub(r"\s+", "", password.lower())
    if _repeats(squeezed, words) or _is_run(squeezed) or _is_run(squeezed.translate(_LEET)):
        raise InputError(
            "is a repeated character or word or a run of keys",
            field="password",
            expected=_EXPECTED,
        )
    cores = _cores(password)
    if any(c in words or _repeats(c, words) or _is_run(c) for c in cores):
        raise InputError("is a common password", field="password", expected=_EXPECTED)
    name = (username or "").strip().lower()
    if len(name) >= 3 and any(name in c for c in (squeezed, *cores)):
        raise InputError("contains the user name", field="password", expected=_EXPECTED)
