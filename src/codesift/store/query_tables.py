"""Query tables: a derived copy of the chunk rows, inside the manifest, for the light query path.

A search that goes through LanceDB pays for ``import lancedb`` (1-1.5 s: its pydantic
client, ``pyarrow.dataset`` and pandas) and a dozen synchronous round trips per query.
These tables answer the same three questions (nearest vectors, BM25 over the
identifier-split text, chunks defining a name) with the standard library's SQLite and
numpy alone:

* ``q_chunks``: one row per chunk: the public columns but ``file_hash`` and ``vector``;
* ``q_vectors``: the vector of each embedded chunk, scaled to unit length, as float16
  bytes (half the size; the cosine moves by about 1e-3);
* ``q_names``: every name a chunk defines (its symbol's parts, lower-cased), indexed, so a
  symbol lookup is an index seek;
* ``q_text``: an FTS5 index over ``search_text`` (Porter stemmer, accents folded).

The last three refer to the chunk by its ``q_chunks`` rowid. Above
:data:`codesift.store.ann.MIN_ROWS` vectors, ``q_ann`` names a graph of them in a file
beside the manifest, and ``q_ann_fresh`` lists the vectors committed since its build
(:mod:`.ann`).

They live in ``manifest.sqlite`` and change in the same transaction that vouches for a
file (:meth:`Manifest.commit_files`), forgets it or resets the manifest, so they hold
exactly the rows of the files the manifest records as indexed: never more, never less,
whatever instant a crash comes at. The LanceDB ``chunks`` table stays the documented
format and the source of truth: these tables can be rebuilt from it at any time
(:func:`reset`, :func:`copy_batch`), ``verify`` compares them with it, and a search falls back to LanceDB
when they are not complete (an index written before they existed, until its next run).

The meta key ``query_tables`` says they are complete: it is set when the manifest is
created empty (an empty copy of nothing is complete) and by :func:`mark_complete` after a
copy of the chunk table (:func:`reset`, :func:`copy_batch`).

**The fast (lexical) tier.** While a run embeds, its driver also chunks the files the
manifest has never seen and adds their rows here at once, with no vector and
``pending = 1`` (:func:`add_lexical`): the text leg and the definitions find them seconds
after ``codesift index`` starts, long before their vectors exist. They are not vouched
for: the commit that vouches for a file replaces them with its real rows, an insert is
skipped for a file the manifest already records, and every run clears what is left at
its start and its end (:func:`clear_pending`). ``verify`` leaves them out.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from .ann import DDL as ANN_DDL
from .ann import FRESH_SQL

VERSION = "2"  # 2: the fast tier's rows (pending = 1, no vector); vectors and names in their own tables
META_KEY = "query_tables"

# Narrow tables beside the chunk rows, so a scan for vectors, names or paths never reads
# the content pages: q_vectors (unit-length float16, only for embedded chunks), q_names
# (every name a chunk defines, lower-cased: what a symbol lookup matches exactly).
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
    pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS q_chunks_path ON q_chunks(path);
CREATE INDEX IF NOT EXISTS q_chunks_pending ON q_chunks(pending) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS q_vectors (chunk INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS q_names (name TEXT NOT NULL, chunk INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS q_names_name ON q_names(name);
CREATE INDEX IF NOT EXISTS q_names_chunk ON q_names(chunk);
CREATE VIRTUAL TABLE IF NOT EXISTS q_text USING fts5(search_text, tokenize = 'porter unicode61 remove_diacritics 2');
""" + ANN_DDL + ";\n"
TABLES = ("q_text", "q_vectors", "q_names", "q_ann", "q_ann_fresh", "q_chunks")  # the chunk rows last: the others point at them
_CHUNK_COLUMNS = {"rowid", "id", "path", "language", "symbol", "kind", "start_line", "end_line", "content", "pending"}

# The English stop words LanceDB's full-text index drops (tantivy's list): dropped here on
# both sides too, so the two text legs agree on what a match is.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split())

ROW_COLUMNS = ("id", "path", "language", "symbol", "kind", "start_line", "end_line", "content")


def fts_text(search_text: str) -> str:
    """What ``q_text`` indexes for a chunk's ``search_text``: the same tokens, stop words out."""
    return " ".join(t for t in search_text.split() if t not in STOP_WORDS)


def fts_terms(tokens: Iterable[str]) -> list[str]:
    """The distinct terms of ``tokens`` that a query of ``q_text`` can match (stop words out)."""
    seen: list[str] = []
    for t in tokens:
        t = t.replace('"', "")
        if t and t not in STOP_WORDS and t not in seen:
            seen.append(t)
    return seen


def fts_query(tokens: Iterable[str]) -> str | None:
    """An FTS5 query matching any of ``tokens`` (each quoted), or None when none is left."""
    seen = fts_terms(tokens)
    return " OR ".join(f'"{t}"' for t in seen) if seen else None


def _tx(db: sqlite3.Connection, fn) -> object:
    db.execute("BEGIN IMMEDIATE")
    try:
        out = fn()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT (disk full) leaves it open
            db.execute("ROLLBACK")
        raise
    return out


def _delete(cond: str) -> list[str]:
    """Statements deleting the chunks matching ``cond`` (over ``q_chunks``) from every table."""
    sub = f"SELECT rowid FROM q_chunks WHERE {cond}"
    return [f"DELETE FROM q_text WHERE rowid IN ({sub})", f"DELETE FROM q_vectors WHERE chunk IN ({sub})",
            f"DELETE FROM q_names WHERE chunk IN ({sub})", f"DELETE FROM q_ann_fresh WHERE chunk IN ({sub})",
            f"DELETE FROM q_chunks WHERE {cond}"]


# A batch of rows goes to SQLite as one statement over a JSON array (``json_each``), not as
# ``executemany``: the sqlite3 module releases the GIL around every row's step and must take
# it back before the next, and while the pipeline's other threads run Python, each take
# waits for one of them to yield (up to the 5 ms switch interval). Measured on the FTS5
# insert of 19k rows in 34 transactions: 0.56 s alone, 180 s beside two busy threads as
# executemany, 2.6 s as one statement per transaction.
_EACH = "SELECT value FROM json_each(?)"


def _json(values) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def clear_statements(paths: Sequence[str], *, pending_only: bool = False) -> list[tuple[str, tuple]]:
    """Statements removing every row of ``paths`` (for the manifest's own transaction), or
    only their lexical (``pending``) rows."""
    if not paths:
        return []
    params = (_json(list(paths)),)
    return [(sql, params) for sql in _delete(f"path IN ({_EACH})" + (" AND pending = 1" if pending_only else ""))]


def clear_pending(db: sqlite3.Connection) -> int:
    """Drop every lexical row (one transaction); how many there were."""
    def go() -> int:
        n = 0
        for sql in _delete("pending = 1"):
            n = db.execute(sql).rowcount  # the last statement deletes the chunk rows
        return n
    return _tx(db, go)


def _names(symbol: str | None) -> list[str]:
    from ..search.ranking.evidence import defined_names

    return sorted({n.lower() for n in defined_names(symbol or "") if n})


def add_lexical(db: sqlite3.Connection, rows: "QueryRows") -> int:
    """Add lexical rows (no vector, ``pending = 1``) of files the manifest has no record of,
    in one transaction; rows of a file it records (vouched meanwhile, or refused) are
    skipped. Returns how many rows were added."""
    def go() -> int:
        added = 0
        known: dict[str, bool] = {}
        for row, (text, _rid) in zip(rows.chunks, rows.texts):
            path = row[1]
            if path not in known:
                known[path] = db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None
            if known[path]:
                continue
            cur = db.execute("INSERT OR IGNORE INTO q_chunks(id, path, language, symbol, kind, start_line, end_line, "
                             "content, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)", row[:8])
            if cur.rowcount == 1:
                chunk = cur.lastrowid
                db.execute("INSERT INTO q_text(rowid, search_text) VALUES (?, ?)", (chunk, text))
                db.executemany("INSERT INTO q_names(name, chunk) VALUES (?, ?)", [(n, chunk) for n in _names(row[3])])
                added += 1
        return added
    return _tx(db, go)


def insert_statements(rows: "QueryRows | None") -> list[tuple[str, tuple | list]]:
    """Statements adding ``rows`` (vouched, with vectors), replacing any row of the same id:
    one statement per table (see ``_EACH``)."""
    if rows is None or not rows.chunks:
        return []
    chunks = {c[0]: c for c in rows.chunks}  # one row per id, whatever the batch holds
    texts = {rid: text for text, rid in rows.texts}
    ids = (_json(list(chunks)),)
    out: list[tuple[str, tuple | list]] = [(sql, ids) for sql in _delete(f"id IN ({_EACH})")]
    out.append(("INSERT INTO q_chunks(id, path, language, symbol, kind, start_line, end_line, content) "
                "SELECT " + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(8)) + " FROM json_each(?)",
                (_json([list(c[:8]) for c in chunks.values()]),)))
    embedded = [(rid, c[8]) for rid, c in chunks.items() if c[8] is not None]
    if embedded:
        # the vectors (one size: QueryRows.from_arrow) side by side in one blob, cut by position
        width = len(embedded[0][1])
        embedded_ids = _json([rid for rid, _ in embedded])
        out.append(("INSERT INTO q_vectors(chunk, vector) SELECT c.rowid, substr(?2, j.key * ?3 + 1, ?3) "
                    "FROM json_each(?1) j JOIN q_chunks c ON c.id = j.value",
                    (embedded_ids, b"".join(v for _, v in embedded), width)))
        out.append((FRESH_SQL, (embedded_ids,)))
    out.append(("INSERT INTO q_names(name, chunk) SELECT json_extract(j.value, '$[0]'), c.rowid "
                "FROM json_each(?) j JOIN q_chunks c ON c.id = json_extract(j.value, '$[1]')",
                (_json([[n, rid] for rid, c in chunks.items() for n in _names(c[3])]),)))
    out.append(("INSERT INTO q_text(rowid, search_text) SELECT c.rowid, json_extract(j.value, '$[0]') "
                "FROM json_each(?) j JOIN q_chunks c ON c.id = json_extract(j.value, '$[1]')",
                (_json([[texts.get(rid, ""), rid] for rid in chunks]),)))
    return out


def run_statements(db: sqlite3.Connection, statements: Iterable[tuple[str, tuple | list]]) -> None:
    """Run ``statements``: a tuple of parameters is one execution, a list of them is one each."""
    for sql, params in statements:
        if isinstance(params, list):  # rows for executemany (possibly none)
            db.executemany(sql, params)
        else:
            db.execute(sql, tuple(params))


def _create(db: sqlite3.Connection) -> None:
    for statement in DDL.split(";"):
        if statement.strip():
            db.execute(statement)


def _drop(db: sqlite3.Connection) -> None:
    for table in TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")


def ensure(db: sqlite3.Connection) -> None:
    """Create the tables (autocommit); tables of another layout are dropped and marked
    incomplete, so the next run copies them again from the chunk table."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(q_chunks)")}
    if cols and cols != _CHUNK_COLUMNS:
        _drop(db)
        db.execute("DELETE FROM meta WHERE key = ?", (META_KEY,))
    db.executescript(DDL)
    db.execute(mark_complete_if_empty())


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
    def lexical(cls, chunks, file_hash: str) -> "QueryRows":
        """Rows of a file's chunks before they have vectors (``vector`` None)."""
        from ..search.tokens import index_text
        from .schema import chunk_id

        out, texts = [], []
        for c in chunks:
            rid = chunk_id(c, file_hash)
            out.append((rid, c.path, c.language, c.symbol, c.kind, c.start_line, c.end_line, c.content, None))
            texts.append((fts_text(index_text(c.path, c.symbol or "", c.content)), rid))
        return cls(out, texts)

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


# Copying the chunk table into the tables (an index written before they existed) runs as
# several writer calls, each with the write deadline and bounded memory: reset, one call
# per batch, then mark complete. Until the mark, searches read LanceDB; a run that dies
# midway leaves the mark unset and the next run starts the copy again.

def reset(db: sqlite3.Connection) -> None:
    """Empty (recreate) the tables and mark them incomplete, in one transaction."""
    def go() -> None:
        _drop(db)  # recreated: the copy may come from another version of these tables
        _create(db)
        db.execute("DELETE FROM meta WHERE key = ?", (META_KEY,))
    _tx(db, go)


def source_columns(store) -> list[str]:
    """The chunk-table columns a copy reads (``search_text`` when the table has it)."""
    from .schema import SEARCH_TEXT

    cols = list(ROW_COLUMNS) + ["file_hash", "vector"]
    if store.table is not None and SEARCH_TEXT in store.table.schema.names:
        cols.append(SEARCH_TEXT)
    return cols


def copy_batch(db: sqlite3.Connection, batch, vouched: dict[str, str]) -> int:
    """Add the rows of one Arrow batch of the chunk table that the manifest vouches for
    (``vouched``: path → file hash), in one transaction; how many."""
    import pyarrow as pa

    part = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    keep = [i for i, (p, h) in enumerate(zip(part.column("path").to_pylist(), part.column("file_hash").to_pylist()))
            if vouched.get(p) == h]
    if not keep:
        return 0
    rows = QueryRows.from_arrow(part.take(keep))

    _tx(db, lambda: run_statements(db, insert_statements(rows)))
    return len(keep)


def mark_complete(db: sqlite3.Connection) -> None:
    _tx(db, lambda: db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (META_KEY, VERSION)))
