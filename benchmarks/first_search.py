#!/usr/bin/env python3
"""Time to the first search while a new repository is being indexed (the fast tier).

Starts ``codesift index ROOT`` into a fresh index directory, then runs ``codesift search
QUERY`` (a new process each time, as a user or an agent would, ``--no-server``) until one
returns hits. Prints one JSON line: seconds from the start of ``codesift index`` to that
first hit, the top hit, the run's own fast-tier figures (``lexical`` in its summary) and,
unless ``--stop-after-hit``, the full index time.

    python benchmarks/first_search.py path/to/repo "routing middleware"
    python benchmarks/first_search.py --bench [--repo chi ...]   # the visible code-search repos

``--bench`` measures each repository of ``../shared/codesearch-bench`` (unpacked once into
``benchmarks/.work/first-search``) with its first annotated query, stopping each index run
at its first hit; it prints one JSON line per repository, then one with the median and max.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLL_TIMEOUT_S = 120


def first_search(root: Path, query: str, *, embedder: str = "minilm", give_up: float = 300.0,
                 stop_after_hit: bool = False) -> dict:
    cs = [sys.executable, "-m", "codesift"]
    with tempfile.TemporaryDirectory(prefix="first-search-") as tmp:
        idx = Path(tmp) / "index"
        t0 = time.perf_counter()
        proc = subprocess.Popen(cs + ["index", str(root), "--index-dir", str(idx), "--embedder", embedder,
                                      "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = top = None
        polls = 0
        try:
            while first is None and time.perf_counter() - t0 < give_up and proc.poll() is None:
                polls += 1
                r = subprocess.run(cs + ["search", query, "--root", str(root), "--index-dir", str(idx),
                                         "--json", "-k", "5", "--no-server"], capture_output=True, text=True,
                                   timeout=POLL_TIMEOUT_S)  # each poll cold, as a first search is
                hits = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []
                if hits:
                    first, top = time.perf_counter() - t0, hits[0]["path"]
            if stop_after_hit and proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # an interrupted run commits what it has and exits 130
            out, _ = proc.communicate(timeout=3600)
        finally:
            proc.kill()
        total = time.perf_counter() - t0
    summary = json.loads(out) if out.strip() else {}
    return {"root": str(root), "query": query, "first_hit_s": None if first is None else round(first, 2),
            "top": top, "polls": polls, "index_s": None if stop_after_hit else round(total, 1),
            "chunks": summary.get("chunks", {}).get("written"), "lexical": summary.get("lexical")}


def bench_repos(bench: Path, names: list[str], work: Path) -> list[tuple[str, Path, str]]:
    """(name, unpacked root, first annotated query) of each benchmark repository."""
    out = []
    for repo in json.loads((bench / "repos.json").read_text()):
        name = repo["name"]
        if names and name not in names:
            continue
        root = work / name
        if not root.is_dir():
            work.mkdir(parents=True, exist_ok=True)
            with tarfile.open(bench / "corpora" / f"{name}.tar.gz") as tar:
                tar.extractall(work, filter="data")
        query = json.loads((bench / "annotations" / f"{name}.json").read_text())[0]["query"]
        out.append((name, root, query))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, nargs="?")
    ap.add_argument("query", nargs="?")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--give-up", type=float, default=300.0, help="seconds without a hit before giving up")
    ap.add_argument("--stop-after-hit", action="store_true", help="interrupt the index run at the first hit")
    ap.add_argument("--bench", nargs="?", const="", default=None,
                    help="measure the code-search benchmark's repositories (default ../shared/codesearch-bench)")
    ap.add_argument("--repo", action="append", default=[], help="with --bench: only these repositories")
    ap.add_argument("--output", type=Path, help="also write the JSON lines here")
    args = ap.parse_args()
    lines = []
    if args.bench is not None:
        bench = Path(args.bench) if args.bench else HERE.parent.parent / "shared" / "codesearch-bench"
        firsts = []
        for name, root, query in bench_repos(bench, args.repo, HERE / ".work" / "first-search"):
            rec = {"repo": name} | first_search(root, query, embedder=args.embedder, give_up=args.give_up,
                                                 stop_after_hit=True)
            lines.append(rec)
            print(json.dumps(rec), flush=True)
            if rec["first_hit_s"] is not None:
                firsts.append(rec["first_hit_s"])
        summary = {"repos": len(lines), "with_hit": len(firsts),
                   "median_s": round(statistics.median(firsts), 2) if firsts else None,
                   "max_s": max(firsts) if firsts else None,
                   "within_1s": sum(1 for x in firsts if x <= 1.0)}
        lines.append({"summary": summary})
        print(json.dumps({"summary": summary}))
        ok = len(firsts) == len(lines) - 1
    else:
        if args.root is None or args.query is None:
            ap.error("give ROOT and QUERY, or --bench")
        rec = first_search(args.root, args.query, embedder=args.embedder, give_up=args.give_up,
                           stop_after_hit=args.stop_after_hit)
        lines.append(rec)
        print(json.dumps(rec))
        ok = rec["first_hit_s"] is not None
    if args.output:
        args.output.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
