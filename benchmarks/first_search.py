#!/usr/bin/env python3
"""Time to the first search while a new repository is being indexed (the fast tier).

Starts ``codesift index ROOT`` into a fresh index directory, then runs ``codesift search
QUERY`` (a new process each time, as a user or an agent would) until one returns hits.
Prints one JSON line: seconds from the start of ``codesift index`` to that first hit, the
top hit, the run's own fast-tier figures (``lexical`` in its summary) and the full index time.

    python benchmarks/first_search.py path/to/repo "routing middleware"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("query")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--give-up", type=float, default=300.0, help="seconds without a hit before giving up")
    args = ap.parse_args()
    cs = [sys.executable, "-m", "codesift"]
    with tempfile.TemporaryDirectory(prefix="first-search-") as tmp:
        idx = Path(tmp) / "index"
        t0 = time.perf_counter()
        proc = subprocess.Popen(cs + ["index", str(args.root), "--index-dir", str(idx), "--embedder", args.embedder,
                                      "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = top = None
        polls = 0
        try:
            while first is None and time.perf_counter() - t0 < args.give_up and proc.poll() is None:
                polls += 1
                r = subprocess.run(cs + ["search", args.query, "--root", str(args.root), "--index-dir", str(idx),
                                         "--json", "-k", "5", "--no-server"], capture_output=True, text=True,
                                   timeout=120)  # each poll cold, as a first search is
                hits = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []
                if hits:
                    first, top = time.perf_counter() - t0, hits[0]["path"]
            out, _ = proc.communicate(timeout=3600)
        finally:
            proc.kill()
        total = time.perf_counter() - t0
    summary = json.loads(out) if out.strip() else {}
    print(json.dumps({"root": str(args.root), "query": args.query, "first_hit_s": None if first is None else
                      round(first, 2), "top": top, "polls": polls, "index_s": round(total, 1),
                      "chunks": summary.get("chunks", {}).get("written"), "lexical": summary.get("lexical")}))
    return 0 if first is not None else 1


if __name__ == "__main__":
    sys.exit(main())
