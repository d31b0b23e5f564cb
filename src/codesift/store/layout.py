"""Where things live inside an index directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
