"""Per-row text kept as integer codes into a small vocabulary.

A graded timeline of a million rows says *why* each grade was given, but the reasons are
few: a handful of criteria combined with a few hundred distinct temperatures or FiO2
values. :class:`Text` holds a code per row and the distinct strings once; concatenation
and selection work on the integer codes (vectorised NumPy), string work only on the
distinct values. The result becomes a ``pandas.Categorical`` column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["Text", "label", "select", "where"]


def _compress(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes renumbered to the values present (no sort: a presence table of ``size``)."""
    present = np.zeros(size, dtype=bool)
    present[codes] = True
    used = np.flatnonzero(present)
    mapping = np.cumsum(present) - 1
    return mapping[codes], used


class Text:
    """Strings per row as ``vocab[codes]`` (see the module docstring)."""

    __slots__ = ("codes", "vocab")

    def __init__(self, codes: np.ndarray, vocab: Sequence[str]) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.vocab = np.asarray(list(vocab), dtype=object)

    @classmethod
    def const(cls, n: int, text: str) -> Text:
        return cls(np.zeros(n, dtype=np.int64), [text])

    @classmethod
    def ints(cls, values: np.ndarray) -> Text:
        """Small non-negative integers (grades) as their decimal text."""
        v = np.asarray(values, dtype=np.int64)
        top = int(v.max()) + 1 if v.size else 1
        return cls(v, [str(i) for i in range(top)])

    @classmethod
    def fixed(cls, values: np.ndarray, decimals: int) -> Text:
        """Numbers as fixed-point text (``%.{decimals}f``; NaN as ``"nan"``)."""
        v = np.asarray(values, dtype=float)
        finite = np.isfinite(v)
        k = np.where(finite, np.round(v * 10**decimals), 0).astype(np.int64)
        lo = int(k[finite].min()) if finite.any() else 0
        k = np.where(finite, k - lo + 1, 0)
        codes, used = _compress(k, int(k.max()) + 1 if k.size else 1)
        vocab = ["nan" if u == 0 else f"{(u - 1 + lo) / 10**decimals:.{decimals}f}" for u in used]
        return cls(codes, vocab)

    @classmethod
    def bits(cls, flags: np.ndarray, names: dict[int, str], sep: str = ";") -> Text:
        """Bit flags as the names of the bits set, joined by ``sep``."""
        f = np.asarray(flags, dtype=np.int64)
        codes, used = _compress(f, int(f.max()) + 1 if f.size else 1)
        vocab = [sep.join(n for b, n in names.items() if u & b) for u in used]
        return cls(codes, vocab)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def empty(self) -> np.ndarray:
        """Rows whose text is ``""``."""
        return (self.vocab == "")[self.codes]

    def _as_text(self, other: Text | str) -> Text:
        return other if isinstance(other, Text) else Text.const(len(self), other)

    def __add__(self, other: Text | str) -> Text:
        if isinstance(other, str):
            return Text(self.codes, [v + other for v in self.vocab])
        m = len(other.vocab)
        codes, used = _compress(self.codes * m + other.codes, len(self.vocab) * m)
        vocab = [self.vocab[u // m] + other.vocab[u % m] for u in used]
        return Text(codes, vocab)

    def __radd__(self, other: str) -> Text:
        return Text(self.codes, [other + v for v in self.vocab])

    def to_array(self) -> np.ndarray:
        """An object array of the strings."""
        return self.vocab[self.codes]

    def to_categorical(self) -> pd.Categorical:
        """A ``pandas.Categorical`` of the strings (categories: the distinct strings used)."""
        cats, inv = np.unique(self.vocab.astype(str), return_inverse=True)
        codes, used = _compress(inv[self.codes], len(cats))
        return pd.Categorical.from_codes(codes, categories=cats[used])


def where(cond: np.ndarray, a: Text | str, b: Text | str) -> Text:
    """Row-wise ``a if cond else b``."""
    n = len(cond)
    a = a if isinstance(a, Text) else Text.const(n, a)
    b = b if isinstance(b, Text) else Text.const(n, b)
    codes = np.where(cond, a.codes, b.codes + len(a.vocab))
    vocab = np.concatenate([a.vocab, b.vocab])
    if len(vocab) < 4096:  # unused entries are harmless while the vocabulary is small
        return Text(codes, vocab)
    codes, used = _compress(codes, len(vocab))
    return Text(codes, vocab[used])


def select(conds: Sequence[np.ndarray], texts: Sequence[str], default: str = "") -> Text:
    """The text of the first condition that holds (``np.select`` for constant strings)."""
    codes = np.select(list(conds), list(range(1, len(texts) + 1)), default=0)
    return Text(np.asarray(codes, dtype=np.int64), [default, *texts])


def label(grade: np.ndarray, table: dict[int, str]) -> Text:
    """Text per row from a ``{grade: text}`` table (``""`` for grades not in it)."""
    g = np.asarray(grade, dtype=np.int64)
    top = max([int(g.max()) if g.size else 0, *table]) + 1
    lut = np.zeros(top, dtype=np.int64)
    vocab = [""]
    for k, t in table.items():
        lut[k] = len(vocab)
        vocab.append(t)
    return Text(lut[g], vocab)
