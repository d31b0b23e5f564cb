"""Where things live inside an index directory.

The current generation is always reachable at the documented places, ``lancedb/``
and ``manifest.sqlite``: since generations (see :mod:`.generations`) both are
symlinks through ``current``, itself a symlink to ``generations/<id>``, so one
``os.replace`` of ``current`` swaps table and manifest together. An index written
before generations has both as plain entries; its first index run migrates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GenerationLayout:
    """One generation's own files: its manifest and its LanceDB database."""

    directory: Path

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.sqlite"

    @property
    def lancedb(self) -> Path:
        return self.directory / "lancedb"

    @property
    def name(self) -> str:
        return self.directory.name


@dataclass(frozen=True)
class IndexLayout:
    index_dir: Path

    @property
    def manifest(self) -> Path:
        return self.index_dir / "manifest.sqlite"

    @property
    def lancedb(self) -> Path:
        return self.index_dir / "lancedb"

    @property
    def generations(self) -> Path:
        return self.index_dir / "generations"

    @property
    def current_link(self) -> Path:
        """Symlink to the generation that serves (absent on an index not yet migrated)."""
        return self.index_dir / "current"

    @property
    def next_link(self) -> Path:
        """Symlink to the generation under construction, while a rebuild is unfinished."""
        return self.index_dir / "next"

    @property
    def embed_cache(self) -> Path:
        return self.index_dir / "embed-cache.sqlite"

    @property
    def lock(self) -> Path:
        return self.index_dir / "writer.lock"

    @property
    def live_status(self) -> Path:
        return self.index_dir / "live-status.json"

    @property
    def log(self) -> Path:
        return self.index_dir / "last-run.log"

    def exists(self) -> bool:
        return self.manifest.is_file()

    def ensure(self) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.index_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# codesift index: never commit it\n*\n")
