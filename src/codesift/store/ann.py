"""An approximate-nearest-neighbour (HNSW) index of the query tables' vectors, for big indexes.

Below :data:`MIN_ROWS` vectors a search scores every vector (a numpy product: about 1 ms
at 20k rows, 60 ms at 1M). Above it the scan grows with the index, so an index run
builds an HNSW graph of the vectors (usearch, inner product, float16) and a search asks
it for the nearest :data:`CANDIDATES` rows, then scores those exactly from the matrix.
``benchmarks/ann.py`` measures recall@10 against the exact scan. (An inverted-file index
in numpy was tried first: on hash vectors it needed to score 30% of the rows to reach
0.95 recall@10.)

The graph is derived data in a file beside the manifest (``ann-<n>.usearch``), named by
the single row of ``q_ann``, so a search opens the file its snapshot names. It tolerates
the commits that follow its build: every vector committed since is listed in
``q_ann_fresh`` (in the commit's own transaction, :mod:`.query_tables`) and scored by
every search; rows it holds that are gone are dropped from its answers. A run rebuilds
it when more than :data:`STALE_FRACTION` of the rows are fresh or gone, and drops it
when the index falls below :data:`MIN_ROWS`. A file that cannot be opened or does not
match its row is ignored by searches (they scan exactly), reported by ``verify``, and
rebuilt by the next run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("codesift.store")

MIN_ROWS = 400_000  # below this, the exact scan is fast enough (about 25 ms) and exact
STALE_FRACTION = 0.10  # rows fresh or gone since the build, past which a run rebuilds it
CANDIDATES = 100  # rows a search takes from the graph at least (then scored exactly)
MAX_CANDIDATES = 25_600  # a filter that keeps fewer than wanted among these: an exact scan
CONNECTIVITY = 16
EXPANSION_ADD = 128
# How widely a search walks the graph: at 1M hash vectors, 128 gave recall@10 0.82, 512
# 0.94, 2048 0.98 at a p99 of 28 ms (benchmarks/ann.py; the exact scan: 88 ms).
EXPANSION_SEARCH = 2048
_BATCH = 65536

DDL = """CREATE TABLE IF NOT EXISTS q_ann (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    dim INTEGER NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS q_ann_fresh (chunk INTEGER PRIMARY KEY)"""

# In the commit that adds a vector (query_tables.insert_statements): the row is fresh to
# the graph when there is one.
FRESH_SQL = ("INSERT OR IGNORE INTO q_ann_fresh(chunk) SELECT rowid FROM q_chunks WHERE id IN "
             "(SELECT value FROM json_each(?)) AND EXISTS (SELECT 1 FROM q_ann)")  # ? = a JSON array of ids


class AnnError(ValueError):
    """The stored index cannot be used (the reason says why)."""


class Ann:
    """An opened graph and the rows committed since its build (``fresh``: ascending rowids)."""

    __slots__ = ("index", "fresh", "rows")

    def __init__(self, index, fresh, rows: int) -> None:
        self.index = index
        self.fresh = fresh
        self.rows = rows

    def nearest(self, q, count: int):
        """Keys (q_chunks rowids) of about ``count`` rows nearest ``q``, best first."""
        import numpy as np

        found = self.index.search(np.asarray(q, dtype=np.float32), count)
        return np.asarray(found.keys, dtype=np.int64)


def _new_index(dim: int):
    try:
        from usearch.index import Index
    except ImportError as exc:  # a broken install: the caller records it
        raise AnnError(f"usearch cannot be imported ({exc})") from exc
    return Index(ndim=dim, metric="ip", dtype="f16", connectivity=CONNECTIVITY,
                 expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)


def _folder(db: sqlite3.Connection) -> Path:
    """The folder of the database file (the generation): where its graph files live."""
    for _seq, name, path in db.execute("PRAGMA database_list"):
        if name == "main" and path:
            return Path(os.path.realpath(path)).parent
    raise AnnError("the manifest has no file on disk")


def build_file(db: sqlite3.Connection, dim: int, dest: Path, *, threads: int = 0) -> int:
    """Add every ``q_vectors`` row (keyset pages, bounded memory) to a new graph and save
    it to ``dest`` (a temporary name, fsynced, then renamed). Returns the row count."""
    import numpy as np

    index = _new_index(dim)
    width = 2 * dim
    last, rows = -1, 0
    while True:
        page = db.execute("SELECT chunk, vector FROM q_vectors WHERE chunk > ? ORDER BY chunk LIMIT ?",
                          (last, _BATCH)).fetchall()
        if not page:
            break
        if any(len(r[1]) != width for r in page):
            raise AnnError(f"vectors of the wrong size (want {dim} float16)")
        keys = np.fromiter((r[0] for r in page), dtype=np.int64, count=len(page))
        mat = np.frombuffer(b"".join(r[1] for r in page), dtype=np.float16).reshape(len(page), dim)
        index.add(keys.astype(np.uint64), mat.astype(np.float32), threads=threads or (os.cpu_count() or 1))
        rows += len(page)
        last = int(keys[-1])
    tmp = dest.with_name(dest.name + ".tmp")
    index.save(str(tmp))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the name is durable before the row that names it commits
    finally:
        os.close(fd)
    return rows


def load(db: sqlite3.Connection, dim: int) -> Ann | None:
    """The stored graph (memory-mapped) and its fresh rows, or None when there is none;
    :class:`AnnError` when it cannot be used."""
    import numpy as np

    try:
        row = db.execute("SELECT dim, file, size, rows FROM q_ann WHERE id = 1").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None  # tables written before it existed
        raise
    if row is None:
        return None
    d, name, size, rows = row
    if d != dim:
        raise AnnError(f"the ANN index is for dimension {d}, the vectors have {dim}")
    if not isinstance(name, str) or os.sep in name or not name.startswith("ann-"):
        raise AnnError(f"the ANN index names an invalid file {name!r}")
    path = _folder(db) / name
    try:
        actual = path.stat().st_size
    except OSError as exc:
        raise AnnError(f"the ANN index file {name} cannot be read: {exc.strerror or exc}") from exc
    if actual != size:
        raise AnnError(f"the ANN index file {name} has {actual} bytes, its record says {size}")
    index = _new_index(dim)
    try:
        index.view(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise AnnError(f"the ANN index file {name} cannot be opened: {exc}") from exc
    if index.ndim != dim or len(index) != rows:
        raise AnnError(f"the ANN index file {name} holds {len(index)} x {index.ndim}, "
                       f"its record says {rows} x {dim}")
    index.expansion_search = EXPANSION_SEARCH
    fresh = np.fromiter((r[0] for r in db.execute("SELECT chunk FROM q_ann_fresh ORDER BY chunk")), dtype=np.int64)
    return Ann(index, fresh, rows)


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("ann-*.usearch*") if p.is_file())


def refresh(db: sqlite3.Connection, dim: int | None, *, min_rows: int = MIN_ROWS, changed: bool = True,
            chunks: int | None = None) -> dict:
    """Build, keep, rebuild or drop the graph for the vectors committed now (the writer's
    call after a run's last commit). Returns what it did:
    ``{"action": "none"|"kept"|"built"|"dropped", "rows", "stale"}`` (+ ``build_s``).

    A run passes its chunk count (``chunks``: every vouched chunk has a vector), so a
    small index pays a one-row read; a run that changed nothing still builds a graph that
    should exist and does not (a run that died before building it, or a damaged one) or
    that has gone stale (a run interrupted after many commits).
    Files of other builds (a crash between the file and its row) are removed."""
    from .query_tables import _tx

    folder = _folder(db)

    def decide() -> dict | None:
        for statement in DDL.split(";"):
            db.execute(statement)
        row = db.execute("SELECT file, rows FROM q_ann").fetchone()
        usable = None
        if row is not None and dim:
            try:
                usable = load(db, dim)
            except AnnError:
                usable = None
        if chunks is not None and not row and chunks < min_rows:
            return {"action": "none", "rows": None, "stale": 0}
        # every vouched chunk has a vector: the run's count saves a scan of the vectors
        n = chunks if chunks is not None else int(db.execute("SELECT count(*) FROM q_vectors").fetchone()[0])
        if not dim or n < min_rows:
            if row is not None:
                db.execute("DELETE FROM q_ann")
            db.execute("DELETE FROM q_ann_fresh")
            return {"action": "dropped" if row else "none", "rows": n, "stale": 0}
        if usable is not None:
            fresh = len(usable.fresh)
            gone = max(0, usable.rows - (n - fresh))
            if fresh + gone <= STALE_FRACTION * n:
                return {"action": "kept" if changed else "none", "rows": n, "stale": fresh + gone}
        return None

    t0 = time.monotonic()

    def go() -> dict:
        done = decide()
        if done is not None:
            return done
        # The write lock is held from the count to the row, so the graph holds exactly
        # the rows its record says (the writer is the only one who writes anyway).
        name = f"ann-{time.time_ns()}.usearch"
        rows = build_file(db, dim, folder / name)
        db.execute("INSERT OR REPLACE INTO q_ann(id, dim, file, size, rows) VALUES (1, ?, ?, ?, ?)",
                   (dim, name, (folder / name).stat().st_size, rows))
        db.execute("DELETE FROM q_ann_fresh")
        return {"action": "built", "rows": rows, "stale": 0, "build_s": round(time.monotonic() - t0, 3)}

    try:
        done = _tx(db, go)
    finally:
        _remove_unused(db, folder)  # a build that failed midway leaves its file: no row names it
    return done


def _remove_unused(db: sqlite3.Connection, folder: Path) -> None:
    """Remove the graph files no ``q_ann`` row names (never raises: it runs after the
    refresh's own outcome, which it must not mask; what it cannot remove, the next
    refresh removes)."""
    try:
        listed = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'q_ann'").fetchone() is not None
        keep = db.execute("SELECT file FROM q_ann").fetchone() if listed else None
    except sqlite3.Error as exc:
        log.warning("unused ANN files were left for the next run: the manifest could not be read (%s)", exc)
        return
    for p in files(folder):
        if keep is None or p.name != keep[0]:
            try:
                p.unlink()
            except OSError as exc:  # no row names it, so no search reads it; the next refresh retries
                log.warning("could not remove the unused ANN file %s: %s", p, exc.strerror or exc)
