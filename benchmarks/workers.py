#!/usr/bin/env python3
"""Measurements that run in their own process, started by ``benchmarks/run.py``.

Each prints one JSON object on stdout::

    workers.py embed-only INDEX_DIR [--batch-size 16] [--threads 0]
    workers.py warm-search ROOT INDEX_DIR QUERIES_FILE [-k 10]
    workers.py mcp ROOT INDEX_DIR QUERIES_FILE [--init-runs 5] [-k 10]
    workers.py watch ROOT INDEX_DIR [--edits 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    rank = max(1, min(len(s), round(q / 100 * len(s) + 0.5)))
    return s[rank - 1]


def embed_only(args) -> dict:
    """Embed exactly the chunk texts the index holds, with the same embedder, alone."""
    from codesift.embedding.registry import load_embedder
    from codesift.models import Chunk
    from codesift.pipeline.stages import embedding_texts
    from codesift.store.schema import TABLE_NAME

    import lancedb

    db = lancedb.connect(str(Path(args.index_dir) / "lancedb"))
    cols = ["path", "language", "symbol", "kind", "start_line", "end_line", "content"]
    tbl = db.open_table(TABLE_NAME).to_arrow().select(cols).to_pylist()
    # the order the pipeline sees them: file by file, top to bottom
    tbl.sort(key=lambda r: (r["path"], r["start_line"], r["end_line"]))
    chunks = [Chunk(r["path"], r["language"] or "", r["symbol"] or "", r["kind"] or "",
                    r["start_line"], r["end_line"], r["content"]) for r in tbl]
    texts = embedding_texts(chunks)
    del tbl, chunks
    t0 = time.perf_counter()
    emb = load_embedder(args.embedder, threads=args.threads)
    load_s = time.perf_counter() - t0
    b = args.batch_size
    batches = [texts[i:i + b] for i in range(0, len(texts), b)]
    if args.max_seconds > 0:
        # a time budget: embed batches in a fixed random order (spread over the corpus)
        # until the budget is spent, then extrapolate the rate to every chunk
        import random

        random.Random(0).shuffle(batches)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    done = 0
    for batch in batches:
        emb.embed(batch)
        done += len(batch)
        if args.max_seconds > 0 and time.perf_counter() - t0 > args.max_seconds:
            break
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    rate = done / wall
    return {"chunks": len(texts), "chunks_embedded": done, "extrapolated": done < len(texts),
            "embed_s": len(texts) / rate, "measured_s": wall, "cpu_s": cpu * len(texts) / done,
            "load_s": load_s, "chunks_per_s": rate, "embedder": emb.name,
            "loadavg": os.getloadavg()[0], "peak_rss_bytes": _peak_rss()}


def warm_search(args) -> dict:
    import codesift

    queries = Path(args.queries).read_text(encoding="utf-8").splitlines()
    t0 = time.perf_counter()
    idx = codesift.open(args.root, args.index_dir)
    idx.search(queries[0], k=args.k)  # load the model and open the table
    first_s = time.perf_counter() - t0
    times = []
    for q in queries:
        t = time.perf_counter()
        hits = idx.search(q, k=args.k)
        times.append(time.perf_counter() - t)
        assert hits, q
    from codesift.embedding.protocol import embed_queries

    emb = idx._searcher.embedder()
    embed_times = []
    for q in queries:
        t = time.perf_counter()
        embed_queries(emb, [q])
        embed_times.append(time.perf_counter() - t)
    return {"queries": len(times), "first_search_s": first_s, "p50_s": statistics.median(times),
            "embed_p50_s": statistics.median(embed_times), "backend": idx._searcher.backend().name,
            "p99_s": pct(times, 99), "mean_s": statistics.mean(times), "max_s": max(times),
            "peak_rss_bytes": _peak_rss()}


class McpClient:
    """A newline-delimited JSON-RPC client for ``codesift mcp`` over stdio."""

    def __init__(self, root: str, index_dir: str) -> None:
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codesift", "mcp", root, "--index-dir", index_dir],
            # buffered: an unbuffered pipe's readline reads one byte per system call, ~9,000 for
            # a search result, which cost this client 6-10 ms per call (requests are flushed)
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=-1)
        self._id = 0

    def request(self, method: str, params: dict | None = None) -> dict:
        self._id += 1
        msg = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"MCP server closed stdout during {method}")
            reply = json.loads(line)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def notify(self, method: str) -> None:
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def initialize(self) -> float:
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "codesift-bench", "version": "0"}})
        elapsed = time.perf_counter() - self.t_spawn
        self.notify("notifications/initialized")
        return elapsed

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=15)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=10)  # after SIGKILL: reaping is prompt


def mcp(args) -> dict:
    inits = []
    for _ in range(args.init_runs):
        c = McpClient(args.root, args.index_dir)
        try:
            inits.append(c.initialize())
        finally:
            c.close()
    queries = Path(args.queries).read_text(encoding="utf-8").splitlines()
    c = McpClient(args.root, args.index_dir)
    try:
        c.initialize()
        t0 = time.perf_counter()
        c.request("tools/call", {"name": "search_code", "arguments": {"query": queries[0], "k": args.k}})
        first_s = time.perf_counter() - t0
        times = []
        for q in queries:
            t = time.perf_counter()
            res = c.request("tools/call", {"name": "search_code", "arguments": {"query": q, "k": args.k}})
            times.append(time.perf_counter() - t)
            if res.get("isError"):
                raise RuntimeError(f"search_code failed: {res}")
    finally:
        c.close()
    return {"initialize_s": inits, "initialize_median_s": statistics.median(inits),
            "first_search_s": first_s, "queries": len(times), "p50_s": statistics.median(times),
            "p99_s": pct(times, 99), "mean_s": statistics.mean(times)}


def watch(args) -> dict:
    """``codesift watch ROOT`` with its defaults; after its first cycle, each edit writes a file
    with a new function and times save -> the first warm API search that finds it."""
    import threading

    import codesift

    root, index_dir = Path(args.root), Path(args.index_dir)
    proc = subprocess.Popen([sys.executable, "-m", "codesift", "watch", str(root), "--index-dir", str(index_dir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(x.rstrip("\n") for x in proc.stderr), daemon=True)
    reader.start()

    def wait_line(text: str, start: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(lines[start:], start):
                if text in line:
                    return i
            if proc.poll() is not None:
                raise RuntimeError("codesift watch exited:\n" + "\n".join(lines[-20:]))
            time.sleep(0.02)
        raise RuntimeError(f"no {text!r} from codesift watch within {timeout:g} s:\n" + "\n".join(lines[-20:]))

    try:
        wait_line("file(s) indexed", wait_line("watching", 0, 60), 900)  # the first cycle
        index = codesift.open(root, index_dir)
        index.search("warm up", k=1)
        times = []
        for i in range(args.edits):
            name = f"watch_probe_{i}_{os.getpid()}"
            path = root / f"watch_probe_{i}.py"
            t0 = time.perf_counter()
            path.write_text(f"def {name}(value):\n    return value + {i}\n", encoding="utf-8")
            deadline = t0 + 60
            while not any(h.path == path.name for h in index.search(name, k=3)):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{path.name} not findable 60 s after the save")
                time.sleep(0.01)
            times.append(time.perf_counter() - t0)
    finally:
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return {"edits": len(times), "times_s": times, "p50_s": statistics.median(times), "max_s": max(times)}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("embed-only")
    p.add_argument("index_dir")
    p.add_argument("--embedder", default="minilm")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="time budget; 0 = embed every chunk (default 300: sample and extrapolate)")
    p = sub.add_parser("warm-search")
    p.add_argument("root")
    p.add_argument("index_dir")
    p.add_argument("queries")
    p.add_argument("-k", type=int, default=10)
    p = sub.add_parser("mcp")
    p.add_argument("root")
    p.add_argument("index_dir")
    p.add_argument("queries")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--init-runs", type=int, default=5)
    p = sub.add_parser("watch")
    p.add_argument("root")
    p.add_argument("index_dir")
    p.add_argument("--edits", type=int, default=5)
    args = ap.parse_args()
    fn = {"embed-only": embed_only, "warm-search": warm_search, "mcp": mcp, "watch": watch}[args.cmd]
    print(json.dumps(fn(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
