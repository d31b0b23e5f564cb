"""The ranking layer: from both legs' candidates to the result list.

Retrieval (``engine.Searcher``) gathers candidates: the vector leg's nearest chunks, the text
leg's best BM25 matches and, for a query that names code, the chunks whose stored ``symbol``
defines that name. :func:`rank` scores them with named signals, each a small function with its
constant and reason, in this order:

1. ``query_kind``: fuse cosine and BM25 with weights that follow the query's kind (a symbol
   lookup leans on the text leg, prose on the vector leg);
2. ``definitions``: the chunk that defines a queried name joins the top;
3. ``path``: query words found in a file's name or directory lift its chunks;
4. ``priors``: tests, examples, docs, vendored, generated code and stubs rank below
   implementation unless the query asks for them;
5. ``topic``: a file whose chunks, taken together (the mean of all its vectors, not only
   the candidates'), are about the query lifts each of its chunks;
6. ``coherence``: a file with several strong chunks lifts its best one;
7. ``distinct``: a file's second chunk ranks below the best chunks of other files unless
   it scores much higher.

Every signal can be switched off by name (``disabled``) so each one is measured by ablation
(``benchmarks/codesearch.py``). The layer is pure Python over a few hundred candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import evidence, priors
from .query import MIXED, PROSE, SYMBOL, QueryInfo, understand

SIGNALS = ("query_kind", "definitions", "path", "priors", "topic", "coherence", "distinct")

# --- fusion (query_kind): share of the (max-scaled) BM25 score in the fused score
# prose is paraphrase: the embedding carries it; a bare name is matched literally by BM25;
# prose naming code sits between. Chosen on the visible split (benchmarks/EVAL.md).
TEXT_WEIGHT = {PROSE: 0.3, MIXED: 0.45, SYMBOL: 0.7}
TEXT_WEIGHT_BLIND = 0.3  # one weight for every query (the prose one), when query_kind is off
# rescale the candidates' cosines to 0..1 (min-max) before fusing, as BM25 is scaled by its best
NORMALIZE_COSINE = False

# --- definitions: a defining chunk gains this many times the best fused score, so it ranks
# first for a symbol lookup; a name embedded in prose may be incidental, so it gains less
DEFINITION_BOOST = 1.0
EMBEDDED_DEFINITION_SCALE = 0.35

# --- path: a file whose name or directory holds all the query's words gains this share of
# the best score (less for fewer words), for prose and mixed queries
PATH_BOOST = 0.25
# a file named after the name a symbol lookup asks for (``Session.swift`` for ``Session``) gains
# this share: the convention of most ecosystems, and the only evidence where no grammar gives symbols
SYMBOL_FILE_BOOST = 0.5

# --- coherence: each file's best chunk gains this share of the best score, scaled by the
# file's summed candidate score relative to the best file's. Less for a symbol lookup: its
# answer is one defining chunk, and a file that merely uses the name a lot is no evidence
COHERENCE_BOOST = 0.25
SYMBOL_COHERENCE_BOOST = 0.1

# --- topic: each chunk gains this share of the best score, scaled by where its file's mean
# vector (all its chunks, not only the candidates) falls between the candidate files' lowest
# and highest cosine with the query. Not for a symbol lookup: its answer is one defining
# chunk, whatever the rest of its file is about
TOPIC_BOOST = 0.3
SYMBOL_TOPIC_BOOST = 0.0

# --- distinct: each further chunk of an already listed file is scaled by this factor
DISTINCT_DECAY = 0.5


@dataclass(slots=True)
class Candidate:
    """One retrieved chunk: its row (id, path, start_line, end_line, symbol, kind, language,
    content), the cosine with the query, its BM25 scaled by the query's best (0 when the text
    leg did not return it), and the score the signals build."""
    row: dict
    cos: float
    bm: float
    file_cos: float | None = None  # the query's cosine with the file's mean chunk vector
    file_classes: frozenset[str] = frozenset()  # prior classes of the whole file (priors.head_classes)
    score: float = 0.0
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.row["path"]


def rank(query: str | QueryInfo, cands: Iterable[Candidate], k: int,
         disabled: frozenset[str] = frozenset()) -> list[Candidate]:
    """The best ``k`` candidates, best first; ``Candidate.score`` holds the final score."""
    info = query if isinstance(query, QueryInfo) else understand(query)
    cands = list(cands)
    if not cands:
        return []
    fuse(info, cands, "query_kind" not in disabled)
    # boosts are shares of the best fused score; a best below 0 (only negative cosines) is no scale
    top = max(c.score for c in cands)
    top = top if top > 0 else 1.0
    if "definitions" not in disabled:
        boost_definitions(info, cands, top)
    if "path" not in disabled:
        boost_path(info, cands, top)
    if "priors" not in disabled:
        apply_priors(info, cands)
    if "topic" not in disabled:
        boost_topic(cands, top, SYMBOL_TOPIC_BOOST if info.kind == SYMBOL else TOPIC_BOOST)
    if "coherence" not in disabled:
        boost_coherence(cands, top, SYMBOL_COHERENCE_BOOST if info.kind == SYMBOL else COHERENCE_BOOST)
    return select(cands, k, "distinct" not in disabled)


def fuse(info: QueryInfo, cands: list[Candidate], by_kind: bool) -> None:
    """Weighted sum of cosine and scaled BM25; the weight follows the query's kind."""
    wt = TEXT_WEIGHT[info.kind] if by_kind else TEXT_WEIGHT_BLIND
    if not any(c.bm for c in cands):
        wt = 0.0
    lo, span = 0.0, 1.0
    if NORMALIZE_COSINE:
        lo = min(c.cos for c in cands)
        span = (max(c.cos for c in cands) - lo) or 1.0
    for c in cands:
        c.score = (1.0 - wt) * (c.cos - lo) / span + wt * c.bm


def boost_definitions(info: QueryInfo, cands: list[Candidate], top: float) -> None:
    """A chunk that defines a queried name (by the chunker's symbol and kind) ranks first."""
    if not info.names or info.kind == PROSE:
        return
    scale = DEFINITION_BOOST * (1.0 if info.kind == SYMBOL else EMBEDDED_DEFINITION_SCALE)
    for c in cands:
        tier = max((evidence.definition_tier(c.row.get("symbol") or "", c.row.get("kind") or "",
                                             c.path, n) for n in info.names), default=0.0)
        if tier:
            c.score += scale * tier * top


def boost_path(info: QueryInfo, cands: list[Candidate], top: float) -> None:
    """Query words found (inflected or not) in a file's name or parent directory are evidence;
    for a symbol lookup, a file named after the symbol."""
    if info.names:
        gain = SYMBOL_FILE_BOOST * top * (1.0 if info.kind == SYMBOL else EMBEDDED_DEFINITION_SCALE)
        named: dict[str, bool] = {}
        for c in cands:
            hit = named.get(c.path)
            if hit is None:
                hit = named[c.path] = any(evidence.stem_names(c.path, n) for n in info.names)
            if hit:
                c.score += gain
    if info.kind == SYMBOL or not info.words:
        return
    words = tuple(dict.fromkeys(evidence.normalize(w) for w in info.words))
    ratios: dict[str, float] = {}
    for c in cands:
        ratio = ratios.get(c.path)
        if ratio is None:
            ratio = ratios[c.path] = evidence.path_match_ratio(c.path, words)
        if ratio:
            c.score += PATH_BOOST * ratio * top


def apply_priors(info: QueryInfo, cands: list[Candidate]) -> None:
    """Tests, examples, docs, vendored and generated files rank below implementation code."""
    for c in cands:
        f = priors.prior(c.path, c.row.get("content") or "", info.asks, int(c.row.get("start_line") or 1),
                         c.file_classes)
        if f != 1.0:
            c.score = _scaled(c.score, f)


def boost_topic(cands: list[Candidate], top: float, share: float) -> None:
    """A file whose chunks, taken together, are about the query is evidence for each of them."""
    known = [c.file_cos for c in cands if c.file_cos is not None]
    if share <= 0 or len(known) < 2:
        return
    lo, hi = min(known), max(known)
    if hi <= lo:
        return
    for c in cands:
        if c.file_cos is not None:
            c.score += share * top * (c.file_cos - lo) / (hi - lo)


def boost_coherence(cands: list[Candidate], top: float, share: float = COHERENCE_BOOST) -> None:
    """A file with several strong chunks is stronger evidence for its best chunk."""
    total: dict[str, float] = {}
    best: dict[str, Candidate] = {}
    for c in cands:
        s = max(c.score, 0.0)
        total[c.path] = total.get(c.path, 0.0) + s
        b = best.get(c.path)
        if b is None or c.score > b.score:
            best[c.path] = c
    most = max(total.values(), default=0.0)
    if most <= 0:
        return
    for p, c in best.items():
        c.score += share * top * total[p] / most


def select(cands: list[Candidate], k: int, distinct: bool) -> list[Candidate]:
    """The top ``k``; with ``distinct``, each further chunk of a file already listed is decayed."""
    ordered = sorted(cands, key=lambda c: c.score, reverse=True)
    if not distinct:
        return ordered[:k]
    seen: dict[str, int] = {}
    for c in ordered:
        n = seen.get(c.path, 0)
        if n:
            c.score = _scaled(c.score, DISTINCT_DECAY ** n)
        seen[c.path] = n + 1
    ordered.sort(key=lambda c: c.score, reverse=True)
    return ordered[:k]


def _scaled(score: float, factor: float) -> float:
    """``score`` moved down by ``factor`` (< 1), whatever its sign (a negative cosine)."""
    return score * factor if score >= 0 else score / factor


__all__ = ["MIXED", "PROSE", "SIGNALS", "SYMBOL", "Candidate", "QueryInfo", "rank", "understand"]
