"""Where the retrieval legs read from: the manifest's query tables, or the LanceDB table.

Both backends answer the same four questions with rows of the same shape (the public
columns, plus ``vector`` when asked, ``_distance`` = 1 − cosine on the vector leg and
``_score`` = BM25 on the text leg):

* ``vector_leg``: the nearest chunks by cosine;
* ``text_leg``: BM25 over the identifier-split text (:mod:`.tokens`);
* ``symbol_rows`` / ``file_rows``: chunks whose symbol or file name contains a name;
* ``rows_at``: the chunks of a file that contain a line.

:class:`TablesBackend` is the light path: SQLite (FTS5) and a numpy matrix of the
vectors, loaded once per process and reloaded when the manifest changes. It imports
neither LanceDB nor pyarrow, so a CLI search starts in a fraction of the time, and a
warm query costs a matrix product instead of a dozen round trips. On a big index (a
graph beside the tables, :mod:`codesift.store.ann`) the product covers only the rows the
graph finds nearest the query.
:class:`LanceBackend` reads the public ``chunks`` table: for indexes whose query tables
are not complete yet, and to compare the two (``CODESIFT_SEARCH_BACKEND=lance``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence

from ..errors import StoreError
from .filters import Filter, sql_str

log = logging.getLogger("codesift.search")

COLUMNS = ["id", "path", "start_line", "end_line", "symbol", "kind", "language", "content"]
BACKEND_ENV = "CODESIFT_SEARCH_BACKEND"  # "lance" forces the LanceDB backend (comparisons)
ANN_ENV = "CODESIFT_ANN"  # "off": score every vector even where an ANN index exists (comparisons)
DF_CACHE = 4096  # terms whose row counts a search backend keeps (one snapshot's)


class LanceBackend:
    name = "lance"

    def __init__(self, table, text_column: str) -> None:
        self.table = table
        self.text_column = text_column

    def fresh(self) -> bool:
        return True

    def count(self) -> int:
        return 0 if self.table is None else self.table.count_rows()

    def _filtered(self, q, flt: Filter, extra: str | None = None):
        where = flt.sql()
        if extra:
            where = extra if where is None else f"({where}) AND {extra}"
        return q.where(where, prefilter=True) if where else q

    def vector_leg(self, vector, flt: Filter, n: int, *, exclude: str | None = None) -> list[dict]:
        q = self.table.search(vector, vector_column_name="vector").metric("cosine")
        q = self._filtered(q, flt, None if exclude is None else f"id != {sql_str(exclude)}")
        return q.select(COLUMNS + ["_distance"]).limit(n).to_list()

    def text_leg(self, tokens: Sequence[str], flt: Filter, n: int, *, with_vectors: bool) -> list[dict]:
        text = " ".join(tokens)
        if not text:
            return []
        cols = COLUMNS + (["vector"] if with_vectors else []) + ["_score"]
        q = self.table.search(text, query_type="fts", fts_columns=self.text_column)
        return self._filtered(q, flt).select(cols).limit(n).to_list()

    def symbol_rows(self, names: Sequence[str], flt: Filter, limit: int) -> list[dict]:
        # LIKE's '_' matches any one character: a superset, narrowed by the caller
        ors = " OR ".join(f"lower(symbol) LIKE {sql_str('%' + x.lower() + '%')}" for x in names)
        return self._where_rows(f"({ors})", flt, limit)

    def file_rows(self, names: Sequence[str], flt: Filter, limit: int) -> list[dict]:
        files = " OR ".join(f"lower(path) LIKE {sql_str('%/' + x.lower() + '.%')} OR "
                            f"lower(path) LIKE {sql_str(x.lower() + '.%')}" for x in names)
        return self._where_rows(f"({files})", flt, limit)

    def rows_at(self, path: str, line: int) -> list[dict]:
        return (self.table.search().where(f"path = {sql_str(path)} AND start_line <= {int(line)} "
                                          f"AND end_line >= {int(line)}")
                .select(["id", "start_line", "end_line", "vector"]).limit(None).to_list())

    def _where_rows(self, cond: str, flt: Filter, limit: int) -> list[dict]:
        where = flt.sql()
        cond = cond if where is None else f"{cond} AND ({where})"
        return self.table.search().where(cond).select(COLUMNS + ["vector"]).limit(limit).to_list()


class QueryTablesError(StoreError):
    """The query tables cannot be read as they should be (the search falls back to LanceDB)."""


def _sqlite_errors(fn):
    """A SQLite failure while reading the query tables is a StoreError with one clear line."""
    import functools

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise QueryTablesError(f"reading the query tables in {self.path} failed: {exc} "
                                   "(codesift verify checks the index)", stage="search", cause=exc) from exc
    return wrapper


class TablesBackend:
    """The manifest's query tables (:mod:`codesift.store.query_tables`), read-only."""

    name = "tables"

    def __init__(self, manifest: os.PathLike | str, dim: int, *, ann: bool | None = None) -> None:
        import numpy as np

        self._np = np
        self._use_ann = os.environ.get(ANN_ENV) != "off" if ann is None else ann
        self.ann_problem: str | None = None  # why a stored ANN index is not used
        self.path = os.path.realpath(manifest)  # one generation, even if a rebuild swaps in another
        self.link = str(manifest)
        self.dim = dim
        self.db = None
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0,
                                      check_same_thread=False)
            self._version = self._data_version()
            self.db.execute("BEGIN")  # one snapshot for the matrix and the count
            try:
                self._load()
            finally:
                self.db.execute("COMMIT")
        except (sqlite3.Error, QueryTablesError) as exc:
            if self.db is not None:
                self.db.close()
            if isinstance(exc, QueryTablesError):
                raise
            raise QueryTablesError(f"cannot read the query tables in {self.path}: {exc}", stage="search",
                                   cause=exc) from exc

    # ------------------------------------------------------------------ state
    def _data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def fresh(self) -> bool:
        """False once another connection committed, or a rebuild swapped the generation."""
        try:
            return os.path.realpath(self.link) == self.path and self._data_version() == self._version
        except (OSError, sqlite3.Error):
            return False

    def _load(self) -> None:
        np = self._np
        # the fast tier's rows (no vector yet) are found by the text leg and the definitions only
        rows = self.db.execute("SELECT v.chunk, v.vector, c.path, c.language FROM q_vectors v "
                               "LEFT JOIN q_chunks c ON c.rowid = v.chunk ORDER BY v.chunk").fetchall()
        self.total = int(self.db.execute("SELECT count(*) FROM q_chunks").fetchone()[0])
        n = len(rows)
        self.rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        paths: dict[str, int] = {}
        path_of = np.fromiter((paths.setdefault(r[2] or "", len(paths)) for r in rows), dtype=np.int32, count=n)
        # (paths, path index per row, language per row): for filters and the files' mean vectors
        self._files = (list(paths), path_of, np.asarray([r[3] or "" for r in rows], dtype=object))
        blobs = [r[1] for r in rows]
        if blobs:
            # the dimension as of this snapshot: the caller's was read before it, and a first
            # run may have committed its first vectors (and recorded their size) in between
            row = self.db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
            if row and str(row[0]).isdigit():
                self.dim = int(row[0])
            elif not self.dim:
                self.dim = len(blobs[0]) // 2
        width = 2 * self.dim
        if any(len(b) != width for b in blobs):
            raise QueryTablesError(f"query tables hold vectors of the wrong size (want {self.dim} float16)",
                                   stage="search")
        # stored unit-length (query_tables.QueryRows), so the product is the cosine
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(n, self.dim)
        del blobs, rows
        # stored unit-length (query_tables.QueryRows), so the product is the cosine
        self.matrix = matrix.astype(np.float32)
        self._ann = self._open_ann() if self._use_ann and n else None
        self._centroids = None  # unit mean vector per path of self._files, on first use
        self._masks: dict[Filter, object] = {}
        self._pos: dict[int, int] | None = None
        self._df: dict[str, int] = {}  # rows of q_text holding each term (see _weighed_terms)
        self._heads: dict[str, str] = {}  # each file's head (see file_heads)

    def _open_ann(self):
        """The graph of a big index (:mod:`codesift.store.ann`) and the positions of the rows
        committed since its build (scored by every search); None without a usable one."""
        from ..store import ann

        np = self._np
        try:
            graph = ann.load(self.db, self.dim)
        except ann.AnnError as exc:
            self.ann_problem = str(exc)
            log.warning("%s: scoring every vector instead (the next codesift index rebuilds it)", exc)
            return None
        if graph is None:
            return None
        return graph, self._at(graph.fresh)

    def _at(self, rowids):
        """Positions in the matrix of those ``rowids`` it holds (the rest dropped)."""
        np = self._np
        pos = np.searchsorted(self.rowids, rowids)
        pos = np.minimum(pos, len(self.rowids) - 1)
        return pos[self.rowids[pos] == rowids]

    def _row_files(self) -> tuple:
        return self._files

    def count(self) -> int:
        return self.total

    def file_cosines(self, vector) -> dict[str, float]:
        """The cosine of ``vector`` with each file's mean chunk vector (the files with
        vectors): what a file as a whole is about. The means are computed once per load
        (tens of milliseconds at 20k rows); each query then costs one small product."""
        np = self._np
        if not len(self.rowids):
            return {}
        paths, path_of, _ = self._row_files()
        if self._centroids is None:
            # a file's chunks are committed together, so its rows are mostly one run: sum each
            # run (no copy of the matrix), then add up the runs of each file
            starts = np.flatnonzero(np.r_[True, path_of[1:] != path_of[:-1]])
            sums = np.zeros((len(paths), self.matrix.shape[1]), dtype=np.float32)
            np.add.at(sums, path_of[starts], np.add.reduceat(self.matrix, starts, axis=0))
            norms = np.linalg.norm(sums, axis=1)
            norms[norms == 0] = 1.0
            self._centroids = sums / norms[:, None]
        q = np.asarray(vector, dtype=np.float32)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        return dict(zip(paths, (self._centroids @ q).tolist()))

    @_sqlite_errors
    def file_heads(self, paths: Sequence[str]) -> dict[str, str]:
        """The head of each of ``paths`` (the start of its first chunk; '' when its first
        chunk does not start near the top of the file): where tools write a generated-code
        banner, which marks every chunk of the file. Cached for this snapshot."""
        from .ranking.priors import BANNER_LINES, HEAD_CHARS

        todo = [p for p in dict.fromkeys(paths) if p not in self._heads]
        for start in range(0, len(todo), 500):
            part = todo[start : start + 500]
            marks = ", ".join("?" * len(part))
            found = dict.fromkeys(part, "")
            for path, head in self.db.execute(
                    f"SELECT path, substr(content, 1, ?) FROM q_chunks WHERE path IN ({marks}) "
                    "AND start_line <= ? ORDER BY start_line DESC", [HEAD_CHARS, *part, BANNER_LINES]):
                found[path] = head or ""  # the last row of a path is its first chunk
            self._heads.update(found)  # cached once read whole: a failed read caches nothing
        return {p: self._heads[p] for p in paths}

    @property
    def vectors(self) -> int:
        """Rows with a vector (the rest are the fast tier's, still being embedded)."""
        return len(self.rowids)

    def _positions(self) -> dict[int, int]:
        if self._pos is None:
            self._pos = {int(r): i for i, r in enumerate(self.rowids)}
        return self._pos

    def mask(self, flt: Filter):
        """Boolean row mask of ``flt`` (None: every row), cached per filter."""
        if not flt.active:
            return None
        if flt not in self._masks:
            np = self._np
            paths, path_of, languages = self._row_files()
            keep = np.ones(len(self.rowids), dtype=bool)
            if flt.langs:
                keep &= np.isin(languages, list(flt.langs))
            test = flt.path_test()
            if test is not None and paths:
                keep &= np.fromiter((test(p) for p in paths), dtype=bool, count=len(paths))[path_of]
            self._masks[flt] = keep
        return self._masks[flt]

    # ------------------------------------------------------------------ rows
    _SELECT = "SELECT c.rowid, " + ", ".join("c." + c for c in COLUMNS) + " FROM q_chunks c"

    def _row_vector(self, rowid: int):
        """A chunk's vector from the loaded matrix (unit-length), or None: not embedded yet,
        or committed after the load (the next search reloads)."""
        i = self._positions().get(rowid)
        return None if i is None else self.matrix[i]

    def _rows(self, rowids: Sequence[int], *, with_vectors: bool) -> dict[int, dict]:
        out: dict[int, dict] = {}
        ids = list(rowids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            for r in self.db.execute(f"{self._SELECT} WHERE c.rowid IN ({marks})", part):
                row = dict(zip(COLUMNS, r[1:9]))
                if with_vectors:
                    row["vector"] = self._row_vector(r[0])
                out[r[0]] = row
        return out

    def _where_rows(self, cond: str, params: Sequence, flt: Filter, limit: int) -> list[dict]:
        """Rows (vectors included) whose chunk rowid is in the subquery ``cond``, filtered."""
        test = flt.path_test()
        langs = set(flt.langs)
        out = []
        for r in self.db.execute(f"{self._SELECT} WHERE c.rowid IN ({cond})", params):
            row = dict(zip(COLUMNS, r[1:9]))
            if (langs and row["language"] not in langs) or (test is not None and not test(row["path"])):
                continue
            row["vector"] = self._row_vector(r[0])
            out.append(row)
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ legs
    @_sqlite_errors
    def vector_leg(self, vector, flt: Filter, n: int, *, exclude: str | None = None) -> list[dict]:
        np = self._np
        if not len(self.rowids):
            return []
        q = np.asarray(vector, dtype=np.float32)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        keep = self.mask(flt)
        want = n + (1 if exclude else 0)
        found = self._probe(q, keep, want) if self._ann is not None else None
        if found is None:  # every row
            scores = self.matrix @ q  # rows are unit-length: cosines
            if keep is not None:
                scores = np.where(keep, scores, -np.inf)
            rows_at = np.arange(len(scores))
        else:
            rows_at, scores = found
        m = min(len(scores), want)
        top = np.argpartition(-scores, m - 1)[:m] if m < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        cosine = {int(rows_at[i]): float(scores[i]) for i in top if scores[i] != -np.inf}
        top = list(cosine)
        rows = self._rows([int(self.rowids[i]) for i in top], with_vectors=False)
        out = []
        for i in top:
            row = rows.get(int(self.rowids[i]))
            if row is None or row["id"] == exclude:
                continue  # gone since the load (a commit in between) or the excluded chunk
            row["_distance"] = 1.0 - cosine[i]
            out.append(row)
        return out[:n]

    def _probe(self, q, keep, want: int):
        """``(row positions, cosines)`` of the graph's nearest rows and the rows committed
        since its build, scored exactly; None when an exact scan is due: the graph's own
        live rows that pass the filter are fewer than ``want`` even after asking for more."""
        from ..store import ann

        np = self._np
        graph, fresh = self._ann
        count = max(ann.CANDIDATES, 2 * want)
        while True:
            found = self._at(graph.nearest(q, count))  # rows gone since the build are dropped here
            passing = len(found) if keep is None else int(np.count_nonzero(keep[found]))
            if passing >= min(want, len(self.rowids)):
                break
            if count >= ann.MAX_CANDIDATES or count >= graph.rows:
                return None
            count = min(4 * count, ann.MAX_CANDIDATES)
        at = np.unique(np.concatenate([found, fresh]))
        scores = self.matrix[at] @ q
        if keep is not None:
            scores = np.where(keep[at], scores, -np.inf)
        return at, scores

    @_sqlite_errors
    def text_leg(self, tokens: Sequence[str], flt: Filter, n: int, *, with_vectors: bool) -> list[dict]:
        from ..store.query_tables import fts_query, fts_terms

        terms = fts_terms(tokens)
        if not terms:
            return []
        keep = self.mask(flt)
        weighed = self._weighed_terms(terms)
        hits = self._matches(fts_query(weighed), keep, n)
        if len(hits) < n and len(weighed) < len(terms):
            # fewer rows hold the weighed terms than asked for: the rest are rows holding only
            # the left-out ones (scores of ~1e-6), in the order the whole query gives them
            hits = self._matches(fts_query(terms), keep, n)
        rows = self._rows([r for r, _ in hits], with_vectors=with_vectors)
        out = []
        for r, s in hits:
            row = rows.get(r)
            if row is not None:
                row["_score"] = s
                out.append(row)
        return out

    def _matches(self, match: str, keep, n: int) -> list[tuple[int, float]]:
        """``(rowid, BM25 score)`` of the best ``n`` rows matching ``match`` that pass ``keep``."""
        sql = "SELECT rowid, bm25(q_text) FROM q_text WHERE q_text MATCH ? ORDER BY bm25(q_text)"
        if keep is None:
            return [(int(r), -float(s)) for r, s in self.db.execute(sql + " LIMIT ?", (match, n))]
        hits: list[tuple[int, float]] = []
        where = self._positions()
        for r, s in self.db.execute(sql, (match,)):
            i = where.get(int(r))
            if i is not None and keep[i]:
                hits.append((int(r), -float(s)))
                if len(hits) >= n:
                    break
        return hits

    def _weighed_terms(self, terms: list[str]) -> list[str]:
        """``terms`` without those found in at least half the rows (all of them if that is
        every term). FTS5's ``bm25()`` gives such a term an IDF of 1e-6 (its formula's
        logarithm is 0 or below there, and it clamps), so leaving it out moves no score by
        more than ~2e-6; but every row it matches is scored and sorted. A query naming the
        project (its top directory is in most chunks' headers) or a word most chunks hold
        (``return``, ``def``) paid for that: 3-5x the text leg's time on a 28k-chunk index.
        Row counts are cached per term for this snapshot."""
        rows = self.total
        keep = []
        for t in terms:
            n = self._df.get(t)
            if n is None:
                if len(self._df) >= DF_CACHE:
                    self._df.clear()
                n = self._df[t] = int(self.db.execute("SELECT count(*) FROM q_text WHERE q_text MATCH ?",
                                                      (f'"{t}"',)).fetchone()[0])
            if 2 * n < rows:
                keep.append(t)
        return keep or terms

    @_sqlite_errors
    def symbol_rows(self, names: Sequence[str], flt: Filter, limit: int) -> list[dict]:
        """Chunks defining one of ``names`` (any case): an index seek in ``q_names``."""
        marks = ", ".join("?" * len(names))
        return self._where_rows(f"SELECT chunk FROM q_names WHERE name IN ({marks})", [x.lower() for x in names],
                                flt, limit)

    @_sqlite_errors
    def file_rows(self, names: Sequence[str], flt: Filter, limit: int) -> list[dict]:
        """Chunks of files named after one of ``names`` (``dir/Name.ext``)."""
        cond = " OR ".join("instr(lower(path), ?) > 0 OR substr(lower(path), 1, ?) = ?" for _ in names)
        params: list = []
        for x in names:
            stem = x.lower() + "."
            params += ["/" + stem, len(stem), stem]
        # paths from the manifest's files (one row per file, not per chunk) and the fast tier's
        return self._where_rows(f"SELECT rowid FROM q_chunks WHERE path IN (SELECT path FROM files WHERE "
                                f"status = 'indexed' AND ({cond}) UNION SELECT path FROM q_chunks INDEXED BY "
                                f"q_chunks_pending WHERE pending = 1 AND ({cond}))", params + params, flt, limit)

    @_sqlite_errors
    def rows_at(self, path: str, line: int) -> list[dict]:
        out = []
        for r in self.db.execute("SELECT c.id, c.start_line, c.end_line, v.vector FROM q_chunks c "
                                 "JOIN q_vectors v ON v.chunk = c.rowid WHERE c.path = ? AND c.start_line <= ? "
                                 "AND c.end_line >= ?", (path, int(line), int(line))):
            out.append({"id": r[0], "start_line": r[1], "end_line": r[2], "vector": self._vector(r[3])})
        return out

    def _vector(self, blob):
        """A stored vector as float32, or None for a fast-tier row (not embedded yet)."""
        if blob is None:
            return None
        return self._np.frombuffer(blob, dtype=self._np.float16).astype(self._np.float32)

    def close(self) -> None:
        self.db.close()
