"""Plain records passed between the pipeline stages.

They are deliberately engine-agnostic: the local supervisor and the Ray engine move
exactly these values between the same stage functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file found by discovery that is a candidate for indexing."""

    path: str  # POSIX, relative to the root
    abspath: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A path that discovery or reading refused, with the reason the user sees."""

    path: str
    reason: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous run of whole lines of one file.

    ``content`` is exactly lines ``start_line..end_line`` (1-based, inclusive) of the
    decoded file, line endings included.
    """

    path: str
    language: str
    symbol: str
    kind: str
    start_line: int
    end_line: int
    content: str


@dataclass(frozen=True, slots=True)
class ChunkingResult:
    """The chunks of one file, and a note when the chunker had to degrade.

    ``note`` is set when the syntax tree could not be used (parse failure, parse
    deadline) and line windows were used instead, or when a single line exceeds the
    embedder's token limit. It is recorded in the manifest and shown to the user.
    """

    language: str
    chunks: list[Chunk]
    note: str | None = None


@dataclass(slots=True)
class FileWork:
    """One file travelling through read → chunk → embed → write."""

    entry: FileEntry
    file_hash: str = ""
    text: str = ""
    language: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list | None = None  # one float32 row per chunk once embedded
    note: str | None = None
    embedded: int = 0  # how many chunks have a vector
