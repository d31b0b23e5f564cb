"""Cheap token costs of line ranges, from one batched count of each distinct line.

The embedder's tokenizer is called once per file with every distinct line (plus the
empty string, whose count is the per-text overhead such as ``[CLS]``/``[SEP]``). The
cost of lines ``a..b`` is then the sum of their counts without that overhead, plus the
overhead once: O(1) from a prefix sum. For whitespace-splitting tokenizers (WordPiece)
this is exact; for others it is an estimate, so the final chunks are counted again
exactly before they are returned (see ``chunk_text``).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Callable

CountTokens = Callable[[list[str]], list[int]]


class LineCosts:
    """Token costs of line ranges (1-based, inclusive) of one file."""

    __slots__ = ("lines", "blank", "prefix", "overhead", "max_tokens")

    def __init__(self, lines: list[str], count_tokens: CountTokens, max_tokens: int) -> None:
        self.lines = lines
        self.max_tokens = max_tokens
        self.blank = [not line.strip() for line in lines]
        index: dict[str, int] = {}
        texts: list[str] = []
        ids: list[int] = []
        for line in lines:
            i = index.get(line)
            if i is None:
                i = index[line] = len(texts)
                texts.append(line)
            ids.append(i)
        texts.append("")
        counts = list(count_tokens(texts))
        if len(counts) != len(texts):
            raise ValueError(f"count_tokens returned {len(counts)} counts for {len(texts)} texts")
        overhead = max(0, int(counts.pop()))
        self.overhead = overhead
        prefix = [0] * (len(lines) + 1)
        total = 0
        for n, i in enumerate(ids, 1):
            c = int(counts[i]) - overhead
            if c > 0:
                total += c
            prefix[n] = total
        self.prefix = prefix

    def cost(self, start: int, end: int) -> int:
        """Estimated tokens of lines ``start..end``."""
        return self.prefix[end] - self.prefix[start - 1] + self.overhead

    def fits(self, start: int, end: int) -> bool:
        return self.prefix[end] - self.prefix[start - 1] + self.overhead <= self.max_tokens

    def furthest_end(self, start: int, limit: int) -> int:
        """The last line ``e <= limit`` with ``cost(start, e)`` within budget, or ``start - 1``."""
        target = self.max_tokens - self.overhead + self.prefix[start - 1]
        e = bisect_right(self.prefix, target, start - 1, limit + 1) - 1
        return e

    def first_nonblank(self, start: int, end: int) -> int | None:
        blank = self.blank
        for n in range(start, end + 1):
            if not blank[n - 1]:
                return n
        return None

    def last_nonblank(self, start: int, end: int) -> int | None:
        blank = self.blank
        for n in range(end, start - 1, -1):
            if not blank[n - 1]:
                return n
        return None
