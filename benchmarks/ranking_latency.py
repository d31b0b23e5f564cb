#!/usr/bin/env python3
"""How long the ranking layer alone takes per warm query, on real candidate lists.

Runs the benchmark's queries for one repository against an existing index (``codesearch.py``
leaves them under its work dir), records the candidate lists the ranking layer receives,
then times ``ranking.rank`` alone on copies of them, several rounds (warm caches), and
prints the median, p90 and max per query. Retrieval (the legs, the model) is not counted.

    python benchmarks/ranking_latency.py --index benchmarks/.work/codesearch/index/eval/abseil-cpp \\
        --root benchmarks/.work/codesearch/corpora/abseil-cpp/absl --queries QUERIES_FILE
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, required=True, help="an index directory")
    ap.add_argument("--root", type=Path, required=True, help="the indexed tree")
    ap.add_argument("--queries", type=Path, required=True, help="one query per line")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from codesift.search import ranking
    from codesift.search.engine import Searcher

    queries = [q.strip() for q in a.queries.read_text(encoding="utf-8").splitlines() if q.strip()]
    captured = []
    real = ranking.rank

    def spy(info, cands, k, disabled=frozenset()):
        captured.append((info, [(c.row, c.cos, c.bm) for c in cands], k))
        return real(info, cands, k, disabled)

    ranking.rank = spy  # the engine looks it up at call time
    searcher = Searcher(a.root, a.index)
    try:
        searcher.search_many(queries, k=10)
    finally:
        ranking.rank = real
    sizes = [len(c) for _, c, _ in captured]
    print(f"{searcher.table().count_rows()} chunks, {len(captured)} queries, "
          f"candidates per query: median {statistics.median(sizes):.0f}, max {max(sizes)}")
    for r in range(a.rounds):
        times = []
        for info, rows, k in captured:
            cands = [ranking.Candidate(row, cos, bm) for row, cos, bm in rows]
            t0 = time.perf_counter()
            real(info, cands, k)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print(f"round {r + 1}: median {statistics.median(times):.3f} ms, "
              f"p90 {times[int(len(times) * 0.9)]:.3f} ms, max {times[-1]:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
