"""The transactional manifest: what is durably indexed, and what is in flight.

SQLite in WAL mode, so readers (``search``, ``status``, ``verify``) never block the
writer. The write protocol that makes a crash at any instant recoverable:

1. ``begin_write(paths)`` records the paths in ``journal`` and commits.
2. The chunk rows of those paths are replaced in LanceDB.
3. ``commit_files(...)`` updates ``files`` and clears those journal entries in one
   transaction.

A journal entry found at start-up therefore means "rows for this path may be
anything": :meth:`Manifest.pending_paths` lists them, the store deletes their rows,
and :meth:`Manifest.forget` drops their file records so the run indexes them again.
A file is never recorded as indexed before its rows are committed.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError
from . import query_tables

SCHEMA_VERSION = 1

STATUS_INDEXED = "indexed"
STATUS_SKIPPED = "skipped"  # refused on purpose: binary, too large, not a regular file, ...
STATUS_ERROR = "error"  # a problem with the file: unreadable, vanished, undecodable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    file_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    language TEXT,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (path TEXT PRIMARY KEY, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    summary TEXT
);
"""


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    file_hash: str
    chunk_count: int
    status: str
    reason: str | None
    language: str | None
    indexed_at: float


class Manifest:
    def __init__(self, path: Path, *, readonly: bool = False, timeout_s: float = 30.0) -> None:
        self.path = path
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s,
                                           check_same_thread=False, isolation_level=None)
            else:
                self._db = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False,
                                           isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._set_default("schema_version", str(SCHEMA_VERSION))
                query_tables.ensure(self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open manifest {path}: {exc}", stage="store", cause=exc) from exc

    # -- plumbing ---------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def _tx(self, statements: Iterable[tuple[str, Iterable]]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                query_tables.run_statements(self._db, statements)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT (disk full) leaves it open
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"manifest write failed: {exc}", stage="write", cause=exc) from exc

    def _set_default(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- meta -------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: str) -> None:
        self._tx([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   [(k, str(v)) for k, v in values.items()])])

    # -- files ------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, file_hash, chunk_count, status, reason, language, indexed_at FROM files"
        ).fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def iter_files(self, status: str | None = None) -> Iterator[FileRecord]:
        sql = "SELECT path, size, mtime_ns, file_hash, chunk_count, status, reason, language, indexed_at FROM files"
        cur = self._db.execute(sql + (" WHERE status = ?" if status else "") + " ORDER BY path",
                               (status,) if status else ())
        for r in cur:
            yield FileRecord(*r)

    def counts(self) -> dict[str, int]:
        out = {STATUS_INDEXED: 0, STATUS_SKIPPED: 0, STATUS_ERROR: 0, "chunks": 0}
        for status, n, chunks in self._db.execute(
            "SELECT status, COUNT(*), COALESCE(SUM(chunk_count), 0) FROM files GROUP BY status"
        ):
            out[status] = n
            out["chunks"] += chunks
        return out

    def languages(self) -> dict[str, int]:
        return dict(self._db.execute(
            "SELECT language, COUNT(*) FROM files WHERE status = 'indexed' GROUP BY language ORDER BY 2 DESC"
        ).fetchall())

    def record_outcomes(self, records: list[FileRecord]) -> None:
        """Files that hold no rows (skipped, errors) or whose stat changed but content did not."""
        if not records:
            return
        self._tx([(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(_record_values(r)) for r in records],
        )])

    def begin_write(self, paths: list[str]) -> None:
        if paths:
            now = time.time()
            self._tx([("INSERT OR REPLACE INTO journal(path, started_at) VALUES (?, ?)",
                       [(p, now) for p in paths])])

    def commit_files(self, records: list[FileRecord], removed: list[str] = (), *,
                     replaced: Iterable[str] = (), rows: "query_tables.QueryRows | None" = None) -> None:
        """Vouch for rows just committed to the chunk table, and clear their journal entries.

        ``replaced``: the paths whose rows the chunk table just replaced (deleted, then
        ``rows`` added); the query tables follow in the same transaction."""
        statements: list[tuple[str, Iterable]] = []
        # the fast tier's lexical rows of these files give way to what is vouched for now
        statements.extend(query_tables.clear_statements(sorted({r.path for r in records} - set(replaced)),
                                                        pending_only=True))
        statements.extend(query_tables.clear_statements(sorted(set(replaced) | set(removed))))
        statements.extend(query_tables.insert_statements(rows))
        if records:
            statements.append(("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               [tuple(_record_values(r)) for r in records]))
            statements.append(("DELETE FROM journal WHERE path = ?", [(r.path,) for r in records]))
        if removed:
            statements.append(("DELETE FROM files WHERE path = ?", [(p,) for p in removed]))
            statements.append(("DELETE FROM journal WHERE path = ?", [(p,) for p in removed]))
        if statements:
            self._tx(statements)

    def pending_paths(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT path FROM journal ORDER BY path")]

    def forget(self, paths: list[str]) -> None:
        """Drop file records and journal entries: those files will be indexed again."""
        if paths:
            self._tx([("DELETE FROM files WHERE path = ?", [(p,) for p in paths]),
                      ("DELETE FROM journal WHERE path = ?", [(p,) for p in paths])]
                     + query_tables.clear_statements(paths))

    def reset(self) -> list[str]:
        """For ``--full``: journal every known path and clear all file records, atomically."""
        paths = [r[0] for r in self._db.execute("SELECT path FROM files")]
        now = time.time()
        self._tx([("INSERT OR REPLACE INTO journal(path, started_at) VALUES (?, ?)", [(p, now) for p in paths]),
                  ("DELETE FROM files", ()),
                  *((f"DELETE FROM {table}", ()) for table in query_tables.TABLES),
                  ("DELETE FROM meta WHERE key IN ('embedder', 'dim')", ())])
        return paths

    def reset_query_tables(self) -> None:
        """Start a copy of the chunk table into the query tables (see :mod:`.query_tables`)."""
        self._query_call(query_tables.reset, self._db)

    def copy_query_rows(self, batch, vouched: dict[str, str]) -> int:
        return self._query_call(query_tables.copy_batch, self._db, batch, vouched)

    def mark_query_tables_complete(self) -> None:
        self._query_call(query_tables.mark_complete, self._db)

    @staticmethod
    def _query_call(fn, *args):
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise StoreError(f"manifest write failed: {exc}", stage="write", cause=exc) from exc

    def refresh_ann(self, dim: int | None, min_rows: int, *, changed: bool = True, chunks: int | None = None) -> dict:
        """Build, keep, rebuild or drop the vectors' ANN index (see :mod:`.ann`)."""
        from . import ann

        try:
            return self._query_call(functools.partial(ann.refresh, changed=changed, chunks=chunks, min_rows=min_rows),
                                    self._db, dim)
        except (ann.AnnError, OSError, RuntimeError) as exc:  # RuntimeError: usearch's own
            raise StoreError(f"building the ANN graph failed: {exc}", stage="write", cause=exc) from exc

    def ann_problem(self, dim: int | None) -> str | None:
        """Why the stored ANN index cannot be used (None: usable, or none stored)."""
        from . import ann

        if dim is None:
            return None
        try:
            ann.load(self._db, dim)
        except ann.AnnError as exc:
            return f"the ANN index cannot be used: {exc} (searches scan every vector; the next run rebuilds it)"
        except sqlite3.Error as exc:
            return f"the ANN index cannot be read: {exc}"
        return None

    def add_lexical(self, rows: "query_tables.QueryRows") -> int:
        """The fast tier: rows of files not recorded yet, searchable before their vectors."""
        return self._query_call(query_tables.add_lexical, self._db, rows)

    def clear_lexical(self) -> int:
        """Drop the fast tier's rows that no commit replaced (at a run's start and end)."""
        return self._query_call(query_tables.clear_pending, self._db)

    def query_rows(self) -> list[tuple[str, str, str, int]] | None:
        """``(id, path, content, vector bytes)`` of every query-table row, or None when the
        tables are not complete (see :mod:`.query_tables`)."""
        if not query_tables.complete(self.meta()):
            return None
        try:
            return self._db.execute("SELECT c.id, c.path, c.content, length(v.vector) FROM q_chunks c "
                                    "LEFT JOIN q_vectors v ON v.chunk = c.rowid WHERE c.pending = 0").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the query tables: {exc}", stage="store", cause=exc) from exc

    def clear_journal(self) -> None:
        self._tx([("DELETE FROM journal", ())])

    # -- runs -------------------------------------------------------------------
    def close_crashed_runs(self) -> int:
        """Mark runs that never finished (their process died) as crashed; return how many.

        Only the lock holder calls this, so no other run can still be alive.
        """
        try:
            cur = self._db.execute("UPDATE runs SET status = 'crashed' WHERE status = 'running'")
        except sqlite3.Error as exc:
            raise StoreError(f"manifest write failed: {exc}", stage="write", cause=exc) from exc
        return cur.rowcount

    def start_run(self) -> int:
        try:
            cur = self._db.execute("INSERT INTO runs(started_at, status) VALUES (?, 'running')", (time.time(),))
        except sqlite3.Error as exc:
            raise StoreError(f"manifest write failed: {exc}", stage="write", cause=exc) from exc
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, summary: dict) -> None:
        self._tx([("UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                   (time.time(), status, json.dumps(summary), run_id))])

    def last_run(self) -> dict | None:
        row = self._db.execute(
            "SELECT started_at, finished_at, status, summary FROM runs WHERE status != 'running' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"started_at": row[0], "finished_at": row[1], "status": row[2],
                "summary": json.loads(row[3]) if row[3] else None}


def _record_values(r: FileRecord) -> list:
    return [r.path, r.size, r.mtime_ns, r.file_hash, r.chunk_count, r.status, r.reason, r.language, r.indexed_at]
