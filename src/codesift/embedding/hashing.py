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
        self._cache: dict[str, np.ndarray] = {}
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

    def _vector(self, word: str) -> np.ndarray:
        """The word's own vector (its features' signed weights, summed per bucket), cached."""
        hit = self._cache.get(word)
        if hit is None:
            idx, val = self._features(word)
            hit = np.bincount(np.asarray(idx, dtype=np.int64), weights=np.asarray(val, dtype=np.float64),
                              minlength=self.dim)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[word] = hit
        return hit

    # -- protocol -----------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """Each text's vector: the sum of its words' vectors (a count matrix times the
        batch's distinct word vectors), L2-normalised."""
        n = len(texts)
        ids: dict[str, int] = {}
        cols: list[int] = []
        counts: list[int] = []
        for text in texts:
            words = _WORD.findall(text)
            if not words:
                # No words: use punctuation pieces, or a fixed "empty" feature, so
                # every vector has unit norm.
                words = ["\0" + piece for piece in (_COUNT.findall(text) or [""])]
            cols.extend([ids.setdefault(w, len(ids)) for w in words])
            counts.append(len(words))
        u = len(ids)
        if not n:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = np.repeat(np.arange(n, dtype=np.int64), counts)
        tally = np.bincount(rows * u + np.asarray(cols, dtype=np.int64), minlength=n * u).reshape(n, u)
        vectors = np.stack([self._vector(w) for w in ids])
        out = (tally.astype(np.float64) @ vectors).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        # No token limit here: this only sizes chunks, so a cheap length estimate
        # (about four characters a token) does; a regex pass cost a fifth of indexing.
        return [len(t) // 4 + 1 for t in texts]
