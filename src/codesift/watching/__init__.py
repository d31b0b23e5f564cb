"""Keep an index fresh while files change (``codesift watch`` and ``codesift mcp --watch``)."""

from __future__ import annotations

from .loop import ChangeFilter, Watcher

__all__ = ["ChangeFilter", "Watcher"]
