"""The public row layout of the ``chunks`` table, shared by every engine.

Columns (documented in the README): ``id`` (stable), ``path`` (POSIX, relative to the
root), ``language``, ``symbol``, ``kind``, ``start_line``/``end_line`` (1-based,
inclusive), ``content`` (exactly those lines), ``file_hash`` and ``vector``
(fixed-size list of float32).

One more, internal column: ``search_text``, the identifier-split text the full-text
(BM25) index is built on (see ``codesift.search.tokens``). Tables written before it
existed lack it; search then falls back to ``content``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..models import Chunk

TABLE_NAME = "chunks"
COLUMNS = ("id", "path", "language", "symbol", "kind", "start_line", "end_line", "content",
           "file_hash", "vector")
SEARCH_TEXT = "search_text"


def chunk_id(chunk: Chunk, file_hash: str) -> str:
    """Stable across runs and engines: same file content and lines → same id."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{chunk.path}\0{chunk.start_line}\0{chunk.end_line}\0{file_hash}".encode())
    return h.hexdigest()


def arrow_schema(dim: int):
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("symbol", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("start_line", pa.int32()),
        pa.field("end_line", pa.int32()),
        pa.field("content", pa.string()),
        pa.field("file_hash", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field(SEARCH_TEXT, pa.string()),
    ])


def build_rows(items: Sequence[tuple[list[Chunk], str, "object"]], dim: int):
    """Arrow table for ``(chunks, file_hash, vectors)`` triples; vectors is (n, dim) float32."""
    import numpy as np
    import pyarrow as pa

    from ..search.tokens import index_text

    cols: dict[str, list] = {c: [] for c in COLUMNS if c != "vector"}
    vecs = []
    search_text: list[str] = []
    for chunks, file_hash, vectors in items:
        for c in chunks:
            cols["id"].append(chunk_id(c, file_hash))
            cols["path"].append(c.path)
            cols["language"].append(c.language)
            cols["symbol"].append(c.symbol)
            cols["kind"].append(c.kind)
            cols["start_line"].append(c.start_line)
            cols["end_line"].append(c.end_line)
            cols["content"].append(c.content)
            cols["file_hash"].append(file_hash)
            search_text.append(index_text(c.path, c.symbol, c.content))
        if len(chunks):
            vecs.append(np.asarray(vectors, dtype=np.float32).reshape(len(chunks), dim))
    flat = np.concatenate(vecs).reshape(-1) if vecs else np.zeros(0, dtype=np.float32)
    vector = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dim)
    schema = arrow_schema(dim)
    arrays = [pa.array(cols[name], type=schema.field(name).type) for name in COLUMNS if name != "vector"]
    extra = pa.array(search_text, type=pa.string())
    return pa.Table.from_arrays(arrays + [vector, extra], schema=schema)
