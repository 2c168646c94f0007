"""Text exports as instrument PCs write them: one decoding rule for every text reader.

Instrument software runs on Windows, and its text exports come in three encodings:

* UTF-8, with or without the byte-order mark Excel writes (``EF BB BF``);
* UTF-16 ("Unicode text" in Excel's *Save as* and some instrument PCs' exports), little-
  or big-endian, with its byte-order mark (``FF FE`` / ``FE FF``) or, rarely, without;
* Windows-1252 (non-ASCII sample names typed on a Western-European Windows PC).

:func:`decode_text` recognises them in that order (a mark first; then the NUL bytes that
UTF-16 puts beside every ASCII character; then strict UTF-8; else Windows-1252), so every
reader sees the same text whichever encoding the PC chose. A file still holding NUL bytes
after decoding is binary, or in an encoding none of these are: an
:class:`~cytosafe.errors.InputError` naming the file, rather than a message full of NULs.
"""

from __future__ import annotations

import codecs

from cytosafe.errors import InputError

__all__ = ["decode_text", "short_error", "utf16_encoding"]

# Share of NUL bytes, at the even or odd offsets of the first bytes, above which a file
# without a byte-order mark is read as UTF-16 (ASCII text in UTF-16 has a NUL at every
# other byte; UTF-8 and Windows-1252 text has none).
_UTF16_NUL_SHARE = 0.4
_SAMPLE = 4096


def utf16_encoding(raw: bytes) -> str | None:
    """``"utf-16"`` (with a mark), ``"utf-16-le"`` / ``"utf-16-be"`` (without), or None."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = raw[:_SAMPLE]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul = even.count(0) / len(even)
    odd_nul = odd.count(0) / len(odd)
    if odd_nul > _UTF16_NUL_SHARE and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > _UTF16_NUL_SHARE and odd_nul < 0.05:
        return "utf-16-be"
    return None


def decode_text(raw: bytes, *, file: str, partial: bool = False) -> str:
    """The text of a text export, whichever of the encodings of the module notes it uses.

    Parameters
    ----------
    raw : bytes
        The file's bytes.
    file : str
        The file, named by errors.
    partial : bool
        ``raw`` is only the file's first bytes (a reader's probe): a character cut at the
        end is dropped, and nothing raises.

    Returns
    -------
    str
        The text, without a byte-order mark.

    Raises
    ------
    InputError
        UTF-16 that does not decode, or text holding NUL bytes (a binary file).
    """
    encoding = utf16_encoding(raw)
    if encoding is not None:
        body = raw[: len(raw) - len(raw) % 2]
        try:
            text = body.decode(encoding, errors="replace" if partial else "strict")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"looks like UTF-16 text but does not decode as UTF-16 (byte {exc.start})",
                file=file,
                expected="a complete UTF-16, UTF-8 or Windows-1252 text file",
            ) from None
        text = text.removeprefix("\ufeff")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if partial and exc.start >= len(raw) - 3 and exc.reason == "unexpected end of data":
                text = raw[: exc.start].decode("utf-8-sig")
            else:
                # Windows-1252: non-ASCII sample names typed on a Western-European PC.
                text = raw.decode("cp1252", errors="replace")
    if "\x00" in text and not partial:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(
            "holds NUL bytes: a binary file, or text in an encoding other than UTF-8, "
            "UTF-16 or Windows-1252",
            file=file,
            row=line,
            expected="a text export (CSV or tab-separated)",
        )
    return text


def short_error(exc: BaseException) -> str:
    """A library's exception as one short line for an error message: type and first line.

    Parsers of damaged files raise long messages (a whole XML token, a byte dump); the
    user needs to know that the file is damaged and where, not the parser's internals.
    """
    lines = str(exc).strip().splitlines()
    text = lines[0][:200].replace("\x00", "") if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
