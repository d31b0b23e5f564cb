"""The LanceDB ``chunks`` table. ``lancedb`` is imported only when a table is touched."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import StoreError
from .schema import TABLE_NAME, arrow_schema

_DELETE_BATCH = 256


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def path_predicate(paths: Iterable[str]) -> str:
    return "path IN (" + ", ".join(_quote(p) for p in paths) + ")"


def _import_lancedb():
    # Lance logs through Rust's env_logger; its warnings ("No existing dataset ...")
    # are not for our users.
    os.environ.setdefault("LANCE_LOG", "error")
    import lancedb

    return lancedb


class ChunkStore:
    """The chunk table of one generation. ``writer``: the run holding the writer lock, the
    only one that may clear a table whose creation was interrupted (see :meth:`_never_committed`)."""

    def __init__(self, uri: Path | str, *, writer: bool = False) -> None:
        # Resolved once: ``lancedb`` is a link through ``current``, and a store opened on
        # one generation must keep reading that generation even if a rebuild swaps it.
        self.uri = os.path.realpath(uri)
        try:
            self._db = _import_lancedb().connect(self.uri)
            self._table = None
            if self._exists():
                if not self._never_committed():
                    self._table = self._db.open_table(TABLE_NAME)
                elif writer:
                    self._clear_uncommitted()
        except Exception as exc:  # translated at the boundary: any backend failure is a StoreError
            raise StoreError(f"cannot open chunk table at {self.uri}: {exc}", stage="store", cause=exc) from exc

    def _exists(self) -> bool:
        return TABLE_NAME in self._db.list_tables().tables

    def _table_dir(self) -> Path:
        return Path(self.uri) / f"{TABLE_NAME}.lance"

    def _never_committed(self) -> bool:
        """True for a table directory without a single committed version: a run killed while
        LanceDB created the table leaves one (listed, but it cannot be opened). No row was
        ever in it, so it counts as no table."""
        table_dir = self._table_dir()
        if not table_dir.is_dir():
            return False  # not laid out as expected: let LanceDB open it (or say why not)
        versions = table_dir / "_versions"
        try:
            return not any(versions.iterdir())
        except FileNotFoundError:
            return True

    def _clear_uncommitted(self) -> None:
        import logging
        import shutil

        logging.getLogger("codesift.store").warning(
            "the chunk table's creation was interrupted (no committed version): creating it again")
        shutil.rmtree(self._table_dir())

    @property
    def table(self):
        return self._table

    def ensure_table(self, dim: int) -> None:
        if self._table is None:
            self._table = self._db.create_table(TABLE_NAME, schema=arrow_schema(dim), exist_ok=True)

    def dim(self) -> int | None:
        if self._table is None:
            return None
        return self._table.schema.field("vector").type.list_size

    def count(self) -> int:
        return 0 if self._table is None else self._table.count_rows()

    def delete_paths(self, paths: list[str]) -> None:
        if self._table is None or not paths:
            return
        for i in range(0, len(paths), _DELETE_BATCH):
            self._table.delete(path_predicate(paths[i : i + _DELETE_BATCH]))

    def replace(self, delete_paths: list[str], rows) -> None:
        """Delete every row of ``delete_paths``, then add ``rows`` (an Arrow table)."""
        self.delete_paths(delete_paths)
        if rows is not None and rows.num_rows:
            self._table.add(rows)

    def scan(self, columns: list[str], where: str | None = None):
        """Arrow table of ``columns`` for all (or filtered) rows."""
        import pyarrow as pa

        if self._table is None:
            return pa.table({c: [] for c in columns})
        query = self._table.search().select(columns)
        if where:
            query = query.where(where)
        return query.limit(None).to_arrow()

    def scan_batches(self, columns: list[str], batch_rows: int):
        """Arrow record batches of ``columns`` for all rows, at most ``batch_rows`` each, read
        lazily: memory stays bounded by one batch (the vector column included)."""
        if self._table is None:
            return iter(())
        try:
            return iter(self._table.search().select(columns).limit(None).to_batches(batch_rows))
        except (AttributeError, TypeError, NotImplementedError):  # an older LanceDB without to_batches
            return iter(self.scan(columns).to_batches(batch_rows))

    def drop(self) -> None:
        if self._exists():
            self._db.drop_table(TABLE_NAME)
        self._table = None
