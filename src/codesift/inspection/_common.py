"""Helpers shared by the inspection commands (status, verify, doctor)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import NoIndexError, StoreError
from ..store.layout import IndexLayout
from ..store.manifest import Manifest


def require_index(index_dir: Path, stage: str) -> IndexLayout:
    layout = IndexLayout(Path(index_dir))
    if not layout.exists():
        raise NoIndexError("no index here; run codesift index", stage=stage)
    return layout


def open_manifest(layout: IndexLayout) -> Manifest:
    """A read-only manifest connection; a normal one when read-only cannot be used.

    A read-only SQLite connection to a WAL database needs the ``-shm`` file (or a
    writable directory to create it); when that fails we fall back to an ordinary
    connection, which in WAL mode still never blocks the writer for reads.
    """
    try:
        m = Manifest(layout.manifest, readonly=True)
        m.meta()  # read-only failures surface on the first query, not on connect
        return m
    except (StoreError, sqlite3.Error):
        pass
    try:
        m = Manifest(layout.manifest)
        m.meta()
        return m
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read manifest {layout.manifest}: {exc}", stage="store", cause=exc) from exc


def du(path: Path) -> int:
    """Bytes used by the files under ``path`` (apparent size; links not followed)."""
    from ..store.generations import du as _du

    return _du(path)
