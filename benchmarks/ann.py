#!/usr/bin/env python3
"""The ANN graph at scale (issue 9): recall@10 and warm latency against the exact scan.

    .venv/bin/python benchmarks/ann.py                      # 1M chunks (~15-20 min on 2 cores)
    .venv/bin/python benchmarks/ann.py --chunks 200000      # smaller

Generates a corpus of ``--chunks`` Python functions (one chunk each; words drawn with a
Zipf law from a generated vocabulary, and from a subject per file, as in a real tree),
indexes it with the ``hash`` embedder (a new process; the run builds the ANN graph past
``ann_min_rows``), then, in one warm process, answers the same queries (a random half of
a function's docstring words) through the graph and through the exact
scan (``CODESIFT_ANN=off``): recall@10 of the graph against the exact top 10, and the
vector leg's and a whole vector-mode and hybrid search's p50/p99.

Writes ``benchmarks/ann.json``; ``benchmarks/run.py`` copies it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PER_FILE = 50


def log(msg: str) -> None:
    print(f"[ann {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    s = sorted(values)
    return s[max(1, min(len(s), round(q / 100 * len(s) + 0.5))) - 1]


def vocabulary(rng, size: int = 6000) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa", "do", "fi", "gu", "ha", "ju", "be",
            "cor", "dex", "lin", "mar", "pol", "ser", "tor", "ven", "al", "en", "is", "or", "um", "ex"]
    out: set[str] = set()
    while len(out) < size:
        out.add("".join(rng.choice(syll, size=int(rng.integers(2, 4)))))
    return sorted(out)


def generate(dest: Path, chunks: int, seed: int = 0) -> list[str]:
    """The corpus; returns each function's docstring (the queries are drawn from them).

    Like a real tree, each file has a subject: a topic of 40 words (one topic per 500
    functions) that 60% of its functions' words come from; the rest follow the global
    Zipf law (``def``, ``return``, ``None`` and the code's shape are shared by all)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    topics = [rng.choice(len(vocab), size=40, replace=False) for _ in range(max(8, chunks // 500))]
    if dest.exists():
        shutil.rmtree(dest)
    docs = []
    made = 0
    f = 0
    while made < chunks:
        d = dest / f"pkg{f // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        topic = topics[int(rng.integers(len(topics)))]
        parts = []
        for _ in range(min(PER_FILE, chunks - made)):
            own = rng.random(24) < 0.6
            picks = np.where(own, rng.choice(topic, size=24), rng.choice(len(vocab), size=24, p=p))
            w = [vocab[i] for i in picks]
            doc = " ".join(w[:12])
            docs.append(doc)
            parts.append(f"def {w[12]}_{w[13]}_{made}({w[14]}, {w[15]}=None):\n"
                         f'    """{doc}."""\n'
                         f"    {w[16]} = [{w[17]} for {w[17]} in {w[14]} if {w[17]}.{w[18]}]\n"
                         f"    if {w[15]} is not None:\n        {w[16]}.append({w[15]}.{w[19]}({w[20]}={w[21]!r}))\n"
                         f"    for {w[2]} in {w[16]}:\n        {w[3]}({w[2]}, {w[4]}={w[5]!r}, {w[6]}={w[7]}.{w[8]})\n"
                         f"        {w[9]}.{w[10]}[{w[2]}.{w[11]}] = {w[2]}\n"
                         f"    return {{'{w[22]}': {w[16]}, '{w[23]}': len({w[16]})}}\n\n\n")
            made += 1
        (d / f"mod{f:06d}.py").write_text("".join(parts), encoding="utf-8")
        f += 1
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--reuse", action="store_true", help="keep an existing corpus and index of this size")
    ap.add_argument("--ann-min-rows", type=int, default=None, help="the run's threshold (default: codesift's)")
    ap.add_argument("--output", type=Path, default=HERE / "ann.json")
    args = ap.parse_args()
    corpus, idx = WORK / f"ann-{args.chunks}", WORK / f"ann-idx-{args.chunks}"
    docs_file = WORK / f"ann-{args.chunks}.docs.json"
    res: dict = {"chunks_target": args.chunks, "date": time.strftime("%Y-%m-%d %H:%M"),
                 "loadavg_before": os.getloadavg()[0]}
    if not (args.reuse and docs_file.exists() and (idx / "manifest.sqlite").exists()):
        t0 = time.perf_counter()
        docs = generate(corpus, args.chunks)
        docs_file.write_text(json.dumps(docs))
        log(f"corpus: {len(docs)} functions in {time.perf_counter() - t0:.0f} s")
        shutil.rmtree(idx, ignore_errors=True)
        t0 = time.perf_counter()
        opts = {"embedder": "hash"} if args.ann_min_rows is None else {"embedder": "hash",
                                                                        "ann_min_rows": args.ann_min_rows}
        code = ("import codesift, json, sys\n"
                f"r = codesift.open({str(corpus)!r}, {str(idx)!r}).index(**{opts!r})\n"
                "print(json.dumps(r.summary()))\nsys.exit(r.exit_code)\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"index failed ({p.returncode}): {p.stderr[-2000:]}")
        s = json.loads(p.stdout)
        res["index"] = {"wall_s": round(time.perf_counter() - t0, 1), "chunks": s["chunks"]["total"],
                        "ann": s.get("ann"), "peak_rss_bytes": s.get("peak_rss_bytes")}
        log(f"index: {res['index']}")
    docs = json.loads(docs_file.read_text())

    from codesift.embedding.hashing import HashEmbedder
    from codesift.search import backends
    from codesift.search.engine import open_searcher
    from codesift.search.filters import Filter
    from codesift.store.layout import IndexLayout

    rng = np.random.default_rng(7)
    picks = rng.choice(len(docs), size=args.queries, replace=False)
    queries = [" ".join(w for w in docs[i].split() if rng.random() < 0.5) or docs[i] for i in picks]
    emb = HashEmbedder(256)
    vecs = np.asarray(emb.embed(queries), dtype=np.float32)
    manifest = IndexLayout(idx).manifest
    flt = Filter()
    legs = {}
    for name, use in (("ann", True), ("exact", False)):
        t0 = time.perf_counter()
        b = backends.TablesBackend(manifest, 256, ann=use)
        load_s = time.perf_counter() - t0
        if use and b._ann is None:
            raise SystemExit(f"no usable ANN graph ({b.ann_problem or 'none built'})")
        for v in vecs[:5]:
            b.vector_leg(v, flt, 10)
        times, tops = [], []
        for v in vecs:
            t = time.perf_counter()
            hits = b.vector_leg(v, flt, 10)
            times.append(time.perf_counter() - t)
            tops.append([h["id"] for h in hits])
        legs[name] = {"tops": tops, "load_s": round(load_s, 2), "p50_ms": round(statistics.median(times) * 1e3, 2),
                      "p99_ms": round(pct(times, 99) * 1e3, 2), "rows": b.vectors}
        b.close()
        log(f"{name}: load {load_s:.1f} s, vector leg p50 {legs[name]['p50_ms']} ms p99 {legs[name]['p99_ms']} ms")
    recall = [len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(legs["ann"]["tops"], legs["exact"]["tops"])]
    res["recall_at_10"] = round(float(np.mean(recall)), 4)
    res["recall_min"] = round(float(np.min(recall)), 2)
    for name in legs:
        legs[name].pop("tops")
    res["vector_leg"] = legs
    os.environ.pop(backends.ANN_ENV, None)
    searcher = open_searcher(corpus, idx)
    for mode in ("vector", "hybrid"):
        for q in queries[:5]:
            searcher.search(q, k=10, mode=mode)
        times = []
        for q in queries:
            t = time.perf_counter()
            searcher.search(q, k=10, mode=mode)
            times.append(time.perf_counter() - t)
        res[f"search_{mode}"] = {"p50_ms": round(statistics.median(times) * 1e3, 2),
                                 "p99_ms": round(pct(times, 99) * 1e3, 2)}
        log(f"search {mode}: {res[f'search_{mode}']}")
    res["loadavg_after"] = os.getloadavg()[0]
    log(f"recall@10 {res['recall_at_10']} (min {res['recall_min']})")
    args.output.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
