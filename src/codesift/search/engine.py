"""Search over an index: a vector leg, a full-text (BM25) leg, and the ranking layer.

Modes and what ``Hit.score`` means in each:

* ``vector``: cosine similarity between the query's and the chunk's embeddings (-1..1).
* ``text``: the BM25 score of the chunk's identifier-split text (0..; unbounded).
* ``hybrid`` (default): the candidates of both legs (``CANDIDATES`` each) and, for a query
  that names code, the chunks whose stored symbol defines that name, ranked by
  :mod:`codesift.search.ranking`: a fusion of the exact cosine (text candidates' stored
  vectors are compared with the query's) and BM25 scaled by the query's best, with weights
  that follow the query's kind, then named signals (definitions, path evidence, priors,
  file topic, file coherence, distinct files). The score is comparable within one query only.

``vector`` and ``text`` return a leg's raw order: they exist to compare the legs.

Filters (``lang``, ``path``) apply inside every leg before top-k, so a filtered search
returns ``k`` hits whenever ``k`` match.

The legs read the manifest's query tables (:mod:`.backends`: SQLite FTS5 and a numpy
matrix, no LanceDB import) when they are complete, else the LanceDB ``chunks`` table.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import CodesiftError, ConfigError, NoIndexError
from ..store.layout import IndexLayout
from .hits import Hit

log = logging.getLogger("codesift.search")

MODES = ("hybrid", "vector", "text")

CANDIDATES = 100  # per leg, before ranking (at least k): the signals can lift a chunk from deep in a leg
DEFINITIONS = 20  # at most this many chunks defining a queried name join the candidates

_FILTER_KEYS = {"lang", "path"}


class Searcher:
    def __init__(self, root: Path, index_dir: Path) -> None:
        self.root = Path(root)
        self.index_dir = Path(index_dir)
        self.layout = IndexLayout(self.index_dir)
        if not self.layout.exists():
            raise NoIndexError("no index here; run codesift index", stage="search")
        self.embedder_spec = _index_spec(self.layout)
        self._embedder = None
        self._table = None
        self._opened = False
        self._text_col = None
        self._backend = None
        self.candidates = CANDIDATES
        # ranking signals switched off (by name, see ranking.SIGNALS): for ablations only
        self.disabled_signals: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ plumbing
    def table(self):
        """The chunk table, or None before anything was written."""
        if not self._opened:
            from ..store.chunks import ChunkStore

            self._table = ChunkStore(self.layout.lancedb).table
            self._opened = True
        return self._table

    def text_column(self) -> str:
        if self._text_col is None:
            from .maintenance import text_column

            self._text_col = text_column(self.table())
        return self._text_col

    def backend(self):
        """Where the legs read: the manifest's query tables when they are complete (no LanceDB
        import), else the LanceDB table. Reopened when the index changed since."""
        if self._backend is not None and self._backend.fresh():
            return self._backend
        from . import backends
        from ..store import query_tables

        old, self._backend = self._backend, None
        if old is not None and hasattr(old, "close"):
            old.close()
        meta = _index_meta(self.layout)
        spec = meta.get("spec")
        if spec and spec != self.embedder_spec:
            # recorded since this searcher opened (it opened during a first run, before the
            # run's first commit): the index's own embedder embeds the next query
            self.embedder_spec, self._embedder = spec, None
        if os.environ.get(backends.BACKEND_ENV) != "lance" and query_tables.complete(meta):
            # no dimension yet: a first run whose fast tier is ahead of its first vectors
            dim = int(meta["dim"]) if meta.get("dim", "").isdigit() else 0
            try:
                self._backend = backends.TablesBackend(self.layout.manifest, dim)
            except backends.QueryTablesError as exc:
                log.warning("%s; searching the chunk table instead (codesift verify checks the index)",
                            exc.one_line())
        if self._backend is None:
            self._opened = False  # the LanceDB table as it is now
            self._text_col = None
            self._backend = backends.LanceBackend(self.table(), self.text_column() if self.table() else "content")
        return self._backend

    def coverage(self) -> dict:
        """What a search sees now: ``chunks`` searchable, ``vectors`` among them (fewer while
        an index run's fast tier is ahead of its embedder), and the backend read."""
        backend = self.backend()
        chunks = backend.count()
        return {"chunks": chunks, "vectors": getattr(backend, "vectors", chunks), "backend": backend.name}

    def embedder(self):
        """The embedder the index was built with: queries must be embedded by the same model."""
        if self._embedder is None:
            from ..embedding import load_embedder

            meta = _index_meta(self.layout)
            if meta.get("spec"):
                # read again here: a first run may have recorded it since the backend opened
                self.embedder_spec = meta["spec"]
            emb = load_embedder(self.embedder_spec, queries=True)
            built = meta.get("embedder")
            if built and emb.name != built:
                emb = _compatible_embedder(self.embedder_spec, built, emb)
            self._embedder = emb
        return self._embedder

    # ------------------------------------------------------------------ public
    def search(self, query: str, k: int = 10, *, mode: str = "hybrid", **filters) -> list[Hit]:
        return self.search_many([query], k=k, mode=mode, **filters)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, *, mode: str = "hybrid",
                    **filters) -> list[list[Hit]]:
        """Hits for each query, in order; the queries are embedded in one call."""
        flt = _filter(k, mode, filters)
        queries = [q if isinstance(q, str) else str(q) for q in queries]
        if not queries:
            return []
        # one backend for the whole call: a commit in between reopens it for the next call,
        # never under a query whose legs and vectors must come from the same snapshot
        backend = self.backend()
        if backend.count() == 0:
            return [[] for _ in queries]
        vectors = None
        # no vector committed yet (a first run's fast tier): the legs that need none answer,
        # without loading the model
        if mode != "text" and getattr(backend, "vectors", 1):
            todo = [i for i, q in enumerate(queries) if q.strip()]
            vectors = [None] * len(queries)
            if todo:
                from ..embedding.protocol import embed_queries

                embedded = embed_queries(self.embedder(), [queries[i] for i in todo])
                dim = getattr(backend, "dim", 0)
                if dim and len(embedded) and len(embedded[0]) != dim:
                    from ..errors import EmbedderMismatchError

                    raise EmbedderMismatchError(
                        f"the index holds {dim}-dimensional vectors but its recorded embedder "
                        f"{self.embedder_spec!r} makes {len(embedded[0])}: run codesift index to record "
                        "the embedder again, or codesift index --full to rebuild")
                for i, v in zip(todo, embedded):
                    vectors[i] = v
        out = []
        for i, q in enumerate(queries):
            if not q.strip():
                out.append([])
                continue
            out.append(self._one(backend, q, None if vectors is None else vectors[i], k, mode, flt))
        return out

    def similar(self, file: str, line: int, k: int = 10, **filters) -> list[Hit]:
        """Chunks nearest (cosine) to the chunk of ``file`` containing ``line``, itself excluded.
        ``Hit.score`` is the cosine similarity."""
        flt = _filter(k, "vector", filters)
        backend = self.backend()
        if backend.count() == 0:
            raise CodesiftError(f"nothing is indexed at {file}:{line}", stage="search")
        rel = self.relative_path(file)
        rows = backend.rows_at(rel, line)
        if not rows:
            raise CodesiftError(f"no indexed chunk contains {rel}:{line} (is the file indexed? codesift status)",
                                stage="search")
        own = min(rows, key=lambda r: (r["end_line"] - r["start_line"], r["start_line"]))
        return [_hit(r, _cos(r)) for r in backend.vector_leg(own["vector"], flt, k, exclude=own["id"])]

    def relative_path(self, path: str) -> str:
        return relative_path(self.root, path)

    # ------------------------------------------------------------------ legs
    @staticmethod
    def _text_leg(backend, query: str, flt, n: int, *, with_vectors: bool) -> list[dict]:
        from .tokens import query_text

        return backend.text_leg(query_text(query).split(), flt, n, with_vectors=with_vectors)

    @staticmethod
    def _definition_leg(backend, names: Sequence[str], flt, n: int) -> list[dict]:
        """Chunks whose stored ``symbol`` defines one of ``names`` (``Name``, ``Outer.Name``,
        ``ns::Name``), whatever either leg retrieved: the chunker's symbol table, not a text
        match. Then chunks of files named after a name (``Session.swift`` for ``Session``),
        which is where a name lives in languages chunked without a grammar. Strongest first."""
        from .ranking.evidence import defined_names, definition_tier

        names = [x for x in names if x and len(x) > 1]
        if not names:
            return []
        # a chunk that defines several names lists them as ``a, b, c``: the backends match a
        # substring (a superset), narrowed exactly here
        rows = backend.symbol_rows(names, flt, max(n * 20, 200))
        want = {x.lower() for x in names}
        rows = [r for r in rows if any(n.lower() in want for n in defined_names(r["symbol"] or ""))]
        rows.sort(key=lambda r: -max(definition_tier(r["symbol"] or "", r["kind"] or "", r["path"], x)
                                     for x in names))
        rows = rows[:n]
        seen = {r["id"] for r in rows}
        named = backend.file_rows(names, flt, n)
        return rows + [r for r in named if r["id"] not in seen]

    def _one(self, backend, query: str, vector, k: int, mode: str, flt) -> list[Hit]:
        """One query's hits; ``vector`` is None when ``backend`` holds no vector yet."""
        if mode == "vector":
            return [] if vector is None else [_hit(r, _cos(r)) for r in backend.vector_leg(vector, flt, k)]
        if mode == "text":
            return [_hit(r, float(r["_score"])) for r in self._text_leg(backend, query, flt, k, with_vectors=False)]
        from .ranking import PROSE, understand

        info = understand(query)
        n = max(k, self.candidates)
        vrows = [] if vector is None else backend.vector_leg(vector, flt, n)
        trows = self._text_leg(backend, query, flt, n, with_vectors=True)
        drows = []
        if info.kind != PROSE and "definitions" not in self.disabled_signals:
            drows = self._definition_leg(backend, info.names, flt, DEFINITIONS)
        files: dict[str, float] = {}  # the query's cosine with each file's mean vector (query tables only)
        if vector is not None and "topic" not in self.disabled_signals and hasattr(backend, "file_cosines"):
            files = backend.file_cosines(vector)
        heads: dict[str, str] = {}  # each candidate file's head (query tables only)
        if "priors" not in self.disabled_signals and hasattr(backend, "file_heads"):
            heads = backend.file_heads([r["path"] for r in (*vrows, *trows, *drows)])
        return self._rank(info, vector, vrows, trows, drows, files, k, self.disabled_signals, heads)

    @staticmethod
    def _rank(info, vector, vrows: list[dict], trows: list[dict], drows: list[dict], files: dict[str, float],
              k: int, disabled: frozenset[str], heads: dict[str, str] | None = None) -> list[Hit]:
        from .ranking import Candidate, rank
        from .ranking.priors import head_classes

        rows: dict[str, dict] = {}
        cos: dict[str, float] = {}
        for r in vrows:
            rows[r["id"]] = r
            cos[r["id"]] = _cos(r)
        missing = []
        lexical = []  # the fast tier's rows: no vector yet
        for r in list(trows) + list(drows):
            if r["id"] not in rows:
                rows[r["id"]] = r
                (missing if r.get("vector") is not None and vector is not None else lexical).append(r)
        if missing:
            import numpy as np

            qv = np.asarray(vector, dtype=np.float32)
            qn = float(np.linalg.norm(qv)) or 1.0
            mat = np.asarray([r["vector"] for r in missing], dtype=np.float32)
            norms = np.linalg.norm(mat, axis=1)
            norms[norms == 0] = 1.0
            for r, s in zip(missing, (mat @ qv) / (norms * qn)):
                cos[r["id"]] = float(s)
        if lexical:
            # a chunk not embedded yet gets the candidates' median cosine: neutral, so its
            # text evidence and the signals decide (better once its vector arrives)
            known = sorted(cos.values())
            neutral = known[len(known) // 2] if known else 0.0
            for r in lexical:
                cos[r["id"]] = neutral
        best = max((float(r["_score"]) for r in trows), default=0.0) or 1.0
        bm = {r["id"]: float(r["_score"]) / best for r in trows}
        classes = {p: head_classes(h) for p, h in (heads or {}).items()}
        cands = [Candidate(rows[i], cos[i], bm.get(i, 0.0), files.get(rows[i]["path"]),
                           classes.get(rows[i]["path"], frozenset())) for i in rows]
        return [_hit(c.row, c.score) for c in rank(info, cands, k, disabled)]


def _cos(row: dict) -> float:
    return 1.0 - float(row["_distance"])


def _hit(r: dict, score: float) -> Hit:
    if math.isnan(score):
        score = 0.0
    return Hit(path=r["path"], start_line=int(r["start_line"]), end_line=int(r["end_line"]),
               symbol=r["symbol"] or "", kind=r["kind"] or "", language=r["language"] or "",
               score=round(score, 6), content=r["content"] or "", id=r["id"])


def _filter(k: int, mode: str, filters: dict):
    if not isinstance(k, int) or k < 1:
        raise ConfigError("k must be an integer >= 1")
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    unknown = set(filters) - _FILTER_KEYS
    if unknown:
        raise ConfigError(f"unknown search filter(s): {', '.join(sorted(unknown))} (use lang=, path=)")
    from .filters import Filter

    return Filter.of(lang=filters.get("lang"), path=filters.get("path"))


def _index_meta(layout: IndexLayout) -> dict[str, str]:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{layout.manifest}?mode=ro", uri=True, timeout=5.0)
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def _compatible_embedder(spec: str, built: str, loaded):
    """An embedder producing ``built``'s vectors, or EmbedderMismatchError."""
    from ..errors import EmbedderMismatchError

    if spec == "minilm":
        from ..embedding import minilm

        if built == getattr(minilm, "SHIPPED_NAME", None):
            emb = minilm.MiniLMEmbedder(threads=1, quantize=False, queries=True)  # an index built before the per-channel model
            if emb.name == built:
                return emb
    raise EmbedderMismatchError(
        f"this index was built with embedder {built}; {spec!r} now loads {loaded.name}. "
        "Rebuild it: codesift index --full", stage="search")


def _index_spec(layout: IndexLayout) -> str:
    """The embedder spec the index was built with (manifest), else config.json, else minilm."""
    spec = _index_meta(layout).get("spec")
    if spec:
        return spec
    try:
        return json.loads((layout.index_dir / "config.json").read_text()).get("embedder", "minilm")
    except (OSError, ValueError):
        return "minilm"


def relative_path(root: Path, path: str) -> str:
    """``path`` as stored: POSIX and relative to the root (given relative to the cwd, to
    the root, or absolute)."""
    p = Path(path).expanduser()
    for base in ([] if p.is_absolute() else [Path.cwd()]) + [None]:
        full = (base / p if base is not None else p).resolve()
        try:
            rel = full.relative_to(Path(root).resolve())
        except ValueError:
            continue
        if full.exists() or base is None:
            return rel.as_posix()
    return p.as_posix()  # relative to the root as given (pathlib already dropped a leading "./")


def index_key(index_dir: Path) -> tuple:
    """Changes whenever an index run commits (the manifest and its WAL are written last)
    or a rebuild swaps in another generation (another file behind the link)."""
    key = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(f"{Path(index_dir) / 'manifest.sqlite'}{suffix}")
            key.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            key.append(None)
    return tuple(key)


def reopen_searcher(root: Path, index_dir: Path, embedders: dict) -> Searcher:
    """A searcher over the index as it is now, with the model already loaded for its
    embedder spec when ``embedders`` holds one (a long-lived process loads it once)."""
    searcher = open_searcher(root, index_dir)
    searcher._embedder = embedders.get(searcher.embedder_spec)
    return searcher


def remember_embedder(searcher: Searcher, embedders: dict) -> None:
    """Keep ``searcher``'s loaded model for the searchers that replace it."""
    if searcher._embedder is not None and searcher.embedder_spec:
        embedders[searcher.embedder_spec] = searcher._embedder


def open_searcher(root: Path, index_dir: Path) -> Searcher:
    return Searcher(root, index_dir)

