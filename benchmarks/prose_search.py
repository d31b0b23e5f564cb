#!/usr/bin/env python3
"""Warm search latency on human-written queries, per repository of the code-search benchmark.

``make bench`` times warm searches with short phrases made from function names. Real queries
(an agent's, or the benchmark's) are longer prose and often name the project, whose words
are in most chunks' paths; their text leg matches far more rows. This times them: for each
repository ``codesearch.py`` indexed (``--work``/index/``--label``), one searcher answers every
benchmark query once (warm-up), then ``--rounds`` more times; it prints the p50 and p90 of a
whole hybrid search and of its text leg alone, in milliseconds.

    python benchmarks/prose_search.py --work benchmarks/.work/codesearch --label eval [--repo NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "codesearch-bench"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "codesearch")
    ap.add_argument("--label", default="eval")
    ap.add_argument("--bench", type=Path, default=BENCH)
    ap.add_argument("--repo", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from codesift.search.engine import open_searcher
    from codesift.search.filters import Filter

    specs = {r["name"]: r for r in json.loads((a.bench / "repos.json").read_text())}
    names = a.repo or sorted(n for n in specs if (a.work / "index" / a.label / n).is_dir())
    print(f"{'repository':<20} {'chunks':>7} {'queries':>7} {'search p50':>10} {'p90':>7} {'text leg p50':>12} {'p90':>7}")
    for name in names:
        prefix = (specs[name].get("benchmark_root") or "").strip("/")
        root = a.work / "corpora" / name / prefix
        tasks = json.loads((a.bench / "annotations" / f"{name}.json").read_text())
        queries = [t["query"] for t in tasks]
        s = open_searcher(root, a.work / "index" / a.label / name)
        for q in queries:
            s.search(q, k=10)
        backend = s.backend()
        flt = Filter.of(lang=None, path=None)
        whole, text = [], []
        for _ in range(a.rounds):
            for q in queries:
                t = time.perf_counter()
                s.search(q, k=10)
                whole.append(time.perf_counter() - t)
                t = time.perf_counter()
                s._text_leg(backend, q, flt, s.candidates, with_vectors=True)
                text.append(time.perf_counter() - t)
        ms = 1000.0
        print(f"{name:<20} {backend.count():>7} {len(queries):>7} {statistics.median(whole) * ms:>10.1f} "
              f"{pct(whole, 90) * ms:>7.1f} {statistics.median(text) * ms:>12.1f} {pct(text, 90) * ms:>7.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
