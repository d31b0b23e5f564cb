"""codesift: local-first semantic code search.

The public API::

    import codesift
    idx = codesift.open("path/to/repo")
    result = idx.index()                      # incremental; see IndexConfig for options
    for hit in idx.search("parse a config file", k=5):
        print(hit.path, hit.start_line, hit.score)

Everything not re-exported here is internal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import (
    CodesiftError,
    ConfigError,
    EmbedderMismatchError,
    IndexLockedError,
    InterruptedRun,
    MemoryLimitError,
    NoIndexError,
    StageError,
    StageTimeoutError,
    StallError,
    StoreError,
)

from .config import Deadlines
from .pipeline.cancel import CancelToken

if TYPE_CHECKING:
    from .embedding import Embedder
    from .pipeline.supervisor import RunResult
    from .search.hits import Hit

__version__ = "0.1.0"


class Index:
    """A codebase and its index directory."""

    def __init__(self, root: str | Path, index_dir: str | Path | None = None) -> None:
        from .config import resolve_index_dir

        self.root = Path(root).expanduser().resolve()
        self.index_dir = resolve_index_dir(self.root, index_dir)
        self._searcher = None

    def index(self, *, cancel: "CancelToken | None" = None, **options) -> "RunResult":
        """Run an incremental index (``full=True`` rebuilds a new generation beside the
        serving one). Options are IndexConfig fields (``deadlines=Deadlines(embed=30)``).

        ``cancel`` (a :class:`CancelToken`) stops the run like SIGINT. The result says
        whether a thread of the run is still running (``live_threads``, e.g. a hung
        embedder call); the writer lock stays held until it ends (``lock_released``).
        """
        from .config import IndexConfig
        from .pipeline.supervisor import run_index

        self._searcher = None
        return run_index(IndexConfig(root=self.root, index_dir=self.index_dir, **options), cancel=cancel)

    def search(self, query: str, k: int = 10, **filters) -> list["Hit"]:
        from .search.engine import open_searcher

        if self._searcher is None:
            self._searcher = open_searcher(self.root, self.index_dir)
        return self._searcher.search(query, k=k, **filters)

    def status(self) -> dict:
        from .inspection.status import collect_status

        return collect_status(self.root, self.index_dir)

    def verify(self) -> dict:
        from .inspection.verify import verify_index

        return verify_index(self.root, self.index_dir)


def open(root: str | Path = ".", index_dir: str | Path | None = None) -> Index:  # noqa: A001 - the API's name
    """The index of the tree at ``root`` (default index directory: ``root/.codesift``)."""
    return Index(root, index_dir)


__all__ = [
    "CancelToken",
    "CodesiftError",
    "Deadlines",
    "ConfigError",
    "Embedder",
    "EmbedderMismatchError",
    "Index",
    "IndexLockedError",
    "InterruptedRun",
    "MemoryLimitError",
    "NoIndexError",
    "StageError",
    "StageTimeoutError",
    "StallError",
    "StoreError",
    "open",
]


def __getattr__(name: str):
    if name == "Embedder":
        from .embedding import Embedder

        return Embedder
    raise AttributeError(name)
