"""Search over an index: embed the query once, ask LanceDB for the nearest chunks."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, NoIndexError
from ..store.layout import IndexLayout
from ..store.manifest import Manifest
from .hits import Hit

_COLUMNS = ["id", "path", "start_line", "end_line", "symbol", "kind", "language", "content"]


class Searcher:
    def __init__(self, root: Path, index_dir: Path) -> None:
        self.root = root
        self.layout = IndexLayout(index_dir)
        if not self.layout.exists():
            raise NoIndexError("no index here; run codesift index", stage="search")
        m = Manifest(self.layout.manifest)
        try:
            meta = m.meta()
        finally:
            m.close()
        self.embedder_spec = meta.get("spec") or _configured_spec(index_dir)
        self._embedder = None
        self._table = None

    def _table_or_none(self):
        if self._table is None:
            from ..store.chunks import ChunkStore

            self._table = ChunkStore(self.layout.lancedb).table
        return self._table

    def embedder(self):
        if self._embedder is None:
            from ..embedding import load_embedder

            self._embedder = load_embedder(self.embedder_spec)
        return self._embedder

    def search(self, query: str, k: int = 10) -> list[Hit]:
        if k < 1:
            raise ConfigError("k must be >= 1")
        table = self._table_or_none()
        if table is None:
            return []
        vec = self.embedder().embed([query])[0]
        rows = (table.search(vec, vector_column_name="vector").metric("cosine").select(_COLUMNS)
                .limit(k).to_list())
        return [Hit(path=r["path"], start_line=r["start_line"], end_line=r["end_line"], symbol=r["symbol"] or "",
                    kind=r["kind"] or "", language=r["language"] or "", score=1.0 - float(r["_distance"]),
                    content=r["content"], id=r["id"]) for r in rows]


def _configured_spec(index_dir: Path) -> str:
    try:
        return json.loads((index_dir / "config.json").read_text()).get("embedder", "minilm")
    except (OSError, ValueError):
        return "minilm"


def open_searcher(root: Path, index_dir: Path) -> Searcher:
    return Searcher(root, index_dir)
