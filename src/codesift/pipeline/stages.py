"""Engine-agnostic stage functions: plain functions over files and batches.

The local supervisor (asyncio) and the Ray engine call exactly these; neither
re-implements reading, chunking, embedding texts or the row layout.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..models import Chunk, ChunkingResult, FileEntry
from ..store.manifest import STATUS_ERROR, STATUS_INDEXED, STATUS_SKIPPED, FileRecord
from ..text import decode

if TYPE_CHECKING:
    from ..embedding import Embedder

BINARY_SNIFF_BYTES = 8192
HEADER_MAX_CHARS = 80
HEADER_TOKEN_RESERVE = 40  # tokens kept free in every chunk for the embedding header
DEFAULT_CHUNK_TOKENS = 256  # chunk budget when the embedder has no token limit
# Bump when the chunker's output for the same file changes (new language, new split
# rule): an index built by another version is rebuilt as a new generation, beside the
# serving one, by the next ``index`` run. Recorded in each generation's manifest meta.
CHUNKING_VERSION = "2"  # 2: grammars for 17 more languages, qualified symbols


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """``kind`` is ``text`` (changed, decoded), ``unchanged`` (same hash as indexed),
    ``skipped`` (refused on purpose) or ``error`` (a problem with the file)."""

    kind: str
    size: int
    mtime_ns: int
    file_hash: str = ""
    text: str = ""
    reason: str | None = None


def file_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def human_size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= (1 << 20) else f"{n / 1024:.1f} KiB"


def read_file(entry: FileEntry, *, known_hash: str | None, max_file_size: int) -> ReadOutcome:
    """Read, sniff, hash and decode one file. Never raises for a problem with the file."""
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since discovery, open must not block.
        fd = os.open(entry.abspath, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return ReadOutcome(STATUS_ERROR, entry.size, entry.mtime_ns, reason="vanished before it could be read")
    except PermissionError:
        return ReadOutcome(STATUS_ERROR, entry.size, entry.mtime_ns, reason="unreadable: permission denied")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ReadOutcome(STATUS_SKIPPED, entry.size, entry.mtime_ns, reason="symlink loop")
        return ReadOutcome(STATUS_ERROR, entry.size, entry.mtime_ns, reason=f"unreadable: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ReadOutcome(STATUS_SKIPPED, 0, st.st_mtime_ns, reason="not a regular file")
        if st.st_size > max_file_size:
            return ReadOutcome(STATUS_SKIPPED, st.st_size, st.st_mtime_ns,
                               reason=f"larger than the {human_size(max_file_size)} limit ({human_size(st.st_size)})")
        chunks = []
        remaining = max_file_size + 1
        while remaining > 0:
            block = os.read(fd, min(remaining, 1 << 20))
            if not block:
                break
            chunks.append(block)
            remaining -= len(block)
        data = b"".join(chunks)
    except OSError as exc:
        return ReadOutcome(STATUS_ERROR, entry.size, entry.mtime_ns, reason=f"unreadable: {exc.strerror or exc}")
    finally:
        os.close(fd)
    size, mtime_ns = st.st_size, st.st_mtime_ns
    if len(data) > max_file_size:
        return ReadOutcome(STATUS_SKIPPED, len(data), mtime_ns,
                           reason=f"larger than the {human_size(max_file_size)} limit (grew while read)")
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return ReadOutcome(STATUS_SKIPPED, size, mtime_ns, reason="binary file (NUL byte in the first 8 KiB)")
    digest = file_hash(data)
    if known_hash is not None and digest == known_hash:
        return ReadOutcome("unchanged", size, mtime_ns, file_hash=digest)
    try:
        text = decode(data)
    except UnicodeDecodeError as exc:
        return ReadOutcome(STATUS_ERROR, size, mtime_ns, file_hash=digest,
                           reason=f"undecodable: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})")
    return ReadOutcome("text", size, mtime_ns, file_hash=digest, text=text)


def chunk_budget(embedder: "Embedder") -> int:
    limit = getattr(embedder, "max_tokens", None)
    if not limit:
        return DEFAULT_CHUNK_TOKENS
    return max(16, int(limit) - HEADER_TOKEN_RESERVE)


def hard_token_limit(embedder: "Embedder") -> bool:
    """Whether the chunk budget is a hard limit: only an embedder with a token limit
    truncates, so only then must an over-long line be split (and noted). Both engines
    ask this one function, so their notes and ``--strict`` outcomes cannot drift."""
    return bool(getattr(embedder, "max_tokens", None))


def chunk_file(path: str, text: str, *, count_tokens, max_tokens: int, parse_timeout_s: float,
               hard_limit: bool = True) -> ChunkingResult:
    from ..chunking import chunk_text

    return chunk_text(path, text, count_tokens=count_tokens, max_tokens=max_tokens,
                      parse_timeout_s=parse_timeout_s, hard_limit=hard_limit)


def embedding_header(chunk: Chunk) -> str:
    """A short context line (where the code lives, what it is) embedded with the code."""
    parts = chunk.path.rsplit("/", 2)[-2:]
    head = "/".join(parts)
    if chunk.symbol:
        head += f" {chunk.symbol}"
    return head[:HEADER_MAX_CHARS]


def embedding_texts(chunks: list[Chunk]) -> list[str]:
    return [f"{embedding_header(c)}\n{c.content}" for c in chunks]


def indexed_record(path: str, size: int, mtime_ns: int, digest: str, chunk_count: int,
                   language: str, note: str | None) -> FileRecord:
    return FileRecord(path, size, mtime_ns, digest, chunk_count, STATUS_INDEXED, note, language, time.time())


def outcome_record(path: str, outcome: ReadOutcome) -> FileRecord:
    return FileRecord(path, outcome.size, outcome.mtime_ns, outcome.file_hash, 0, outcome.kind,
                      outcome.reason, None, time.time())
