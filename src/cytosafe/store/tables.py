"""Result tables as Parquet blobs: how any stage's tidy table is stored.

Why blobs and not one typed SQL table per result: the result tables are wide (the
concentration table has 37 columns), differ per stage (quantification today; hazard
calls, grades, AOP evidence and dose estimates next) and gain columns as the analysis
packages grow. Typed tables would need a migration for every new column and would lose
pandas' dtypes on the way back (categoricals, nullable integers, text); Parquet keeps
them exactly, compresses well, and is one of the formats the REST API serves as is. A
result table is read whole (for a report, a download or the next stage), never edited
row by row, so SQL queries inside it are not needed; the raw data that *are* queried
and edited (measurements, observations, grades) are typed rows. Each blob carries its
column schema (name and dtype, for listings without decoding), its row count and the
SHA-256 of its bytes, which the import's audit entry also records: a blob changed
behind the store's back is found by :func:`cytosafe.store.verify_tables`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import pandas as pd

from cytosafe.errors import InputError

__all__ = ["EncodedTable", "decode_table", "encode_table"]


@dataclass(frozen=True)
class EncodedTable:
    """A table ready to store."""

    content: bytes
    columns: list[dict[str, str]]
    n_rows: int
    sha256: str


def encode_table(name: str, frame: pd.DataFrame) -> EncodedTable:
    """Parquet bytes of ``frame`` (index dropped), with schema, row count and hash.

    Raises
    ------
    InputError
        When ``frame`` is not a DataFrame or has a column Parquet cannot hold.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(
            f"result table '{name}' is a {type(frame).__name__}",
            field=name,
            expected="a pandas DataFrame",
        )
    buffer = io.BytesIO()
    try:
        frame.reset_index(drop=True).to_parquet(
            buffer, engine="pyarrow", index=False, compression="zstd"
        )
    except (ValueError, TypeError, ImportError) as exc:
        raise InputError(
            f"result table '{name}' cannot be stored: {exc}",
            field=name,
            expected="columns of numbers, text, booleans, dates or categories",
        ) from None
    content = buffer.getvalue()
    return EncodedTable(
        content=content,
        columns=[{"name": str(c), "dtype": str(t)} for c, t in frame.dtypes.items()],
        n_rows=len(frame),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def decode_table(content: bytes) -> pd.DataFrame:
    """The DataFrame stored by :func:`encode_table`."""
    return pd.read_parquet(io.BytesIO(content), engine="pyarrow")
