#!/usr/bin/env python3
"""Search quality on a docstring-to-code eval of this machine's Python standard library.

1. builds the eval (queries = first docstring sentences, corpus = the sources with the
   docstrings blanked) with ``shared/eval/build_docstring_eval.py``;
2. indexes the corpus with ``codesift index`` (incremental: a rerun only re-checks files);
3. runs ``codesift search --batch --mode M`` for each mode;
4. scores each with ``shared/eval/score_eval.py`` and prints a Markdown table, also
   written to its section of ``benchmarks/EVAL.md`` (``codesearch.py`` writes the other).

    python benchmarks/eval.py                       # full stdlib, minilm (several minutes)
    python benchmarks/eval.py --embedder hash --max-queries 50   # plumbing check

The eval scripts are found at ``$CODESIFT_EVAL_DIR``, else ``<repo>/../shared/eval``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("vector", "text", "hybrid")
METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10")


def eval_dir() -> Path:
    env = os.environ.get("CODESIFT_EVAL_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "eval"
    if not (path / "build_docstring_eval.py").is_file():
        sys.exit(f"eval scripts not found in {path} (set CODESIFT_EVAL_DIR)")
    return path


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+ " + " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def codesift(*args) -> list:
    return [sys.executable, "-m", "codesift", *args]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=Path(sysconfig.get_paths()["stdlib"]),
                    help="the Python sources to build the eval from (default: this Python's stdlib)")
    ap.add_argument("--name", default="stdlib", help="names the work subdirectories (use one per --src)")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7, help="query sample seed (7: the reported split)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--work", type=Path, default=HERE / ".work", help="work dir (default benchmarks/.work)")
    ap.add_argument("--index-dir", type=Path, help="the index to use (default: under --work)")
    ap.add_argument("--no-index", action="store_true", help="search the existing index as it is; do not run codesift index")
    ap.add_argument("--output", type=Path, default=HERE / "EVAL.md", help="Markdown report ('-' for none)")
    args = ap.parse_args()

    tools = eval_dir()
    work = args.work.resolve()
    tag = f"{args.name}-seed{args.seed}-q{args.max_queries}"
    out = work / f"eval-{tag}"
    index_dir = (args.index_dir.resolve() if args.index_dir
                 else work / f"index-{args.name}-{args.embedder.replace(':', '_').replace('/', '_')}")
    corpus = out / "corpus"
    if not (out / "queries.jsonl").is_file():
        run([sys.executable, tools / "build_docstring_eval.py", args.src, out,
             "--max-queries", args.max_queries, "--seed", args.seed])
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines() if line.strip()]
    t0 = time.monotonic()
    if not args.no_index:
        run(codesift("index", corpus, "--index-dir", index_dir, "--embedder", args.embedder),
            stdout=subprocess.DEVNULL)
    index_s = time.monotonic() - t0
    sys.path.insert(0, str(REPO / "src"))
    from codesift.search.maintenance import refresh_index_dir

    refresh_index_dir(index_dir)  # no-op cost once the pipeline refreshes after writes

    batch = out / "queries.txt"
    batch.write_text("".join(q["query"].replace("\n", " ") + "\n" for q in queries), encoding="utf-8")
    rows = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        results = out / f"results-{args.embedder.replace(':', '_')}-{mode}.jsonl"
        t0 = time.monotonic()
        with open(results, "w", encoding="utf-8") as fh:
            run(codesift("search", "--root", corpus, "--index-dir", index_dir, "--batch", batch, "--json",
                         "--mode", mode, "-k", args.k), stdout=fh)
        search_s = time.monotonic() - t0
        score = run([sys.executable, tools / "score_eval.py", out / "queries.jsonl", results, "--k", args.k],
                    capture_output=True, text=True)
        rows.append((mode, json.loads(score.stdout), search_s))

    cols = [*METRICS, *(f"tight_{m}" for m in METRICS)]
    cols = [c.replace("mrr@10", f"mrr@{args.k}") for c in cols]
    lines = ["| mode | " + " | ".join(c.replace("mrr", "MRR") for c in cols) + " | s/query |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for mode, s, secs in rows:
        lines.append(f"| {mode} | " + " | ".join(f"{s[c]:.3f}" for c in cols)
                     + f" | {secs / max(1, len(queries)):.3f} |")
    table = "\n".join(lines)
    print(table)
    if str(args.output) != "-":
        cmd = " ".join(["python benchmarks/eval.py", f"--embedder {args.embedder}",
                        f"--max-queries {args.max_queries}", f"--seed {args.seed}"]
                       + ([f"--src {args.src} --name {args.name}"] if args.name != "stdlib" else []))
        n_chunks = _count_chunks(index_dir)
        from evalmd import write_section

        write_section(args.output, "docstring",
            "## Docstring-to-code eval (Python stdlib)\n\n"
            f"`{cmd}` on {time.strftime('%Y-%m-%d')}: {len(queries)} queries, corpus = "
            + (f"Python {sysconfig.get_python_version()} stdlib" if args.name == "stdlib" else f"`{args.src}`")
            + " with docstrings blanked "
            f"({n_chunks} chunks), embedder `{args.embedder}`, k={args.k}. "
            "A hit is right when it overlaps the answer's lines; `tight_` also requires it to be at most "
            "twice the answer's length + 10 lines. s/query includes loading the model once per mode "
            + (f"(indexing took {index_s:.0f}s this run)" if not args.no_index else "(existing index)")
            + ".\n\n" + table + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _count_chunks(index_dir: Path) -> int | str:
    try:
        from codesift.store.chunks import ChunkStore
        from codesift.store.layout import IndexLayout

        return ChunkStore(IndexLayout(index_dir).lancedb).count()
    except Exception:  # noqa: BLE001 - only for the report
        return "?"


if __name__ == "__main__":
    sys.exit(main())
