"""What the writer commits for one file, and the one function both engines use to make it.

The local engine and the Ray strategy reach a file's outcome differently (a task per
stage, or a Ray dataset), but the mapping from an outcome to the write item (which
record, whether old rows go) lives here only, so the two cannot disagree on what a
skipped file, an unchanged file or a chunking failure leaves in the index.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..models import FileWork
from ..store.manifest import STATUS_ERROR, STATUS_SKIPPED, FileRecord
from . import stages

UNCHANGED = "unchanged"


@dataclass
class WriteItem:
    """One file's outcome, ready to commit: new rows, a no-row record, or a removal."""

    path: str
    record: FileRecord | None  # None: the file is gone (or its rows are not embedded yet)
    work: FileWork | None = None  # chunks and vectors to write
    delete_old: bool = False  # the file had rows that must go first
    old_chunks: int = 0

    @property
    def chunk_count(self) -> int:
        return len(self.work.chunks) if self.work else 0


def outcome_item(path: str, outcome: stages.ReadOutcome, prev: FileRecord | None,
                 work: FileWork | None = None) -> WriteItem:
    """The write item for a file's read (and, for text, chunk) outcome.

    ``unchanged``: the record with the new stat. ``skipped``/``error``: a no-row record,
    the old rows deleted. Text: ``work`` (its chunks); the record is set once every
    chunk has its vector (:func:`complete`).
    """
    old = prev.chunk_count if prev else 0
    if outcome.kind == UNCHANGED:
        return WriteItem(path, dataclasses.replace(prev, size=outcome.size, mtime_ns=outcome.mtime_ns))
    if outcome.kind in (STATUS_SKIPPED, STATUS_ERROR):
        return WriteItem(path, stages.outcome_record(path, outcome), delete_old=old > 0, old_chunks=old)
    item = WriteItem(path, None, work=work, delete_old=old > 0, old_chunks=old)
    if work is not None and work.embedded == len(work.chunks):
        complete(item)
    return item


def complete(item: WriteItem) -> WriteItem:
    """Vouch for a text file whose chunks are all embedded: its indexed record."""
    w = item.work
    item.record = stages.indexed_record(item.path, w.entry.size, w.entry.mtime_ns, w.file_hash, len(w.chunks),
                                        w.language, w.note)
    return item
