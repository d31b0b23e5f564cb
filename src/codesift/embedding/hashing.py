"""A deterministic, dependency-light hashed bag-of-features embedder.

Features of a text: its lower-cased words (identifiers split on ``snake_case``,
``camelCase`` and digits also contribute their pieces) and the character trigrams of
longer words. Each feature is hashed with blake2b to a bucket and a sign; the vector
is the signed sum, L2-normalised. Same words give a higher cosine, which is all the
search tests need. Not a semantic model.
"""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+")
_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_COUNT = re.compile(r"\w+|[^\w\s]")

_TRIGRAM_WEIGHT = 0.35
_PIECE_WEIGHT = 0.7
_CACHE_LIMIT = 20_000  # bounded: RSS must stay flat on large corpora


class HashEmbedder:
    cheap = True  # as fast as chunking: no fast tier (embedding.protocol.is_cheap)
    """Hashed bag of words/pieces/trigrams; ``name`` is ``hash-<dim>``."""

    max_tokens: int | None = None

    def __init__(self, dim: int = 256) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise ValueError(f"hash embedder dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.name = f"hash-{dim}"
        self._cache: dict[str, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    # -- features ---------------------------------------------------------------
    def _hash(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, (1.0 if (value >> 63) & 1 else -1.0)

    def _features(self, word: str) -> tuple[list[int], list[float]]:
        feats: list[tuple[str, float]] = []
        low = word.lower()
        feats.append(("w:" + low, 1.0))
        pieces = [p.lower() for p in _PIECE.findall(word)]
        if len(pieces) > 1:
            feats.extend(("w:" + p, _PIECE_WEIGHT) for p in pieces)
        for part in pieces or [low]:
            if len(part) >= 4:
                padded = f"#{part}#"
                feats.extend(
                    ("t:" + padded[i : i + 3], _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)
                )
        idx: list[int] = []
        val: list[float] = []
        for feature, weight in feats:
            bucket, sign = self._hash(feature)
            idx.append(bucket)
            val.append(sign * weight)
        return idx, val

    def _lookup(self, word: str) -> tuple[list[int], list[float]]:
        hit = self._cache.get(word)
        if hit is None:
            hit = self._features(word)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[word] = hit
        return hit

    # -- protocol -----------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        dim = self.dim
        idx: list[int] = []
        val: list[float] = []
        counts: list[int] = []
        lookup = self._lookup
        for text in texts:
            start = len(idx)
            for word in _WORD.findall(text):
                i, v = lookup(word)
                idx.extend(i)
                val.extend(v)
            if len(idx) == start:
                # No words: use punctuation pieces, or a fixed "empty" feature, so
                # every vector has unit norm.
                for piece in _COUNT.findall(text) or [""]:
                    i, v = lookup("\0" + piece)
                    idx.extend(i)
                    val.extend(v)
            counts.append(len(idx) - start)
        flat = np.asarray(idx, dtype=np.int64)
        if n:
            flat += np.repeat(np.arange(n, dtype=np.int64) * dim, counts)
        out = np.bincount(flat, weights=np.asarray(val, dtype=np.float64), minlength=n * dim)
        out = out.reshape(n, dim).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        # No token limit here: this only sizes chunks, so a cheap length estimate
        # (about four characters a token) does; a regex pass cost a fifth of indexing.
        return [len(t) // 4 + 1 for t in texts]
