"""Query tables: a derived copy of the chunk rows, inside the manifest, for the light query path.

A search that goes through LanceDB pays for ``import lancedb`` (1-1.5 s: its pydantic
client, ``pyarrow.dataset`` and pandas) and a dozen synchronous round trips per query.
These tables answer the same three questions (nearest vectors, BM25 over the
identifier-split text, chunks defining a name) with the standard library's SQLite and
numpy alone:

* ``q_chunks``: one row per chunk: the public columns but ``file_hash``, and the vector
  scaled to unit length, as float16 bytes (half the size; the cosine moves by about 1e-3);
* ``q_text``: an FTS5 index over ``search_text`` (Porter stemmer, accents folded), its
  rowid equal to the chunk's ``q_chunks`` rowid.

They live in ``manifest.sqlite`` and change in the same transaction that vouches for a
file (:meth:`Manifest.commit_files`), forgets it or resets the manifest, so they hold
exactly the rows of the files the manifest records as indexed: never more, never less,
whatever instant a crash comes at. The LanceDB ``chunks`` table stays the documented
format and the source of truth: these tables can be rebuilt from it at any time
(:func:`populate`), ``verify`` compares them with it, and a search falls back to LanceDB
when they are not complete (an index written before they existed, until its next run).

The meta key ``query_tables`` says they are complete: it is set when the manifest is
created empty (an empty copy of nothing is complete) and by :func:`populate`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

VERSION = "1"
META_KEY = "query_tables"

DDL = """
CREATE TABLE IF NOT EXISTS q_chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    language TEXT,
    symbol TEXT,
    kind TEXT,
    start_line INTEGER,
    end_line INTEGER,
    content TEXT,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS q_chunks_path ON q_chunks(path);
CREATE VIRTUAL TABLE IF NOT EXISTS q_text USING fts5(search_text, tokenize = 'porter unicode61 remove_diacritics 2');
"""

# The English stop words LanceDB's full-text index drops (tantivy's list): dropped here on
# both sides too, so the two text legs agree on what a match is.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split())

ROW_COLUMNS = ("id", "path", "language", "symbol", "kind", "start_line", "end_line", "content")


def fts_text(search_text: str) -> str:
    """What ``q_text`` indexes for a chunk's ``search_text``: the same tokens, stop words out."""
    return " ".join(t for t in search_text.split() if t not in STOP_WORDS)


def fts_query(tokens: Iterable[str]) -> str | None:
    """An FTS5 query matching any of ``tokens`` (each quoted), or None when none is left."""
    seen: list[str] = []
    for t in tokens:
        t = t.replace('"', "")
        if t and t not in STOP_WORDS and t not in seen:
            seen.append(t)
    return " OR ".join(f'"{t}"' for t in seen) if seen else None


def clear_statements(paths: Sequence[str]) -> list[tuple[str, list]]:
    """Statements removing every row of ``paths`` (for the manifest's own transaction)."""
    if not paths:
        return []
    params = [(p,) for p in paths]
    return [("DELETE FROM q_text WHERE rowid IN (SELECT rowid FROM q_chunks WHERE path = ?)", params),
            ("DELETE FROM q_chunks WHERE path = ?", params)]


def insert_statements(rows: "QueryRows | None") -> list[tuple[str, list]]:
    if rows is None or not rows.chunks:
        return []
    ids = [(t[1],) for t in rows.texts]
    return [("DELETE FROM q_text WHERE rowid IN (SELECT rowid FROM q_chunks WHERE id = ?)", ids),
            ("INSERT OR REPLACE INTO q_chunks(id, path, language, symbol, kind, start_line, end_line, content, "
             "vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.chunks),
            ("INSERT INTO q_text(rowid, search_text) SELECT rowid, ? FROM q_chunks WHERE id = ?", rows.texts)]


def mark_complete_if_empty() -> str:
    """SQL marking the tables complete on a manifest that vouches for no file yet."""
    return (f"INSERT OR IGNORE INTO meta(key, value) SELECT '{META_KEY}', '{VERSION}' "
            "WHERE NOT EXISTS (SELECT 1 FROM files)")


class QueryRows:
    """The rows of one write, in the tables' shape (built from the Arrow rows LanceDB gets)."""

    __slots__ = ("chunks", "texts")

    def __init__(self, chunks: list[tuple], texts: list[tuple[str, str]]) -> None:
        self.chunks = chunks
        self.texts = texts

    @classmethod
    def from_arrow(cls, table) -> "QueryRows":
        """From an Arrow table with the ``chunks`` columns (``search_text`` included)."""
        import numpy as np

        from .schema import SEARCH_TEXT

        n = table.num_rows
        cols = {c: table.column(c).to_pylist() for c in ROW_COLUMNS}
        vec = table.column("vector").combine_chunks()
        dim = vec.type.list_size
        mat = np.asarray(vec.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, dim)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows: verify reports them
            mat = (mat / norms).astype(np.float16)  # unit-length: a search's product is the cosine
        text = (table.column(SEARCH_TEXT).to_pylist() if SEARCH_TEXT in table.column_names
                else cols["content"])
        chunks = [(cols["id"][i], cols["path"][i], cols["language"][i], cols["symbol"][i], cols["kind"][i],
                   cols["start_line"][i], cols["end_line"][i], cols["content"][i], mat[i].tobytes())
                  for i in range(n)]
        texts = [(fts_text(text[i] or ""), cols["id"][i]) for i in range(n)]
        return cls(chunks, texts)


def complete(meta: dict[str, str]) -> bool:
    return meta.get(META_KEY) == VERSION


def populate(db: sqlite3.Connection, store, vouched: dict[str, str], batch_rows: int = 2048) -> int:
    """Rebuild the tables from the LanceDB table ``store`` (a ``ChunkStore``), keeping only
    rows of files the manifest vouches for (``vouched``: path → file hash), in one
    transaction that also marks them complete. Runs on the writer, under the writer lock.
    Returns the number of rows copied."""
    from .schema import SEARCH_TEXT

    table = store.table
    cols = list(ROW_COLUMNS) + ["file_hash", "vector"]
    if table is not None and SEARCH_TEXT in table.schema.names:
        cols.append(SEARCH_TEXT)
    data = store.scan(cols) if table is not None else None
    copied = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM q_text")
        db.execute("DELETE FROM q_chunks")
        if data is not None:
            for start in range(0, data.num_rows, batch_rows):
                part = data.slice(start, batch_rows)
                keep = [i for i, (p, h) in enumerate(zip(part.column("path").to_pylist(),
                                                         part.column("file_hash").to_pylist()))
                        if vouched.get(p) == h]
                if not keep:
                    continue
                rows = QueryRows.from_arrow(part.take(keep))
                for sql, params in insert_statements(rows):
                    db.executemany(sql, params)
                copied += len(keep)
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (META_KEY, VERSION))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return copied
