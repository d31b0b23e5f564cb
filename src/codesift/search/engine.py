"""Search over an index: a vector leg, a full-text (BM25) leg, and the ranking layer.

Modes and what ``Hit.score`` means in each:

* ``vector``: cosine similarity between the query's and the chunk's embeddings (-1..1).
* ``text``: the BM25 score of the chunk's identifier-split text (0..; unbounded).
* ``hybrid`` (default): the candidates of both legs (``CANDIDATES`` each) and, for a query
  that names code, the chunks whose stored symbol defines that name, ranked by
  :mod:`codesift.search.ranking`: a fusion of the exact cosine (text candidates' stored
  vectors are compared with the query's) and BM25 scaled by the query's best, with weights
  that follow the query's kind, then named signals (definitions, path evidence, priors,
  file coherence, distinct files). The score is comparable within one query only.

``vector`` and ``text`` return a leg's raw order: they exist to compare the legs.

Filters (``lang``, ``path``) are SQL predicates applied inside every leg before top-k
(``prefilter=True``), so a filtered search returns ``k`` hits whenever ``k`` match.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from ..errors import CodesiftError, ConfigError, NoIndexError
from ..store.layout import IndexLayout
from .hits import Hit

MODES = ("hybrid", "vector", "text")
_COLUMNS = ["id", "path", "start_line", "end_line", "symbol", "kind", "language", "content"]

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

    def embedder(self):
        """The embedder the index was built with: queries must be embedded by the same model."""
        if self._embedder is None:
            from ..embedding import load_embedder

            emb = load_embedder(self.embedder_spec)
            built = _index_meta(self.layout).get("embedder")
            if built and emb.name != built:
                emb = _compatible_embedder(self.embedder_spec, built, emb)
            self._embedder = emb
        return self._embedder

    def _empty(self) -> bool:
        table = self.table()
        return table is None or table.count_rows() == 0

    # ------------------------------------------------------------------ public
    def search(self, query: str, k: int = 10, *, mode: str = "hybrid", **filters) -> list[Hit]:
        return self.search_many([query], k=k, mode=mode, **filters)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, *, mode: str = "hybrid",
                    **filters) -> list[list[Hit]]:
        """Hits for each query, in order; the queries are embedded in one call."""
        where = _where(k, mode, filters)
        queries = [q if isinstance(q, str) else str(q) for q in queries]
        if not queries:
            return []
        if self._empty():
            return [[] for _ in queries]
        vectors = None
        if mode != "text":
            todo = [i for i, q in enumerate(queries) if q.strip()]
            vectors = [None] * len(queries)
            if todo:
                from ..embedding.protocol import embed_queries

                embedded = embed_queries(self.embedder(), [queries[i] for i in todo])
                for i, v in zip(todo, embedded):
                    vectors[i] = v
        out = []
        for i, q in enumerate(queries):
            if not q.strip():
                out.append([])
                continue
            out.append(self._one(q, None if vectors is None else vectors[i], k, mode, where))
        return out

    def similar(self, file: str, line: int, k: int = 10, **filters) -> list[Hit]:
        """Chunks nearest (cosine) to the chunk of ``file`` containing ``line``, itself excluded.
        ``Hit.score`` is the cosine similarity."""
        from .filters import sql_str

        where = _where(k, "vector", filters)
        table = self.table()
        if table is None:
            raise CodesiftError(f"nothing is indexed at {file}:{line}", stage="search")
        rel = self.relative_path(file)
        rows = (table.search().where(f"path = {sql_str(rel)} AND start_line <= {int(line)} "
                                     f"AND end_line >= {int(line)}")
                .select(["id", "start_line", "end_line", "vector"]).limit(None).to_list())
        if not rows:
            raise CodesiftError(f"no indexed chunk contains {rel}:{line} (is the file indexed? codesift status)",
                                stage="search")
        own = min(rows, key=lambda r: (r["end_line"] - r["start_line"], r["start_line"]))
        excl = f"id != {sql_str(own['id'])}"
        where = excl if where is None else f"({where}) AND {excl}"
        return [_hit(r, _cos(r)) for r in self._vector_leg(own["vector"], where, k)]

    def relative_path(self, path: str) -> str:
        """``path`` as stored: POSIX and relative to the root (given relative to the cwd,
        to the root, or absolute)."""
        p = Path(path).expanduser()
        for base in ([] if p.is_absolute() else [Path.cwd()]) + [None]:
            full = (base / p if base is not None else p).resolve()
            try:
                rel = full.relative_to(self.root.resolve())
            except ValueError:
                continue
            if full.exists() or base is None:
                return rel.as_posix()
        return p.as_posix().lstrip("./") if not p.is_absolute() else p.as_posix()

    # ------------------------------------------------------------------ legs
    def _vector_leg(self, vector, where: str | None, n: int) -> list[dict]:
        q = self.table().search(vector, vector_column_name="vector").metric("cosine")
        if where:
            q = q.where(where, prefilter=True)
        return q.select(_COLUMNS + ["_distance"]).limit(n).to_list()

    def _text_leg(self, query: str, where: str | None, n: int, *, with_vectors: bool) -> list[dict]:
        from .tokens import query_text

        text = query_text(query)
        if not text:
            return []
        cols = _COLUMNS + (["vector"] if with_vectors else []) + ["_score"]
        q = self.table().search(text, query_type="fts", fts_columns=self.text_column())
        if where:
            q = q.where(where, prefilter=True)
        return q.select(cols).limit(n).to_list()

    def _definition_leg(self, names: Sequence[str], where: str | None, n: int) -> list[dict]:
        """Chunks whose stored ``symbol`` defines one of ``names`` (``Name``, ``Outer.Name``,
        ``ns::Name``), whatever either leg retrieved: the chunker's symbol table, not a text
        match. Then chunks of files named after a name (``Session.swift`` for ``Session``),
        which is where a name lives in languages chunked without a grammar. Strongest first."""
        from .filters import sql_str
        from .ranking.evidence import defined_names, definition_tier

        names = [x for x in names if x and len(x) > 1]
        if not names:
            return []
        # LIKE's '_' matches any one character: a superset, narrowed exactly below
        # (a chunk that defines several names lists them as ``a, b, c``: hence the trailing %)
        ors = " OR ".join(f"lower(symbol) LIKE {sql_str('%' + x.lower() + '%')}" for x in names)
        cond = f"({ors})" if where is None else f"({ors}) AND ({where})"
        rows = (self.table().search().where(cond).select(_COLUMNS + ["vector"])
                .limit(max(n * 20, 200)).to_list())
        want = {x.lower() for x in names}
        rows = [r for r in rows if any(n.lower() in want for n in defined_names(r["symbol"] or ""))]
        rows.sort(key=lambda r: -max(definition_tier(r["symbol"] or "", r["kind"] or "", r["path"], x)
                                     for x in names))
        rows = rows[:n]
        files = " OR ".join(f"lower(path) LIKE {sql_str('%/' + x.lower() + '.%')} OR "
                            f"lower(path) LIKE {sql_str(x.lower() + '.%')}" for x in names)
        cond = f"({files})" if where is None else f"({files}) AND ({where})"
        seen = {r["id"] for r in rows}
        named = (self.table().search().where(cond).select(_COLUMNS + ["vector"]).limit(n).to_list())
        return rows + [r for r in named if r["id"] not in seen]

    def _one(self, query: str, vector, k: int, mode: str, where: str | None) -> list[Hit]:
        if mode == "vector":
            return [_hit(r, _cos(r)) for r in self._vector_leg(vector, where, k)]
        if mode == "text":
            return [_hit(r, float(r["_score"])) for r in self._text_leg(query, where, k, with_vectors=False)]
        from .ranking import PROSE, understand

        info = understand(query)
        n = max(k, self.candidates)
        vrows = self._vector_leg(vector, where, n)
        trows = self._text_leg(query, where, n, with_vectors=True)
        drows = []
        if info.kind != PROSE and "definitions" not in self.disabled_signals:
            drows = self._definition_leg(info.names, where, DEFINITIONS)
        return self._rank(info, vector, vrows, trows, drows, k)

    def _rank(self, info, vector, vrows: list[dict], trows: list[dict], drows: list[dict],
              k: int) -> list[Hit]:
        from .ranking import Candidate, rank

        rows: dict[str, dict] = {}
        cos: dict[str, float] = {}
        for r in vrows:
            rows[r["id"]] = r
            cos[r["id"]] = _cos(r)
        missing = []
        for r in list(trows) + list(drows):
            if r["id"] not in rows:
                rows[r["id"]] = r
                missing.append(r)
        if missing:
            import numpy as np

            qv = np.asarray(vector, dtype=np.float32)
            qn = float(np.linalg.norm(qv)) or 1.0
            mat = np.asarray([r["vector"] for r in missing], dtype=np.float32)
            norms = np.linalg.norm(mat, axis=1)
            norms[norms == 0] = 1.0
            for r, s in zip(missing, (mat @ qv) / (norms * qn)):
                cos[r["id"]] = float(s)
        best = max((float(r["_score"]) for r in trows), default=0.0) or 1.0
        bm = {r["id"]: float(r["_score"]) / best for r in trows}
        cands = [Candidate(rows[i], cos[i], bm.get(i, 0.0)) for i in rows]
        return [_hit(c.row, c.score) for c in rank(info, cands, k, self.disabled_signals)]


def _cos(row: dict) -> float:
    return 1.0 - float(row["_distance"])


def _hit(r: dict, score: float) -> Hit:
    if math.isnan(score):
        score = 0.0
    return Hit(path=r["path"], start_line=int(r["start_line"]), end_line=int(r["end_line"]),
               symbol=r["symbol"] or "", kind=r["kind"] or "", language=r["language"] or "",
               score=round(score, 6), content=r["content"] or "", id=r["id"])


def _where(k: int, mode: str, filters: dict) -> str | None:
    if not isinstance(k, int) or k < 1:
        raise ConfigError("k must be an integer >= 1")
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    unknown = set(filters) - _FILTER_KEYS
    if unknown:
        raise ConfigError(f"unknown search filter(s): {', '.join(sorted(unknown))} (use lang=, path=)")
    from .filters import where_clause

    return where_clause(lang=filters.get("lang"), path=filters.get("path"))


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
            emb = minilm.MiniLMEmbedder(quantize=False)  # an index built before the per-channel model
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


def open_searcher(root: Path, index_dir: Path) -> Searcher:
    return Searcher(root, index_dir)

