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
# bounds of embed()'s working memory, however distinct the words: count-matrix cells per
# group of texts (8 bytes each, twice), and word vectors stacked at once (8 bytes × dim each)
_MAX_CELLS = 1 << 21
_BLOCK_WORDS = 4096


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

    @staticmethod
    def _words(text: str) -> list[str]:
        words = _WORD.findall(text)
        # No words: use punctuation pieces, or a fixed "empty" feature, so every vector
        # has unit norm.
        return words or ["\0" + piece for piece in (_COUNT.findall(text) or [""])]

    def _sum_words(self, group: list[list[str]]) -> np.ndarray:
        """The summed word vectors of each text of ``group``: a (texts × distinct words)
        count matrix times the word vectors, taken ``_BLOCK_WORDS`` distinct words at a time."""
        ids: dict[str, int] = {}
        cols = [ids.setdefault(w, len(ids)) for words in group for w in words]
        n, u = len(group), len(ids)
        rows = np.repeat(np.arange(n, dtype=np.int64), [len(words) for words in group])
        tally = np.bincount(rows * u + np.asarray(cols, dtype=np.int64), minlength=n * u).reshape(n, u)
        out = np.zeros((n, self.dim), dtype=np.float64)
        names = list(ids)
        for b in range(0, u, _BLOCK_WORDS):
            block = names[b : b + _BLOCK_WORDS]
            out += tally[:, b : b + len(block)].astype(np.float64) @ np.stack([self._vector(w) for w in block])
        return out.astype(np.float32)

    # -- protocol -----------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """Each text's vector: the sum of its words' vectors, L2-normalised. Texts are
        summed in groups whose count matrix (texts × words) holds at most ``_MAX_CELLS``
        cells, so memory stays bounded even for a batch whose words are nearly all
        distinct (hashes, minified code) or for one very long text."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        start = i = 0
        group: list[list[str]] = []
        total = 0
        while i < n:
            words = self._words(texts[i])
            if group and (len(group) + 1) * (total + len(words)) > _MAX_CELLS:
                out[start:i] = self._sum_words(group)
                start, group, total = i, [], 0
            group.append(words)
            total += len(words)
            i += 1
        if group:
            out[start:n] = self._sum_words(group)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        # No token limit here: this only sizes chunks, so a cheap length estimate
        # (about four characters a token) does; a regex pass cost a fifth of indexing.
        return [len(t) // 4 + 1 for t in texts]
