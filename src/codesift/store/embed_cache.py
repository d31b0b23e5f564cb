"""A content-addressed embedding cache: identical text is embedded once.

Keyed by (embedder name, text), so it survives file moves, branch switches and
re-indexes, and never mixes vectors of two embedders. It is only a cache: losing it
(or a write to it) costs time, never correctness, so it runs with relaxed durability.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
_CHUNK = 500  # SQLite's default limit on host parameters is 999


class EmbedCache:
    def __init__(self, path: Path, embedder_name: str, dim: int) -> None:
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_SCHEMA)
        self._salt = f"{embedder_name}\0{dim}\0".encode()
        self.dim = dim
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> bytes:
        return hashlib.blake2b(self._salt + text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part
            ).fetchall()
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.dim,):
                    found[key] = vec
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        if items:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(key, vector) VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )

    def clear(self) -> None:
        self._db.execute("DELETE FROM vectors")

    def close(self) -> None:
        self._db.close()
