"""Result tables as the API sends them: CSV, JSON and Parquet, encodings cached by content.

A stored table never changes: its bytes are named by their SHA-256, so an encoding made
once serves every later read of the same bytes (in any analysis), and a read costs a
lookup instead of decoding Parquet and encoding again.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from typing import Any

import pandas as pd

from cytosafe.store import decode_table

__all__ = ["PARQUET", "EncodedTables", "encode_table", "records"]

#: The media type of a Parquet table.
PARQUET = "application/vnd.apache.parquet"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records (ISO dates; anything else as text)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


class EncodedTables:
    """Result tables already encoded as CSV or JSON, least recently used first out."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, sha256: str, fmt: str) -> bytes | None:
        with self._lock:
            value = self._items.get((sha256, fmt))
            if value is not None:
                self._items.move_to_end((sha256, fmt))
            return value

    def put(self, sha256: str, fmt: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # a very large table is encoded on each read rather than crowd out the rest
        with self._lock:
            if (sha256, fmt) in self._items:
                return
            self._items[(sha256, fmt)] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def encode_table(content: bytes, fmt: str) -> bytes:
    """Stored Parquet ``content`` as ``fmt``: ``"json"`` (records) or ``"csv"``."""
    frame = decode_table(content)
    if fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", default_handler=str)
    else:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        text = buffer.getvalue()
    return text.encode("utf-8")
